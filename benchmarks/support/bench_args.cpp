// coyote-mpi benchmarks: Google Benchmark's flags checked before the library parses them, the usage text, and
// the checks that the reports were written.
#include "support/bench_args.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string_view>

#include "common/output.hpp"
#include "detail/settings.hpp"

namespace coyote::bench {
namespace {

namespace settings = ::coyote::detail::settings;

using Values = std::vector<std::string_view>;

const Values k_bools = {"true", "false", "yes", "no", "on", "off", "1", "0"};
const Values k_colors = {"auto", "true", "false", "yes", "no", "on", "off", "1", "0"};
const Values k_formats = {"console", "json", "csv"};
const Values k_units = {"ns", "us", "ms", "s"};

std::string one_of(const Values& values) {
    std::string out;
    for (const auto v : values) out += (out.empty() ? "" : ", ") + std::string(v);
    return out;
}

/// A finite number; nullopt for anything else (trailing characters included).
std::optional<double> parse_number(const std::string& text) {
    if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
    return v;
}

/// What is wrong with `value` of flag `name` ("" when it is acceptable or the flag is not checked here).
std::string value_problem(std::string_view name, const std::string& value) {
    auto in = [&value](const Values& values) {
        return std::find(values.begin(), values.end(), std::string_view(value)) != values.end();
    };
    if (name == "benchmark_min_time") {
        const auto v = parse_number(value);
        if (!v || *v <= 0) return "must be a positive number of seconds";
    } else if (name == "benchmark_min_warmup_time") {
        const auto v = parse_number(value);
        if (!v || *v < 0) return "must be a number of seconds, 0 or more";
    } else if (name == "benchmark_repetitions") {
        const auto v = parse_number(value);
        if (!v || *v < 1 || *v > 1'000'000 || std::floor(*v) != *v) return "must be a whole number in 1..1000000";
    } else if (name == "benchmark_format" || name == "benchmark_out_format") {
        if (!in(k_formats)) return "must be one of " + one_of(k_formats);
    } else if (name == "benchmark_time_unit") {
        if (!in(k_units)) return "must be one of " + one_of(k_units);
    } else if (name == "benchmark_color") {
        if (!in(k_colors)) return "must be one of " + one_of(k_colors);
    } else if (name == "benchmark_out") {
        if (value.empty()) return "needs a file name";
    } else if (name == "benchmark_list_tests" || name == "benchmark_enable_random_interleaving" ||
               name == "benchmark_report_aggregates_only" || name == "benchmark_display_aggregates_only" ||
               name == "benchmark_counters_tabular") {
        if (!in(k_bools)) return "must be one of " + one_of(k_bools);
    }
    return {};
}

}  // namespace

ArgCheck check_args(int argc, char** argv) {
    ArgCheck out;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h" || arg == "-help") {
            out.help = true;
            continue;
        }
        if (arg.rfind("--", 0) != 0) continue;
        const auto eq = arg.find('=');
        if (eq == std::string_view::npos) continue; // a bare boolean flag, or one the library names as unknown
        const std::string_view name = arg.substr(2, eq - 2);
        const std::string value(arg.substr(eq + 1));
        const std::string problem = value_problem(name, value);
        if (!problem.empty() && out.error.empty())
            out.error = "--" + std::string(name) + " " + problem + ", got '" + value + "'";
    }
    return out;
}

void print_usage(std::FILE* out, const char* argv0, const std::string& notes) {
    std::fprintf(out,
                 "usage: %s [Google Benchmark flags]\n"
                 "  --benchmark_filter=<regex>            benchmarks to run (default: all)\n"
                 "  --benchmark_list_tests[=true|false]   list the benchmarks, run nothing\n"
                 "  --benchmark_min_time=<seconds>        minimum time per benchmark, > 0 (default 0.1;\n"
                 "                                        service_bench: the library's 0.5)\n"
                 "  --benchmark_min_warmup_time=<seconds> warm-up before each benchmark, >= 0\n"
                 "  --benchmark_repetitions=<n>           runs of each benchmark, 1..1000000\n"
                 "  --benchmark_enable_random_interleaving=true|false\n"
                 "  --benchmark_report_aggregates_only=true|false, --benchmark_display_aggregates_only=true|false\n"
                 "  --benchmark_format=console|json|csv   standard output's format\n"
                 "  --benchmark_out=<file>                also write the report to <file> (rank 0 only)\n"
                 "  --benchmark_out_format=json|console|csv  (default json)\n"
                 "  --benchmark_color=auto|true|false     (default false under mpirun/srun, whose output is a\n"
                 "                                        terminal even when redirected)\n"
                 "  --benchmark_counters_tabular=true|false\n"
                 "  --benchmark_context=<key>=<value>,... --benchmark_time_unit=ns|us|ms|s  --v=<verbosity>\n"
                 "Exit status: 0 when every benchmark ran and verified its data, 1 when one failed or a report could\n"
                 "not be written, 2 for a bad command line or rank count.\n%s",
                 argv0, notes.c_str());
}

