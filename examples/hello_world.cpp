// coyote-mpi example: local data movement through one vFPGA (sim backend on machines without an FPGA).
//
// For every size from --min to --max (powers of two) it fills a source buffer with known data, moves it
// through the vFPGA with LOCAL_TRANSFER (or LOCAL_READ / LOCAL_WRITE with --oper), checks the destination,
// and measures throughput (batches of back-to-back operations) and single-operation latency with cBench.
// The expected destination is the source itself (passthrough user logic) or, with COYOTE_SIM_MODEL=perf_local,
// every 32-bit word of the source plus one. Exits non-zero when a check fails.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <coyote/cBench.hpp>
#include <coyote/cThread.hpp>

namespace {

using coyote::CoyoteOper;

/// What the user logic does to the data, as far as this example can check it.
enum class Expect { identity, plus_one, unknown };

struct Options {
    unsigned runs = 50;
    uint64_t min_size = 4 * 1024;
    uint64_t max_size = 1024 * 1024;
    unsigned batch = 16; ///< operations per throughput run
    CoyoteOper oper = CoyoteOper::LOCAL_TRANSFER;
    coyote::CoyoteAllocType alloc = coyote::CoyoteAllocType::THP;
};

void usage(std::ostream& out, const char* argv0) {
    out << "usage: " << argv0
              << " [--runs N] [--min SIZE] [--max SIZE] [--batch N] [--oper transfer|read|write]"
                 " [--alloc reg|thp|hpf]\n"
                 "  SIZE is in bytes, with an optional K or M suffix (KiB, MiB); a power of two, 64 B .. 128 MiB.\n"
                 "  Defaults: --runs 50 --min 4K --max 1M --batch 16 --oper transfer --alloc thp\n";
}

std::optional<uint64_t> parse_uint(std::string_view s) {
    if (s.empty() || s.size() > 12) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
}

std::optional<uint64_t> parse_size(std::string_view s) {
    uint64_t mult = 1;
    auto strip = [&s](std::string_view suffix) {
        if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
            s.remove_suffix(suffix.size());
            return true;
        }
        return false;
    };
    if (strip("KiB") || strip("K") || strip("k"))
        mult = 1024;
    else if (strip("MiB") || strip("M") || strip("m"))
        mult = 1024 * 1024;
    auto v = parse_uint(s);
    if (!v) return std::nullopt;
    return *v * mult;
}

bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/// Whether the command line asks for the usage.
bool wants_help(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "-h" || std::string_view(argv[i]) == "--help") return true;
    return false;
}

/// Parses argv; prints the problem and returns nullopt on bad input.
std::optional<Options> parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) {
            std::cerr << "error: " << arg << " needs a value (or is unknown)\n";
            return std::nullopt;
        }
        const std::string_view val = argv[++i];
        if (arg == "--runs" || arg == "--batch") {
            auto v = parse_uint(val);
            if (!v || *v == 0 || *v > 1000000) {
                std::cerr << "error: " << arg << " must be an integer in 1..1000000, got '" << val << "'\n";
                return std::nullopt;
            }
            (arg == "--runs" ? o.runs : o.batch) = static_cast<unsigned>(*v);
        } else if (arg == "--min" || arg == "--max") {
            auto v = parse_size(val);
            if (!v || !is_pow2(*v) || *v < 64 || *v > coyote::MAX_TRANSFER_SIZE) {
                std::cerr << "error: " << arg << " must be a power of two between 64 B and 128 MiB, got '" << val
                          << "'\n";
                return std::nullopt;
            }
            (arg == "--min" ? o.min_size : o.max_size) = *v;
        } else if (arg == "--oper") {
            if (val == "transfer")
                o.oper = CoyoteOper::LOCAL_TRANSFER;
            else if (val == "read")
                o.oper = CoyoteOper::LOCAL_READ;
            else if (val == "write")
                o.oper = CoyoteOper::LOCAL_WRITE;
            else {
                std::cerr << "error: --oper must be transfer, read or write, got '" << val << "'\n";
                return std::nullopt;
            }
        } else if (arg == "--alloc") {
            if (val == "reg")
                o.alloc = coyote::CoyoteAllocType::REG;
            else if (val == "thp")
                o.alloc = coyote::CoyoteAllocType::THP;
            else if (val == "hpf")
                o.alloc = coyote::CoyoteAllocType::HPF;
            else {
                std::cerr << "error: --alloc must be reg, thp or hpf, got '" << val << "'\n";
                return std::nullopt;
            }
        } else {
            std::cerr << "error: unknown option '" << arg << "'\n";
            return std::nullopt;
        }
    }
    if (o.min_size > o.max_size) {
        std::cerr << "error: --min (" << o.min_size << ") is larger than --max (" << o.max_size << ")\n";
        return std::nullopt;
    }
    return o;
}

const char* oper_label(CoyoteOper oper) {
    switch (oper) {
    case CoyoteOper::LOCAL_READ: return "LOCAL_READ";
    case CoyoteOper::LOCAL_WRITE: return "LOCAL_WRITE";
    default: return "LOCAL_TRANSFER";
    }
}

