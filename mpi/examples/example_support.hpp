// coyote-mpi examples: what every example's main shares: `--flag value` options checked against the flags the
// example knows, timing next to MPI (slowest rank, after warm-up calls), summing counts over the ranks, and a main
// that aborts the whole job when a rank fails.
#pragma once

#include <coyote/error.hpp>
#include <coyote/mpi/mpi.hpp>

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <map>
#include <string>

namespace coyote::mpi::examples {

/// The largest --min / --max an example takes: 1 GiB (element counts stay below MPI's int limit).
constexpr uint64_t k_max_size = uint64_t{1} << 30;

/// The `--flag value` pairs of a command line. Unknown flags, a flag without a value and malformed numbers are
/// errors naming the example and the flag.
class Options {
public:
    Options(int argc, char** argv, const char* example, std::initializer_list<const char*> known) : example_(example) {
        std::string list;
        for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
        for (int i = 1; i < argc; i += 2) {
            const std::string flag = argv[i];
            bool ok = false;
            for (const char* k : known) ok = ok || flag == k;
            if (!ok) throw_error(Errc::invalid_argument, example_, "unknown argument '" + flag + "' (" + list + ")");
            if (i + 1 >= argc) throw_error(Errc::invalid_argument, example_, flag + " needs a value");
            values_[flag] = argv[i + 1];
        }
    }

    /// A byte count of 1 .. k_max_size with an optional K, M or G suffix (powers of 1024).
    uint64_t size(const char* flag, uint64_t def) const {
        const auto it = values_.find(flag);
        if (it == values_.end()) return def;
        const std::string& text = it->second;
        std::size_t digits = 0;
        while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
        const std::string suffix = text.substr(digits);
        unsigned shift = 0;
        if (suffix == "K" || suffix == "k") shift = 10;
        else if (suffix == "M" || suffix == "m") shift = 20;
        else if (suffix == "G" || suffix == "g") shift = 30;
        const bool ok = digits > 0 && digits <= 12 && (suffix.empty() || shift > 0);
        const uint64_t v = ok ? std::strtoull(text.substr(0, digits).c_str(), nullptr, 10) : 0;
        if (!ok || v == 0 || v > (k_max_size >> shift))
            throw_error(Errc::invalid_argument, example_,
                        std::string(flag) + " needs a size of 1 .. 1G bytes (K/M/G suffixes), got '" + text + "'");
        return v << shift;
    }

    /// A whole number of at least `min`.
    int count(const char* flag, int def, int min = 1) const {
        const auto it = values_.find(flag);
        if (it == values_.end()) return def;
        char* end = nullptr;
        const long v = std::strtol(it->second.c_str(), &end, 10);
        if (*end != '\0' || it->second.empty() || v < min || v > 1'000'000'000)
            throw_error(Errc::invalid_argument, example_,
                        std::string(flag) + " needs a whole number >= " + std::to_string(min) + ", got '" +
                            it->second + "'");
        return static_cast<int>(v);
    }

    /// The text of `flag`, or `def`.
    std::string text(const char* flag, const std::string& def) const {
        const auto it = values_.find(flag);
        return it == values_.end() ? def : it->second;
    }

private:
    const char* example_;
    std::map<std::string, std::string> values_;
};

/// The options of a size sweep: `--max` bytes (default `max`) and `--iters` timed calls per size (default 10).
struct Sweep {
    uint64_t max;
    int iters;
};

inline Sweep sweep_options(int argc, char** argv, const char* example, uint64_t max, uint64_t first = 1) {
    const Options opts(argc, argv, example, {"--max", "--iters"});
    const Sweep sweep{opts.size("--max", max), opts.count("--iters", 10)};
    if (sweep.max < first) // the sweep would run no size at all and report success
        throw_error(Errc::invalid_argument, example,
                    "--max " + std::to_string(sweep.max) + " is below the first size, " + std::to_string(first));
    return sweep;
}

/// Mean microseconds per call of `fn` on the slowest rank: `warmup` untimed calls (first touch of buffers and
/// mappings), a barrier, `iters` timed calls, the maximum over the ranks.
template <typename Fn>
double time_max_us(const Communicator& comm, int warmup, int iters, Fn&& fn) {
    for (int i = 0; i < warmup; ++i) fn();
    check_mpi(MPI_Barrier(comm.get()), "MPI_Barrier");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
    double mx = 0;
    check_mpi(MPI_Allreduce(&us, &mx, 1, MPI_DOUBLE, MPI_MAX, comm.get()), "MPI_Allreduce");
    return mx;
}

/// The sum of `mine` over every rank of `comm` (mismatch counts).
inline uint64_t sum_over_ranks(const Communicator& comm, uint64_t mine, const char* what) {
    uint64_t all = 0;
    check_mpi(MPI_Allreduce(&mine, &all, 1, MPI_UINT64_T, MPI_SUM, comm.get()), "MPI_Allreduce", what);
    return all;
}

/// Whether the command line asks for the usage (--help or -h anywhere).
inline bool wants_help(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return true;
    return false;
}

/// An example's main: MPI initialised around `body(argc, argv)`, whose value is the exit code. With --help or -h,
/// rank 0 prints `usage` and every rank exits 0. An error on one rank aborts the job (the others may wait inside a
/// collective), naming the example.
template <typename Body>
int run_example(int argc, char** argv, const char* example, const char* usage, Body&& body) {
    try {
        Environment env(&argc, &argv);
        if (wants_help(argc, argv)) {
            int rank = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            if (rank == 0) std::fputs(usage, stdout);
            return 0;
        }
        try {
            return body(argc, argv);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote-mpi %s: %s\n", example, e.what());
            std::fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote-mpi %s: %s\n", example, e.what());
    }
    return 2;
}

}  // namespace coyote::mpi::examples