std::string bench_settings_notes() {
    std::string out;
    for (const settings::Info* info : settings::all()) {
        if (info->group != "bench") continue;
        out += "  " + info->name + "  " + info->help + "\n";
    }
    return out.empty() ? out : "Environment:\n" + out;
}

bool under_launcher() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK", "SLURM_STEP_ID"})
        if (settings::foreign(name)) return true;
    return false;
}

std::vector<std::string> with_default_color(int argc, char** argv) {
    std::vector<std::string> out;
    bool color_given = false;
    for (int i = 1; i < argc; ++i) color_given = color_given || std::strncmp(argv[i], "--benchmark_color", 17) == 0;
    if (!color_given && under_launcher()) out.emplace_back("--benchmark_color=false");
    for (int i = 1; i < argc; ++i) out.emplace_back(argv[i]);
    return out;
}

CheckedFileReporter::CheckedFileReporter(const std::string& format) {
    if (format == "csv") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // deprecated, still one of the library's formats
        inner_ = std::make_unique<benchmark::CSVReporter>();
#pragma GCC diagnostic pop
    } else if (format == "console") {
        inner_ = std::make_unique<benchmark::ConsoleReporter>(benchmark::ConsoleReporter::OO_None);
    } else {
        inner_ = std::make_unique<benchmark::JSONReporter>();
    }
}

void CheckedFileReporter::attach() {
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
}

bool CheckedFileReporter::ReportContext(const Context& context) {
    attach();
    return inner_->ReportContext(context);
}

void CheckedFileReporter::ReportRuns(const std::vector<Run>& runs) { inner_->ReportRuns(runs); }

void CheckedFileReporter::Finalize() {
    inner_->Finalize();
    errno = 0;
    GetOutputStream().flush();
    if (!GetOutputStream().good())
        failure_ = errno != 0 ? std::strerror(errno) : "write error";
}

std::string flag_value(const std::vector<std::string>& args, const std::string& name) {
    const std::string prefix = name + "=";
    std::string value;
    for (const auto& a : args)
        if (a.rfind(prefix, 0) == 0) value = a.substr(prefix.size());
    return value;
}

bool listing_only(const std::vector<std::string>& args) {
    bool listing = false;
    for (const std::string_view a : args) {
        if (a == "--benchmark_list_tests") listing = true;
        else if (a.rfind("--benchmark_list_tests=", 0) == 0) {
            const std::string_view v = a.substr(23);
            listing = v == "true" || v == "yes" || v == "on" || v == "1";
        }
    }
    return listing;
}

std::size_t run_checked(const std::vector<std::string>& args, std::string& failure) {
    std::size_t ran = 0;
    const std::string out_file = flag_value(args, "--benchmark_out");
    if (out_file.empty()) {
        ran = benchmark::RunSpecifiedBenchmarks();
    } else {
        const std::string format = flag_value(args, "--benchmark_out_format");
        CheckedFileReporter file(format.empty() ? "json" : format);
        std::unique_ptr<benchmark::BenchmarkReporter> display(benchmark::CreateDefaultDisplayReporter());
        ran = benchmark::RunSpecifiedBenchmarks(display.get(), &file);
        if (!file.failure().empty()) failure = "cannot write the report to " + out_file + ": " + file.failure();
    }
    const std::string out = stdout_failure();
    if (failure.empty() && !out.empty()) failure = "cannot write the report to standard output: " + out;
    return ran;
}

std::string stdout_failure() noexcept {
    std::cout.flush(); // the console reporter writes through std::cout (synchronised with stdio)
    const std::string failure = tools::stdout_failure();
    return failure.empty() && !std::cout.good() ? "write error" : failure;
}

}  // namespace coyote::bench
