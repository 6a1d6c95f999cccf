// coyote-sim-bitstream: writes (or checks) a sim bitstream, the file cRcnfg loads on the sim backend.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <coyote/error.hpp>

#include "backend/sim/models/models.hpp"
#include "common/output.hpp"
#include "detail/format.hpp"
#include "backend/sim/shell_config.hpp"
#include "rcnfg/bitstream_file.hpp"

namespace {

namespace rc = ::coyote::detail::rcnfg;
namespace sim = ::coyote::detail::sim;

void usage(std::ostream& os) {
    os << "usage: coyote-sim-bitstream [--app | --shell] [--model NAME|PATH.so] [--shell-config k=v,...] -o FILE\n"
          "       coyote-sim-bitstream --check FILE\n"
          "  --app           application bitstream of one vFPGA (default): needs --model\n"
          "  --shell         shell bitstream: a model for every vFPGA and/or shell changes (keys of COYOTE_SIM_SHELL)\n"
          "  --model         built-in model (passthrough, perf_local, vadd, reduce, or one of Coyote's examples:\n"
          "                  aes_ecb, aes_cbc, user_interrupts, perf_fpga, packet_sniffer, vadd_int32,\n"
          "                  euclidean_distance, cosine_similarity) or the path of a model .so (stored absolute\n"
          "                  when the file is here, so the bitstream loads from any directory)\n"
          "  --shell-config  shell changes, e.g. n_fpga_reg=2,rdma=0 (shell bitstreams only)\n"
          "  --check FILE    decodes FILE and prints what it holds\n"
          "  --unchecked     writes the file even when loading it would fail (to test a loader's errors)\n";
}

/// Refuses what loading the bitstream would refuse: an unknown built-in model, an unknown or malformed shell key. A
/// model .so is loaded where the bitstream is loaded; here a missing one only gets a warning.
void validate(const rc::SimBitstream& b);

/// Prints what FILE holds; exit 1 when loading it would fail (a file written with --unchecked).
int check(const std::string& path) {
    const auto bytes = rc::read_file_checked(path, rc::k_max_sim_bitstream);
    const rc::SimBitstream b = rc::decode_sim_bitstream(bytes, path);
    std::cout << path << ": sim " << (b.kind == rc::SimBitstream::Kind::app ? "app" : "shell")
              << " bitstream, model '" << b.model << "', shell changes '" << b.shell_settings << "'\n";
    try {
        validate(b);
    } catch (const std::invalid_argument& e) {
        std::cout.flush();
        std::cerr << "coyote-sim-bitstream: " << path << " would not load: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

void validate(const rc::SimBitstream& b) {
    if (!b.model.empty()) {
        // A .so not readable here may be where the bitstream is loaded; one found here must pass the loader's
        // checks of the file (a regular file that other users cannot change).
        if (sim::ModelHandle::is_library_spec(b.model) && ::access(b.model.c_str(), R_OK) != 0)
            std::cerr << "coyote-sim-bitstream: warning: model " << coyote::detail::printable(b.model)
                      << " is not readable here (" << std::strerror(errno)
                      << "); it must be where the bitstream is loaded\n";
        else if (const auto problem = sim::ModelHandle::spec_problem(b.model))
            throw std::invalid_argument(*problem);
    }
    if (!b.shell_settings.empty())
        if (const auto problem = sim::shell_settings_problem(b.shell_settings, "--shell-config"))
            throw std::invalid_argument(*problem);
}

int run(int argc, char** argv) {
    rc::SimBitstream b;
    std::string out;
    std::string kind_option; // --app or --shell, if given
    bool unchecked = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            return argv[++i];
        };
        if (a == "--app" || a == "--shell") {
            if (!kind_option.empty() && kind_option != a)
                throw std::invalid_argument(kind_option + " and " + a + " exclude each other");
            kind_option = a;
            b.kind = a == "--app" ? rc::SimBitstream::Kind::app : rc::SimBitstream::Kind::shell;
        }
        else if (a == "--model") b.model = value();
        else if (a == "--shell-config") b.shell_settings = value();
        else if (a == "-o" || a == "--output") out = value();
        else if (a == "--check") {
            if (argc == 2) throw std::invalid_argument("--check needs a FILE");
            if (argc != 3) throw std::invalid_argument("--check FILE takes no other options");
            return check(value());
        }
        else if (a == "--unchecked") unchecked = true;
        else if (a == "-h" || a == "--help") return usage(std::cout), 0;
        else throw std::invalid_argument("unknown option " + a);
    }
    if (out.empty()) throw std::invalid_argument("no output file (-o FILE)");
    if (b.kind == rc::SimBitstream::Kind::app && !b.shell_settings.empty())
        throw std::invalid_argument("--shell-config needs --shell");
    if (b.kind == rc::SimBitstream::Kind::app && b.model.empty())
        throw std::invalid_argument("an app bitstream needs --model");
    if (b.kind == rc::SimBitstream::Kind::shell && b.model.empty() && b.shell_settings.empty())
        throw std::invalid_argument("a shell bitstream needs --model and/or --shell-config");
    if (!unchecked) validate(b);
    // A model .so found here is stored by its absolute path: the bitstream then loads from any working directory.
    if (!b.model.empty() && sim::ModelHandle::is_library_spec(b.model) && b.model.front() != '/' &&
        ::access(b.model.c_str(), R_OK) == 0)
        b.model = std::filesystem::absolute(b.model).lexically_normal().string();
    std::vector<char> bytes;
    try {
        bytes = rc::encode_sim_bitstream(b);
    } catch (const coyote::Error& e) { // a value the format cannot hold: a usage error, said once
        throw std::invalid_argument(e.context());
    }
    std::ofstream f = coyote::tools::open_private(out, std::ios::binary);
    if (!f) throw std::runtime_error("cannot create " + out + ": " + std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f.flush()) throw std::runtime_error("cannot write " + out + ": " + std::strerror(errno));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const int rc = run(argc, argv);
        // std::cout writes through stdout's buffer (synced with stdio): one flush shows a failure and its errno.
        if (const std::string why = coyote::tools::stdout_failure(); !why.empty())
            throw std::runtime_error("writing to standard output: " + why);
        return rc;
    } catch (const std::invalid_argument& e) {
        std::cerr << "coyote-sim-bitstream: " << e.what() << "\n";
        usage(std::cerr);
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "coyote-sim-bitstream: " << e.what() << "\n";
        return 1;
    }
}
