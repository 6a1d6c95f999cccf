// coyote-mpi perftest-style tools: the output as perftest prints it (header with both queue pairs' addresses,
// the result table) and the --out_json file.
#include <cstdio>
#include <fstream>

#include <coyote/error.hpp>

#include "common/json.hpp"
#include "perftest/perftest.hpp"

namespace coyote::tools::perftest {

namespace {

constexpr const char* k_line = "---------------------------------------------------------------------------------------\n";

/// perftest's address line: LID (none on RoCE), QPN, PSN, RKey, VAddr; then the GID (IPv4-mapped, as RoCE v2).
void print_address(const char* side, const ibvQ& q) {
    std::printf(" %s address: LID %04x QPN 0x%04x PSN 0x%06x RKey 0x%06x VAddr 0x%014llx\n", side, 0u, q.qpn,
                q.psn, q.rkey, static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(q.vaddr)));
    std::printf(" GID: 00:00:00:00:00:00:00:00:00:00:255:255:%02u:%02u:%02u:%02u\n", (q.ip_addr >> 24) & 0xFF,
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

void print_header(const Options& o, Session& s) {
    cThread& t = s.thread();
    std::printf("%s", k_line);
    std::printf("                    %s\n", test_name(o).c_str());
    std::printf(" Backend         : %s\t\tDevice         : %u (vFPGA %d, ctid %d)\n", t.backendName().c_str(),
                t.getDevice(), t.getVfid(), t.getCtid());
    std::printf(" Number of qps   : 1\t\tTransport type : Coyote RoCE v2\n");
    std::printf(" Connection type : RC\t\tSide           : %s\n", s.client() ? "client" : "server");
    std::printf(" TX depth        : %d\n", o.kind == Kind::lat ? 1 : CMD_FIFO_DEPTH - CMD_FIFO_THR);
    std::printf(" Data ex. method : %s\n", s.exchange_method());
    std::printf("%s", k_line);
    print_address("local", t.getQpair()->local);
    print_address("remote", t.getQpair()->remote);
    std::printf("%s", k_line);
    std::fflush(stdout);
}

void print_columns(const Options& o) {
    if (o.kind == Kind::lat)
        std::printf(" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    "
                    "t_stdev[usec]   99%% percentile[usec]   99.9%% percentile[usec] \n");
    else if (o.gbits)
        std::printf(" #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]\n");
    else
        std::printf(" #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]\n");
    std::fflush(stdout);
}

void print_row(const Options& o, const Result& r) {
    if (o.kind == Kind::lat)
        std::printf(" %-7llu %-10u     %-7.2f        %-7.2f      %-7.2f  \t       %-7.2f     \t%-7.2f\t\t%-7.2f "
                    "\t\t%-7.2f\n",
                    static_cast<unsigned long long>(r.bytes), r.iters, r.t_min, r.t_max, r.t_typical, r.t_avg,
                    r.t_stdev, r.p99, r.p999);
    else
        std::printf(" %-7llu    %-10u       %-7.2f            %-7.2f\t\t   %-7.6f\n",
                    static_cast<unsigned long long>(r.bytes), r.iters, r.bw_peak, r.bw_avg, r.msg_rate);
    std::fflush(stdout);
}

void write_json(const Options& o, Session& s, const std::vector<Result>& results) {
    if (o.json_file.empty()) return;
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
    std::ofstream out(o.json_file, std::ios::trunc);
    out << root.dump();
    if (!out) throw_error(Errc::invalid_argument, o.tool, "cannot write " + o.json_file);
}

}  // namespace coyote::tools::perftest
