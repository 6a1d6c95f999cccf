// coyote-mpi perftest-style tools: the command line (perftest's options where they make sense).
#include "perftest/perftest.hpp"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <coyote/error.hpp>

namespace coyote::tools::perftest {

namespace {

constexpr uint64_t k_max_all_size = 8ULL << 20; // perftest's MAX_SIZE for -a
constexpr uint32_t k_min_iters = 5, k_max_iters = 100000000;

[[noreturn]] void bad(const Options& o, const std::string& what) {
    throw_error(Errc::invalid_argument, o.tool, what + " (see " + o.tool + " -h)");
}

uint64_t number(const Options& o, const std::string& opt, const std::string& v, uint64_t lo, uint64_t hi) {
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 12)
        bad(o, opt + " takes a number, got '" + v + "'");
    const uint64_t n = std::stoull(v);
    if (n < lo || n > hi)
        bad(o, opt + " " + v + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    return n;
}

void help(const Options& o) {
    std::printf("usage: %s [options]            start a server and wait for the client\n"
                "       %s [options] <server>   connect to the server at <server>\n"
                "       mpirun -np 2 %s [options]   rank 0 serves, rank 1 connects (MPI out-of-band)\n"
                "options:\n"
                "  -p, --port <port>      out-of-band TCP port (default 18515)\n"
                "  -s, --size <bytes>     message size (default %s)\n"
                "  -a, --all              every size 2 B .. 8 MiB\n"
                "  -n, --iters <n>        iterations (default %s, at least 5)\n"
                "  -d, --device <n>       FPGA device (default 0; under MPI the sim uses the node-local rank)\n"
                "  -i, --vfid <n>         vFPGA (default 0)\n"
                "  --report_gbits         bandwidth in Gb/sec instead of MB/sec\n"
                "  --out_json             also write the results to perftest_out.json (the client)\n"
                "  --out_json_file=<path> ... to <path> (a TCP server too)\n"
                "Both sides take the same -s / -a / -n.\n",
                o.tool.c_str(), o.tool.c_str(), o.tool.c_str(), o.kind == Kind::lat ? "2" : "65536",
                o.kind == Kind::lat ? "1000" : "5000");
}

}  // namespace

std::optional<Options> parse_options(int argc, char** argv, Verb verb, Kind kind) {
    Options o;
    o.verb = verb;
    o.kind = kind;
    const std::string prog = argc > 0 ? argv[0] : "coyote_perftest";
    o.tool = prog.substr(prog.find_last_of('/') + 1);
    o.size = kind == Kind::lat ? 2 : 65536;
    o.iters = kind == Kind::lat ? 1000 : 5000;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        std::optional<std::string> value; // --name=value: the value is that, even empty (then an error)
        if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = a.substr(eq + 1);
            a = a.substr(0, eq);
        }
        auto flag = [&] {
            if (value) bad(o, a + " takes no value, got '" + a + "=" + *value + "'" +
                                  (a == "--out_json" ? " (the file is --out_json_file=<path>)" : ""));
        };
        auto next = [&]() -> std::string {
            if (value) {
                if (value->empty()) bad(o, a + "= needs a value");
                return *value;
            }
            if (i + 1 >= argc) bad(o, a + " needs a value");
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            help(o);
            return std::nullopt;
        } else if (a == "-p" || a == "--port") {
            o.port = static_cast<uint16_t>(number(o, a, next(), 1, 65535));
        } else if (a == "-s" || a == "--size") {
            o.size = number(o, a, next(), 1, MAX_TRANSFER_SIZE);
        } else if (a == "-a" || a == "--all") {
            flag();
            o.all = true;
        } else if (a == "-n" || a == "--iters") {
            o.iters = static_cast<uint32_t>(number(o, a, next(), k_min_iters, k_max_iters));
        } else if (a == "-d" || a == "--device") {
            o.device = static_cast<uint32_t>(number(o, a, next(), 0, 255));
            o.device_set = true;
        } else if (a == "-i" || a == "--vfid") {
            o.vfid = static_cast<int32_t>(number(o, a, next(), 0, 15));
            o.vfid_set = true;
        } else if (a == "--report_gbits") {
            flag();
            o.gbits = true;
        } else if (a == "--out_json") {
            flag();
            if (o.json_file.empty()) o.json_file = "perftest_out.json";
        } else if (a == "--out_json_file") {
            o.json_file = next();
            o.json_path_given = true;
        } else if (!a.empty() && a[0] == '-') {
            bad(o, "unknown option " + a);
        } else if (o.server) {
            bad(o, "more than one server address ('" + *o.server + "', '" + a + "')");
        } else {
            o.server = a;
        }
    }
    return o;
}

std::vector<uint64_t> sizes_of(const Options& o) {
    if (!o.all) return {o.size};
    std::vector<uint64_t> v;
    for (uint64_t s = 2; s <= k_max_all_size; s *= 2) v.push_back(s);
    return v;
}

}  // namespace coyote::tools::perftest