const char* alloc_label(coyote::CoyoteAllocType t) {
    switch (t) {
    case coyote::CoyoteAllocType::REG: return "REG";
    case coyote::CoyoteAllocType::HPF: return "HPF";
    default: return "THP";
    }
}

Expect expected_transform() {
    const char* model = std::getenv("COYOTE_SIM_MODEL");
    if (model == nullptr || *model == '\0' || std::string_view(model) == "passthrough") return Expect::identity;
    if (std::string_view(model) == "perf_local") return Expect::plus_one;
    return Expect::unknown;
}

/// Known, size-dependent content: 32-bit words that differ from their neighbours and between sizes.
void fill_source(uint32_t* words, uint64_t n_words, uint64_t size) {
    for (uint64_t i = 0; i < n_words; ++i)
        words[i] = static_cast<uint32_t>((i * 2654435761ULL) ^ (size << 3) ^ 0x5a5a0000ULL);
}

/// Checks `dst` against `src` under `expect`; reports the first mismatch.
bool verify(const uint32_t* src, const uint32_t* dst, uint64_t n_words, Expect expect) {
    for (uint64_t i = 0; i < n_words; ++i) {
        const uint32_t want = expect == Expect::plus_one ? src[i] + 1u : src[i];
        if (dst[i] != want) {
            std::cerr << "verification failed at byte offset " << i * 4 << ": expected 0x" << std::hex << want
                      << ", found 0x" << dst[i] << std::dec << std::endl;
            return false;
        }
    }
    return true;
}

/// Polls checkCompleted(oper) until it reaches `target`; throws a timeout error after 30 s.
void wait_completed(const coyote::cThread& thread, CoyoteOper oper, uint32_t target) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (unsigned spins = 0; thread.checkCompleted(oper) < target; ++spins) {
        if ((spins & 0xFFu) == 0xFFu && std::chrono::steady_clock::now() > deadline)
            coyote::throw_error(coyote::Errc::timeout, "checkCompleted",
                                std::string(oper_label(oper)) + " completions stayed below " +
                                    std::to_string(target) + " for 30 s");
    }
}

/// One size: the buffers, and the operations the selected mode issues.
class SizeRun {
public:
    SizeRun(coyote::cThread& thread, const Options& opt, uint64_t size)
        : thread_(thread), opt_(opt), size_(size), n_words_(size / sizeof(uint32_t)) {
        const auto len = static_cast<uint32_t>(size);
        src_ = static_cast<uint32_t*>(thread.getMem({opt.alloc, len}));
        dst_ = static_cast<uint32_t*>(thread.getMem({opt.alloc, len}));
        src_sg_ = {.addr = src_, .len = len};
        dst_sg_ = {.addr = dst_, .len = len};
    }
    ~SizeRun() {
        thread_.freeMem(src_);
        thread_.freeMem(dst_);
    }
    SizeRun(const SizeRun&) = delete;
    SizeRun& operator=(const SizeRun&) = delete;

    /// Fills the source, clears the destination, moves the data once and checks it.
    bool first_pass_ok(Expect expect) {
        fill_source(src_, n_words_, size_);
        std::memset(dst_, 0, size_);
        thread_.clearCompleted();
        if (opt_.oper == CoyoteOper::LOCAL_TRANSFER) {
            thread_.invoke(CoyoteOper::LOCAL_TRANSFER, src_sg_, dst_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_TRANSFER, 1);
        } else {
            // The stream goes memory -> user logic -> memory: a read feeds it, a write drains it.
            thread_.invoke(CoyoteOper::LOCAL_READ, src_sg_);
            thread_.invoke(CoyoteOper::LOCAL_WRITE, dst_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_READ, 1);
            wait_completed(thread_, CoyoteOper::LOCAL_WRITE, 1);
        }
        return expect == Expect::unknown || verify(src_, dst_, n_words_, expect);
    }

    /// `count` operations of the selected kind, back to back, then waits for all of them. In read mode the
    /// output of the reads is drained by untimed writes in prepare(); in write mode prepare() feeds it.
    void timed_ops(uint32_t count) {
        switch (opt_.oper) {
        case CoyoteOper::LOCAL_TRANSFER:
            for (uint32_t i = 0; i < count; ++i) thread_.invoke(CoyoteOper::LOCAL_TRANSFER, src_sg_, dst_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_TRANSFER, count);
            break;
        case CoyoteOper::LOCAL_READ:
            for (uint32_t i = 0; i < count; ++i) thread_.invoke(CoyoteOper::LOCAL_READ, src_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_READ, count);
            break;
        default:
            for (uint32_t i = 0; i < count; ++i) thread_.invoke(CoyoteOper::LOCAL_WRITE, dst_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_WRITE, count);
            break;
        }
        pending_ = count;
    }

