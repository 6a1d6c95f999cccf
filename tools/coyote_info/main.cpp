// coyote-info: lists what this node offers coyote-mpi, for each backend (like ibv_devinfo / fi_info); -v adds
// the live state of this user's cThreads, --json prints the same as JSON for scripts.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <coyote/error.hpp>

#include "backend/device.hpp"
#include "common/output.hpp"
#include "coyote_info/info.hpp"

namespace info = coyote::tools::info;
using coyote::tools::Json;

namespace {

struct Options {
    bool verbose = false;
    bool json = false;
    std::optional<uint32_t> device;
    std::string backend; ///< "", "sim" or "hw"
};

int usage(std::FILE* out) {
    std::fputs("usage: coyote-info [-v] [--json] [-d DEVICE] [-b sim|hw]\n"
               "  exit status: 0, 3 when the backend asked for (-b, else the one programs would use) has no\n"
               "  device or a vFPGA that does not open (the report says why), 1 on another error, 2 usage\n"
               "  -v          also the live cThreads of this user: commands posted/completed per class, queue\n"
               "              pairs (QPN, PSNs, peer) and the stall doctor's diagnosis\n"
               "  --json      JSON instead of text\n"
               "  -d DEVICE   only this device (default: sim device 0, every hw device found)\n"
               "  -b BACKEND  only this backend (default: both)\n",
               out);
    return out == stdout ? 0 : 2;
}

/// Parses the command line; nullopt after printing usage (exit code in `rc`).
std::optional<Options> parse(int argc, char** argv, int& rc) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_next = i + 1 < argc;
        if (a == "-v" || a == "--verbose") o.verbose = true;
        else if (a == "--json") o.json = true;
        else if ((a == "-d" || a == "--device") && has_next) {
            const std::string v = argv[++i];
            if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 3 ||
                std::stoul(v) > 255) {
                std::fprintf(stderr, "coyote-info: -d takes a device number 0..255, got '%s'\n", v.c_str());
                rc = 2;
                return std::nullopt;
            }
            o.device = static_cast<uint32_t>(std::stoul(v));
        } else if ((a == "-b" || a == "--backend") && has_next) {
            o.backend = argv[++i];
            if (o.backend != "sim" && o.backend != "hw") {
                std::fprintf(stderr, "coyote-info: -b takes sim or hw, got '%s'\n", o.backend.c_str());
                rc = 2;
                return std::nullopt;
            }
        } else {
            const bool help = a == "-h" || a == "--help";
            if (!help)
                std::fprintf(stderr, "coyote-info: %s\n",
                             (a == "-d" || a == "--device" || a == "-b" || a == "--backend")
                                 ? (a + " needs a value").c_str()
                                 : ("unknown option " + a).c_str());
            rc = usage(help ? stdout : stderr);
            return std::nullopt;
        }
    }
    return o;
}

Json collect(const Options& o) {
    Json root = Json::object();
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    root.set("host", host);
    root.set("version", COYOTE_INFO_VERSION);
    root.set("selected_backend", coyote::detail::selected_backend(o.device.value_or(0), 0));
    Json backends = Json::array();
    if (o.backend.empty() || o.backend == "sim") backends.push(info::sim_backend(o.device.value_or(0)));
    if (o.backend.empty() || o.backend == "hw") backends.push(info::hw_backend(o.device));
    root.set("backends", std::move(backends));
    root.set("huge_pages", info::huge_pages());
    root.set("locality", info::locality());
    if (o.verbose) root.set("processes", info::live_processes());
    return root;
}

}  // namespace

int main(int argc, char** argv) {
    int rc = 0;
    const auto opts = parse(argc, argv, rc);
    if (!opts) return rc;
    try {
        const Json root = collect(*opts);
        const std::string out = opts->json ? root.dump() : root.text();
        std::fputs(out.c_str(), stdout);
        if (const std::string why = coyote::tools::stdout_failure(); !why.empty()) {
            std::fprintf(stderr, "coyote-info: writing to standard output: %s\n", why.c_str());
            return 1;
        }
        const std::string wanted = opts->backend.empty()
                                       ? coyote::detail::selected_backend(opts->device.value_or(0), 0)
                                       : opts->backend;
        if (const std::string problem = info::backend_problem(root, wanted); !problem.empty()) {
            std::fprintf(stderr, "coyote-info: %s\n", problem.c_str());
            return 3;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote-info: %s\n", e.what());
        return 1;
    }
    return 0;
}
