// coyote-mpi perftest-style tools: the output as perftest prints it (header with both queue pairs' addresses,
// the result table) and the --out_json file.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <fstream>

#include <coyote/error.hpp>

#include "common/json.hpp"
#include "common/output.hpp"
#include "perftest/perftest.hpp"

namespace coyote::tools::perftest {

namespace {

/// Throws the errno of a failed stream operation (EIO when the stream left none).
[[noreturn]] void io_failed(const Options& o, const std::string& what) {
    if (errno == 0) errno = EIO;
    throw_errno(o.tool, what);
}

constexpr const char* k_line =
    "---------------------------------------------------------------------------------------\n";

/// printf into a string.
[[gnu::format(printf, 1, 2)]] std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list again;
    va_copy(again, ap);
    const int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string text(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
    if (n > 0) std::vsnprintf(text.data(), text.size() + 1, fmt, again);
    va_end(again);
    return text;
}

/// perftest's address line: LID (none on RoCE), QPN, PSN, RKey, VAddr; then the GID (IPv4-mapped, as RoCE v2).
std::string address(const char* side, const ibvQ& q) {
    return format(" %s address: LID %04x QPN 0x%04x PSN 0x%06x RKey 0x%06x VAddr 0x%014llx\n", side, 0u, q.qpn,
                q.psn, q.rkey, static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(q.vaddr))) +
           format(" GID: 00:00:00:00:00:00:00:00:00:00:255:255:%02u:%02u:%02u:%02u\n", (q.ip_addr >> 24) & 0xFF,
                (q.ip_addr >> 16) & 0xFF, (q.ip_addr >> 8) & 0xFF, q.ip_addr & 0xFF);
}

std::string test_name(const Options& o) {
    return std::string(verb_label(o.verb)) + (o.kind == Kind::lat ? " Latency Test" : " BW Test");
}

}  // namespace

const char* verb_label(Verb v) {
    switch (v) {
    case Verb::read: return "RDMA_Read";
    case Verb::send: return "Send";
    default: return "RDMA_Write";
    }
}

void Session::out(std::string_view text) {
    if (hold_output_) {
        held_.append(text);
        return;
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

void print_header(const Options& o, Session& s) {
    cThread& t = s.thread();
    std::string h = k_line;
    h += format("                    %s\n", test_name(o).c_str());
    h += format(" Backend         : %s\t\tDevice         : %u (vFPGA %d, ctid %d)\n", t.backendName().c_str(),
                t.getDevice(), t.getVfid(), t.getCtid());
    h += " Number of qps   : 1\t\tTransport type : Coyote RoCE v2\n";
    h += format(" Connection type : RC\t\tSide           : %s\n", s.client() ? "client" : "server");
    h += format(" TX depth        : %d\n", o.kind == Kind::lat ? 1 : static_cast<int>(k_tx_depth));
    h += format(" Data ex. method : %s\n", s.exchange_method());
    h += k_line;
    h += address("local", t.getQpair()->local);
    h += address("remote", t.getQpair()->remote);
    h += k_line;
    s.out(h);
}

void print_columns(const Options& o, Session& s) {
    if (o.kind == Kind::lat)
        s.out(" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    "
              "t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] \n");
    else if (o.gbits)
        s.out(" #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]\n");
    else
        s.out(" #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]\n");
}

void print_row(const Options& o, Session& s, const Result& r) {
    if (o.kind == Kind::lat)
        s.out(format(" %-7llu %-10u     %-7.2f        %-7.2f      %-7.2f  \t       %-7.2f     \t%-7.2f\t\t%-7.2f "
                     "\t\t%-7.2f\n",
                     static_cast<unsigned long long>(r.bytes), r.iters, r.t_min, r.t_max, r.t_typical, r.t_avg,
                     r.t_stdev, r.p99, r.p999));
    else
        s.out(format(" %-7llu    %-10u       %-7.2f            %-7.2f\t\t   %-7.6f\n",
                     static_cast<unsigned long long>(r.bytes), r.iters, r.bw_peak, r.bw_avg, r.msg_rate));
}

void print_verdict(Session& s, bool all_verified, std::size_t sizes) {
    std::string v = k_line;
    if (all_verified)
        v += format(" data verified: every received message matched the sender's pattern (%zu size%s)\n", sizes,
                    sizes == 1 ? "" : "s");
    else
        v += " DATA MISMATCH: the received bytes differ from the sender's pattern\n";
    s.out(v);
}

std::ofstream open_json(const Options& o, const Session& s) {
    std::ofstream out;
    if (o.json_file.empty() || !s.writes_json(o)) return out;
    out = coyote::tools::open_private(o.json_file);
    if (!out) io_failed(o, "cannot create the JSON file " + o.json_file);
    return out;
}

void write_json(const Options& o, Session& s, const std::vector<Result>& results, std::ofstream& out) {
    if (!out.is_open()) return;
    Json root = Json::object();
    root.set("test", test_name(o));
    root.set("tool", o.tool);
    root.set("backend", s.thread().backendName());
    root.set("side", s.client() ? "client" : "server");
    root.set("exchange", s.exchange_method());
    root.set("units", o.kind == Kind::lat ? "usec" : (o.gbits ? "Gb/sec" : "MB/sec"));
    Json rows = Json::array();
    for (const Result& r : results) {
        Json j = Json::object();
        j.set("bytes", r.bytes);
        j.set("iterations", r.iters);
        j.set("measured", r.measured);
        const std::pair<const char*, double> lat[] = {{"t_min", r.t_min},     {"t_max", r.t_max},
                                                      {"t_typical", r.t_typical}, {"t_avg", r.t_avg},
                                                      {"t_stdev", r.t_stdev}, {"p99", r.p99}, {"p99_9", r.p999}};
        const std::pair<const char*, double> bw[] = {
            {"bw_peak", r.bw_peak}, {"bw_average", r.bw_avg}, {"msg_rate_mpps", r.msg_rate}};
        if (r.measured && o.kind == Kind::lat)
            for (const auto& [k, v] : lat) j.set(k, v);
        else if (r.measured)
            for (const auto& [k, v] : bw) j.set(k, v);
        j.set("data_verified", r.verified);
        j.set("checked_bytes", r.checked_bytes);
        rows.push(std::move(j));
    }
    root.set("results", std::move(rows));
    errno = 0;
    out << root.dump() << '\n';
    out.close(); // flushes: a full disk shows here
    if (!out) io_failed(o, "cannot write the JSON file " + o.json_file);
}

}  // namespace coyote::tools::perftest
