// coyote-mpi diagnostics: snapshots of a cThread's state, the likeliest cause of a stall, the report text.
#include "diag/doctor.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "backend/sim/identity.hpp"
#include "backend/sim/segments.hpp"
#include "diag/sim_probe.hpp"

namespace coyote::detail::diag {

namespace {

/// On demand, counters that moved more recently than this are progressing, not stalled.
constexpr double k_progressing_s = 1.0;

bool is_sim(const Snapshot& s) { return s.backend == "sim"; }

uint64_t sum(const uint64_t (&v)[k_classes]) {
    uint64_t t = 0;
    for (uint64_t x : v) t += x;
    return t;
}

void copy_counters(const StatusSlot& slot, uint64_t (&posted)[k_classes], uint32_t (&completed)[k_classes]) {
    for (uint32_t c = 0; c < k_classes; ++c) {
        posted[c] = slot.posted[c].load(std::memory_order_relaxed);
        completed[c] = slot.completed[c].load(std::memory_order_relaxed);
    }
}

/// The slot of the peer: by (pid, device, vfid, ctid) when the backend named it, else by (qpn, ip) in every
/// status segment of this user (hw: the FPGA IP names the card).
void find_peer_slot(Snapshot& s, const StatusSlot& slot) {
    auto matches_named = [&](const StatusSlot& o) {
        return o.device == slot.peer_device && o.vfid == slot.peer_vfid && o.ctid == slot.peer_ctid;
    };
    auto matches_qp = [&](const StatusSlot& o) {
        return o.has_qp.load(std::memory_order_acquire) != 0 && o.local.qpn == s.remote.qpn && o.local.ip == s.remote.ip;
    };
    std::vector<ProcessStatus> candidates;
    if (slot.peer_pid != 0) {
        if (auto p = open_process(slot.peer_pid)) candidates.push_back(std::move(*p));
    } else {
        candidates = open_all();
    }
    for (const ProcessStatus& p : candidates) {
        if (p.pid == s.pid) continue;
        for (const auto& [index, o] : p.slots) {
            if (slot.peer_pid != 0 ? !matches_named(*o) : !matches_qp(*o)) continue;
            s.peer_slot_found = true;
            if (s.peer_pid == 0) s.peer_pid = p.pid;
            copy_counters(*o, s.peer_posted, s.peer_completed);
            if (slot.peer_pid == 0) s.peer = p.alive ? Snapshot::Peer::alive : Snapshot::Peer::gone;
            return;
        }
    }
}

/// True when process `pid` is stopped (state T or t in /proc/<pid>/stat).
bool process_stopped(int32_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    const auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && (stat[paren + 2] == 'T' || stat[paren + 2] == 't');
}

void probe_peer(Snapshot& s, const StatusSlot& slot) {
    if (!s.has_qp) return;
    s.peer = Snapshot::Peer::unknown;
    if (slot.peer_pid != 0) {
        s.peer_pid = slot.peer_pid;
        s.peer = sim::process_alive(slot.peer_pid, slot.peer_start_time) ? Snapshot::Peer::alive
                                                                          : Snapshot::Peer::gone;
    }
    find_peer_slot(s, slot);
    s.peer_stopped = s.peer == Snapshot::Peer::alive && s.peer_pid != 0 && process_stopped(s.peer_pid);
    if (is_sim(s)) {
        s.refused_here = sim_probe::rejections(sim_probe::nic_name(s.pid, s.device, s.vfid), s.ctid);
        if (slot.peer_nic[0] != '\0' && s.peer != Snapshot::Peer::gone)
            s.refused_there = sim_probe::rejections(std::string(slot.peer_nic, strnlen(slot.peer_nic, sizeof slot.peer_nic)),
                                                    slot.peer_ctid);
        if (auto psn = sim_probe::expected_psn(sim_probe::nic_name(s.pid, s.device, s.vfid), s.ctid)) {
            s.expected_psn = *psn;
            s.expected_psn_known = true;
        }
    }
}

std::string fmt(const char* f, auto... args) {
    char b[512];
    std::snprintf(b, sizeof b, f, args...);
    return b;
}

std::string counters_line(const uint64_t (&posted)[k_classes], const uint32_t (&completed)[k_classes]) {
    std::string out;
    for (uint32_t c = 0; c < k_classes; ++c)
        out += fmt("%s%s %llu/%u", c ? ", " : "", class_name(c), static_cast<unsigned long long>(posted[c]),
                   completed[c]);
    return out;
}

/// Classes whose posted commands outnumber their completions.
std::string outstanding(const Snapshot& s, bool remote) {
    std::string out;
    for (uint32_t c = remote ? 2 : 0; c < (remote ? 4u : 2u); ++c)
        if (s.posted[c] > s.completed[c])
            out += fmt("%s%llu %s", out.empty() ? "" : ", ",
                       static_cast<unsigned long long>(s.posted[c] - s.completed[c]), class_name(c));
    return out;
}

std::string peer_name(const Snapshot& s) { return fmt("process %d", s.peer_pid); }

/// What the hw backend cannot tell: Coyote's RoCE stack counts packets, PSN drops and retransmissions (the driver's
/// IOCTL_SHELL_NET_STATS / sysfs net stats) but no refused request, and the peer is visible only on this host.
constexpr const char* k_hw_blind =
    " (hw: the NIC reports no refused request, so a window or rkey refusal at the peer cannot be told apart from a "
    "lost request; compare the shell's PSN-drop and retransmission counters, coyote-info -v, on both nodes)";

bool is_hw(const Snapshot& s) { return s.backend == "hw"; }

/// Whether the NIC refused a request to the queue pair in question since this cThread opened: a refusal on another
/// queue pair of the same NIC (another ctid, or an earlier owner of this one) does not stall this one.
bool refused_on_this_qp(const Snapshot& s, const Rejections& r) {
    return r.total > 0 && r.latest_ns != 0 && r.latest_ns >= s.opened_ns;
}

/// Seconds since the latest refusal of `r`.
double latest_age_s(const Rejections& r) { return static_cast<double>(monotonic_ns() - r.latest_ns) / 1e9; }

/// "2" or "2 (the latest to this queue pair 1.2 s ago)".
std::string refused_count(const Rejections& r) {
    std::string out = std::to_string(r.total);
    if (r.latest_ns != 0) out += fmt(" (the latest to this queue pair %.1f s ago)", latest_age_s(r));
    return out;
}

/// "the latest to this queue pair (bounds) 1.2 s ago".
std::string latest_refusal(const Rejections& r) {
    return fmt("the latest to this queue pair (%s) %.1f s ago", r.latest_check.c_str(), latest_age_s(r));
}

}  // namespace

Snapshot take_snapshot(const StatusSlot& slot, int32_t pid) {
    Snapshot s;
    s.pid = pid;
    s.device = slot.device;
    s.vfid = slot.vfid;
    s.ctid = slot.ctid;
    s.backend.assign(slot.backend, strnlen(slot.backend, sizeof slot.backend));
    copy_counters(slot, s.posted, s.completed);
    if (is_sim(s)) (void)sim_probe::completions(pid, s.device, s.vfid, s.ctid, s.completed); // live values
    s.polled_class = slot.polled_class.load(std::memory_order_relaxed);
    s.polled_value = slot.polled_value.load(std::memory_order_relaxed);
    s.stalled_s = static_cast<double>(monotonic_ns() - slot.last_progress_ns.load(std::memory_order_relaxed)) / 1e9;
    s.opened_ns = slot.opened_ns.load(std::memory_order_relaxed);
    s.waiting_post = slot.waiting_post.load(std::memory_order_relaxed) != 0;
    s.has_qp = slot.has_qp.load(std::memory_order_acquire) != 0;
    if (s.has_qp) {
        s.local = slot.local;
        s.remote = slot.remote;
    }
    probe_peer(s, slot);
    return s;
}

bool definite_cause(const Snapshot& s) {
    return s.peer == Snapshot::Peer::gone || s.peer_stopped || refused_on_this_qp(s, s.refused_there) ||
           refused_on_this_qp(s, s.refused_here) || s.waiting_post ||
           (!outstanding(s, false).empty() && s.posted[1] > s.completed[1]);
}

std::string likeliest_cause(const Snapshot& s) {
    using P = Snapshot::Peer;
    if (s.on_demand && s.stalled_s < k_progressing_s)
        return fmt("progressing: the counters of this ctid moved %.3f s ago", s.stalled_s);
    if (s.peer == P::gone)
        return "peer gone: " + peer_name(s) + " (QPN " + fmt("0x%06x", s.remote.qpn) +
               ") has exited; nothing it was to send will arrive";
    if (s.peer_stopped)
        return "peer stopped: " + peer_name(s) + " is stopped (SIGSTOP, a debugger or job control); it posts "
               "nothing until it is continued";
    if (refused_on_this_qp(s, s.refused_there))
        return "window or rkey refused: the peer's NIC refused " + std::to_string(s.refused_there.total) +
               " request(s) (" + s.refused_there.by_check + "), " + latest_refusal(s.refused_there) +
               ": the target range lies outside its registered buffer and windows, or the rkey does not match";
    if (refused_on_this_qp(s, s.refused_here))
        return "window or rkey refused: this vFPGA's NIC refused " + std::to_string(s.refused_here.total) +
               " request(s) of the peer (" + s.refused_here.by_check + "), " + latest_refusal(s.refused_here) +
               ": what this side waits for was rejected at its own window / rkey check";
    if (s.waiting_post)
        return fmt("back-pressure: the command FIFO of ctid %d stays full (%s outstanding); its commands do not "
                   "complete", s.ctid, (outstanding(s, false) + outstanding(s, true)).c_str());
    if (const std::string local = outstanding(s, false); !local.empty() && s.posted[1] > s.completed[1])
        return "user logic: " + local + " command(s) posted but not completed: the vFPGA's user logic produced "
               "no output (or waits for input)";
    if (s.peer == P::alive && s.peer_slot_found && sum(s.peer_posted) == 0)
        return "peer never posted: " + peer_name(s) + " is alive but has posted no command on its queue pair";
    if (const std::string remote = outstanding(s, true); !remote.empty())
        return "peer idle: " + remote + " request(s) of this side not completed although the peer " +
               (s.peer == P::alive ? "is alive" : "may be alive") + ": requests lost or the wire is stuck" +
               (is_hw(s) ? k_hw_blind : "");
    if (s.peer == P::alive)
        return fmt("peer idle: %s is alive and posted %llu command(s), none of which this side sees arriving "
                   "now; both sides may be waiting for each other", peer_name(s).c_str(),
                   static_cast<unsigned long long>(sum(s.peer_posted)));
    if (s.peer == P::unknown)
        return std::string("no peer visible: the peer is on another host or its backend cannot tell; check that it "
                           "runs and posts") + (is_hw(s) ? k_hw_blind : "");
    return "no progress: nothing outstanding on this ctid and no queue pair; the awaited counter is bumped only "
           "by commands of this ctid";
}

std::string report(const Snapshot& s) {
    const std::string tag = fmt("coyote stall doctor [pid %d device %u vFPGA %d ctid %d %s]", s.pid, s.device,
                                s.vfid, s.ctid, s.backend.c_str());
    std::string out = s.on_demand ? fmt("%s: on demand; last progress %.3f s ago\n", tag.c_str(), s.stalled_s)
                                  : fmt("%s: no progress for %.1f s\n", tag.c_str(), s.stalled_s);
    if (s.polled_class != k_no_class)
        out += fmt("%s:   polled counter %s = %u\n", tag.c_str(), class_name(s.polled_class), s.polled_value);
    out += tag + ":   posted/completed: " + counters_line(s.posted, s.completed) + "\n";
    if (s.has_qp) {
        out += fmt("%s:   QP local QPN 0x%06x PSN 0x%06x IP %s; remote QPN 0x%06x PSN 0x%06x IP %s RKey 0x%08x "
                   "VAddr 0x%llx", tag.c_str(), s.local.qpn, s.local.psn, sim::ip_to_string(s.local.ip).c_str(),
                   s.remote.qpn, s.remote.psn, sim::ip_to_string(s.remote.ip).c_str(), s.remote.rkey,
                   static_cast<unsigned long long>(s.remote.vaddr));
        if (s.expected_psn_known) out += fmt("; expects PSN 0x%06x next", s.expected_psn);
        out += "\n";
        const char* state = s.peer_stopped                   ? "alive but STOPPED, same host"
                            : s.peer == Snapshot::Peer::alive ? "alive, same host"
                            : s.peer == Snapshot::Peer::gone ? "GONE"
                                                             : "unknown (not visible from this host)";
        out += fmt("%s:   peer %s: %s", tag.c_str(), s.peer_pid ? peer_name(s).c_str() : "?", state);
        if (s.peer_slot_found)
            out += "; its posted/completed: " + counters_line(s.peer_posted, s.peer_completed);
        out += "\n";
        if (s.refused_here.known || s.refused_there.known)
            out += tag + ":   refused by this NIC: " + refused_count(s.refused_here) +
                   ", by the peer's NIC: " + (s.refused_there.known ? refused_count(s.refused_there) : "unknown") + "\n";
        else if (is_hw(s))
            out += tag + ":   refused requests: not reported by the hw NIC (it counts PSN drops and retransmissions, "
                         "no access violations)\n";
    }
    out += tag + ":   likeliest cause: " + likeliest_cause(s) + "\n";
    return out;
}

}  // namespace coyote::detail::diag