    /// Untimed: drains what the previous timed reads produced, or feeds the next timed writes; clears
    /// the completion counters.
    void prepare(uint32_t next_count) {
        if (opt_.oper == CoyoteOper::LOCAL_READ && pending_ > 0) {
            thread_.clearCompleted();
            for (uint32_t i = 0; i < pending_; ++i) thread_.invoke(CoyoteOper::LOCAL_WRITE, dst_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_WRITE, pending_);
        }
        pending_ = 0;
        thread_.clearCompleted();
        if (opt_.oper == CoyoteOper::LOCAL_WRITE) {
            for (uint32_t i = 0; i < next_count; ++i) thread_.invoke(CoyoteOper::LOCAL_READ, src_sg_);
            wait_completed(thread_, CoyoteOper::LOCAL_READ, next_count);
            thread_.clearCompleted();
        }
    }

    /// After the timed runs: the destination still holds the expected data.
    bool final_check(Expect expect) {
        prepare(0);
        return expect == Expect::unknown || verify(src_, dst_, n_words_, expect);
    }

private:
    coyote::cThread& thread_;
    const Options& opt_;
    uint64_t size_;
    uint64_t n_words_;
    uint32_t* src_ = nullptr;
    uint32_t* dst_ = nullptr;
    coyote::localSg src_sg_;
    coyote::localSg dst_sg_;
    uint32_t pending_ = 0;
};

std::string size_label(uint64_t size) {
    if (size >= 1024 * 1024) return std::to_string(size / (1024 * 1024)) + " MiB";
    if (size >= 1024) return std::to_string(size / 1024) + " KiB";
    return std::to_string(size) + " B";
}

}  // namespace

int main(int argc, char** argv) {
    if (wants_help(argc, argv)) {
        usage(std::cout, argv[0]);
        return 0;
    }
    const auto opt = parse_args(argc, argv);
    if (!opt) {
        usage(std::cerr, argv[0]);
        return 2;
    }
    const Expect expect = expected_transform();

    try {
        HEADER("CLI PARAMETERS");
        std::cout << "Operation: " << oper_label(opt->oper) << std::endl;
        std::cout << "Sizes: " << size_label(opt->min_size) << " .. " << size_label(opt->max_size) << std::endl;
        std::cout << "Runs per size: " << opt->runs << " (throughput: " << opt->batch << " operations per run)"
                  << std::endl;
        std::cout << "Allocation: " << alloc_label(opt->alloc) << std::endl;

        coyote::cThread thread(0, getpid());
        HEADER("vFPGA");
        std::cout << "Backend: " << thread.backendName() << ", vFPGA " << thread.getVfid() << ", ctid "
                  << thread.getCtid() << std::endl;
        const char* model = std::getenv("COYOTE_SIM_MODEL");
        std::cout << "User logic (COYOTE_SIM_MODEL): " << (model != nullptr && *model != '\0' ? model : "default")
                  << "; expected output: "
                  << (expect == Expect::identity   ? "identical to the input"
                      : expect == Expect::plus_one ? "every 32-bit word + 1"
                                                   : "unknown, not verified")
                  << std::endl;

        HEADER("RESULTS");
        std::printf("%10s  %16s  %14s  %14s  %9s\n", "size", "throughput MB/s", "p50 lat [us]", "p95 lat [us]",
                    "verified");
        bool all_ok = true;
        const unsigned warmups = std::min(opt->runs, 10u);
        for (uint64_t size = opt->min_size; size <= opt->max_size; size *= 2) {
            SizeRun run(thread, *opt, size);
            bool ok = run.first_pass_ok(expect);

            // Throughput: `batch` operations back to back per run; MB = 10^6 bytes.
            coyote::cBench tput(opt->runs, warmups);
            tput.execute([&] { run.timed_ops(opt->batch); }, [&] { run.prepare(opt->batch); });
            const double mbps =
                static_cast<double>(size) * static_cast<double>(opt->batch) / tput.getP50() * 1e3;

            // Latency: one operation, invoke until checkCompleted sees it.
            coyote::cBench lat(opt->runs, warmups);
            lat.execute([&] { run.timed_ops(1); }, [&] { run.prepare(1); });

            ok = run.final_check(expect) && ok;
            all_ok = all_ok && ok;
            std::printf("%10s  %16.1f  %14.2f  %14.2f  %9s\n", size_label(size).c_str(), mbps, lat.getP50() / 1e3,
                        lat.getP95() / 1e3, expect == Expect::unknown ? "skipped" : (ok ? "yes" : "NO"));
            std::fflush(stdout);
        }

        if (!all_ok) {
            std::cerr << "FAILED: the destination did not hold the expected data for at least one size" << std::endl;
            return 1;
        }
        std::cout << (expect == Expect::unknown ? "\nDone (output not verified for this user logic)."
                                                : "\nAll sizes verified.")
                  << std::endl;
        // A table that did not reach standard output (a full disk) is a failed run, not exit 0.
        if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || !std::cout.good()) {
            std::cerr << "error: cannot write the results to standard output" << std::endl;
            return 1;
        }
        return 0;
    } catch (const coyote::Error& e) {
        std::cerr << "error: " << e.what() << std::endl;
        return 1;
    }
}
