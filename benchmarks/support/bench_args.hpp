// coyote-mpi benchmarks: the command line every suite shares (Google Benchmark's flags) checked before the
// library sees it, the usage text, and whether the reports reached their files.
//
// Google Benchmark 1.7 accepts some bad values silently (--benchmark_min_time=-1 runs one iteration, a boolean
// flag takes any word), answers others with its usage and exit status 0 (--benchmark_format=xml), crashes on a
// negative --benchmark_repetitions, and exits 0 when its --benchmark_out file or standard output could not be
// written. The suites check these themselves; the library parses the rest.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace coyote::bench {

/// What the command line asks for before any benchmark runs.
struct ArgCheck {
    bool help = false;  ///< --help or -h: print the usage, run nothing, exit 0
    std::string error;  ///< the first bad flag value, naming the flag ("" when every value is acceptable)
};

/// Checks the values of Google Benchmark's flags in argv[1..argc).
ArgCheck check_args(int argc, char** argv);

/// The usage of suite binary `argv0`: Google Benchmark's flags, then `notes` (the suite's own environment).
void print_usage(std::FILE* out, const char* argv0, const std::string& notes);

/// The suite's environment variables as usage lines: each declared setting of group "bench" (" NAME  help").
std::string bench_settings_notes();

/// Whether an MPI or Slurm launcher started this process: its standard output is then a pseudo-terminal of the
/// launcher even when the user redirected the launcher's output to a file.
bool under_launcher();

/// argv with "--benchmark_color=false" added in front when a launcher started the process and the user gave no
/// --benchmark_color (escape codes would land in the redirected output); the user's flags follow.
std::vector<std::string> with_default_color(int argc, char** argv);

/// The reporter of the --benchmark_out file: writes the --benchmark_out_format report (json by default) to the
/// stream the library opened for the file and, once the run is over, tells whether every byte reached the file.
class CheckedFileReporter final : public benchmark::BenchmarkReporter {
public:
    /// `format`: json, csv or console (checked by check_args).
    explicit CheckedFileReporter(const std::string& format);
    bool ReportContext(const Context& context) override;
    void ReportRuns(const std::vector<Run>& runs) override;
    void Finalize() override;
    /// "" when the file was written in full, else why not.
    const std::string& failure() const noexcept { return failure_; }

private:
    void attach();
    std::unique_ptr<benchmark::BenchmarkReporter> inner_;
    std::string failure_;
};

/// The value of flag `name` (e.g. "--benchmark_out") in `args`, the last one given; "" when absent.
std::string flag_value(const std::vector<std::string>& args, const std::string& name);

/// Whether the flags only list the benchmarks (--benchmark_list_tests, =true, =yes, ...; the last one counts).
bool listing_only(const std::vector<std::string>& args);

/// Runs the benchmarks that `args` (the flags as given to benchmark::Initialize, which removes the ones it knows
/// from argv) select, with the library's display reporter and, with --benchmark_out, a CheckedFileReporter;
/// returns how many ran. `failure` says which report could not be written ("" when both were).
std::size_t run_checked(const std::vector<std::string>& args, std::string& failure);

/// Flushes standard output: "" when everything printed was written, else why not (a full disk).
std::string stdout_failure() noexcept;

}  // namespace coyote::bench
