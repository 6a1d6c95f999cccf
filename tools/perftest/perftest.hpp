// coyote-mpi perftest-style tools (coyote_write_lat, coyote_write_bw, coyote_read_lat, coyote_read_bw,
// coyote_send_lat, coyote_send_bw): options, results and the pieces the six tools share.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <coyote/cThread.hpp>

namespace coyote::tools::perftest {

enum class Verb { write, read, send };
enum class Kind { lat, bw };

/// Command-line options, as perftest's where they make sense.
struct Options {
    Verb verb = Verb::write;
    Kind kind = Kind::lat;
    std::optional<std::string> server; ///< client of this server; unset: server (TCP mode)
    uint16_t port = 18515;             ///< -p (perftest's default port)
    uint64_t size = 2;                 ///< -s
    bool all = false;                  ///< -a: 2 B .. 8 MiB
    uint32_t iters = 1000;             ///< -n
    bool gbits = false;                ///< --report_gbits
    std::string json_file;             ///< --out_json / --out_json_file: results as JSON
    bool json_path_given = false;      ///< --out_json_file (a TCP server writes only then: not into the client's)
    uint32_t device = 0;               ///< -d
    int32_t vfid = 0;                  ///< -i
    bool device_set = false, vfid_set = false;
    std::string tool;                  ///< the tool's name
};

/// Parses the command line of tool (`verb`, `kind`); throws coyote::Error (invalid_argument) naming the bad
/// option; returns nullopt after printing the help (-h).
std::optional<Options> parse_options(int argc, char** argv, Verb verb, Kind kind);
/// The message sizes of a run (one, or every power of two from 2 B to 8 MiB with -a).
std::vector<uint64_t> sizes_of(const Options& o);

/// One connected pair: a cThread whose queue pair is wired to the peer's, over TCP (perftest style) or MPI.
class Session {
public:
    virtual ~Session() = default;
    virtual cThread& thread() = 0;
    /// The side that posts first / reads (perftest's client).
    virtual bool client() const = 0;
    /// "Ethernet (TCP out-of-band)" or "MPI".
    virtual const char* exchange_method() const = 0;
    /// The registered buffer (2 x the largest size).
    virtual std::byte* buffer() = 0;

    /// The report's text: printed and flushed at once, or held until finish_output() on an MPI server, whose
    /// client prints it after its own (one writer per job keeps the lines whole under mpirun).
    void out(std::string_view text);
    /// Ends the report: an MPI server hands its held text to the client, which prints it. No-op over TCP.
    virtual void finish_output() {}
    /// This side writes the --out_json file: the client; over TCP also a server given --out_json_file (with the
    /// default name both sides of a one-host run would write one file; under MPI both ranks share the path).
    virtual bool writes_json(const Options& o) const { return client() || o.json_path_given; }

protected:
    bool hold_output_ = false;
    std::string held_;
};

/// Opens the session: under mpirun -np 2 (when built with the MPI layer) rank 0 serves and rank 1 connects;
/// else TCP as perftest (server without an address). `buffer_size` bytes are registered on both sides.
std::unique_ptr<Session> open_session(const Options& o, uint64_t buffer_size, int* argc, char*** argv);

/// One measured size.
struct Result {
    uint64_t bytes = 0;
    uint32_t iters = 0;
    // latency (usec)
    double t_min = 0, t_max = 0, t_typical = 0, t_avg = 0, t_stdev = 0, p99 = 0, p999 = 0;
    // bandwidth
    double bw_peak = 0, bw_avg = 0, msg_rate = 0; ///< MB/sec (or Gb/sec) and Mpps
    bool measured = false; ///< this side measured (the passive side of a READ does not)
    bool verified = false; ///< the received data matched the sender's pattern
    uint64_t checked_bytes = 0;
};

/// Runs one size on this side (the peer runs the same call); verifies the received bytes.
Result run_size(Session& s, const Options& o, uint64_t size, uint64_t max_size);

/// Latency figures from per-iteration samples (usec) and the loop's total time (usec) for `iters` iterations;
/// `halve` for one-way latencies of round trips (write, send).
void latency_stats(Result& r, std::vector<double>& samples, double loop_us, bool halve);
/// Bandwidth figures from the post timestamps (usec, one per message) and the loop's total time. The peak counts
/// only posts after the first `tx_depth` (those before are not paced by completions).
void bandwidth_stats(Result& r, const std::vector<double>& post_us, double loop_us, bool gbits, size_t tx_depth);
/// The TX depth of the bandwidth tests (posts in flight before completions pace them).
constexpr size_t k_tx_depth = CMD_FIFO_DEPTH - CMD_FIFO_THR;

/// The perftest header: test name, settings, local and remote address lines.
void print_header(const Options& o, Session& s);
/// The column header line of the test's table.
void print_columns(const Options& o, Session& s);
/// One table row.
void print_row(const Options& o, Session& s, const Result& r);
/// The closing line and the data verdict.
void print_verdict(Session& s, bool all_verified, std::size_t sizes);
/// The --out_json file, opened (truncated) when this side writes one (Session::writes_json), else a closed stream;
/// throws coyote::Error naming the path and the reason when it cannot be created.
std::ofstream open_json(const Options& o, const Session& s);
/// Writes the results as JSON into `out` (from open_json; nothing when it is not open) and closes it; throws
/// coyote::Error naming the path and the reason when the write fails (a full disk).
void write_json(const Options& o, Session& s, const std::vector<Result>& results, std::ofstream& out);

/// "RDMA_Write", "RDMA_Read", "Send".
const char* verb_label(Verb v);

}  // namespace coyote::tools::perftest
