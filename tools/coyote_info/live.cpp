// coyote-info -v: the live cThreads of this user, read from the stall doctor's status segments (and, on sim,
// the backend's shared counters), with the doctor's diagnosis of each.
#include "coyote_info/info.hpp"

#include <cstdio>
#include <cstring>

#include "backend/sim/identity.hpp"
#include "diag/doctor.hpp"
#include "diag/status.hpp"

namespace coyote::tools::info {

namespace diag = ::coyote::detail::diag;

namespace {

std::string hex(uint64_t v, int width) {
    char b[32];
    std::snprintf(b, sizeof b, "0x%0*llx", width, static_cast<unsigned long long>(v));
    return b;
}

Json qp_side(const diag::QpSide& q) {
    Json j = Json::object();
    j.set("qpn", hex(q.qpn, 6));
    j.set("psn", hex(q.psn, 6));
    j.set("rkey", hex(q.rkey, 8));
    j.set("vaddr", hex(q.vaddr, 12));
    j.set("ip", coyote::detail::sim::ip_to_string(q.ip));
    return j;
}

Json counters(const uint64_t (&posted)[diag::k_classes], const uint32_t (&completed)[diag::k_classes]) {
    Json c = Json::object();
    for (uint32_t k = 0; k < diag::k_classes; ++k) {
        Json e = Json::object();
        e.set("posted", posted[k]);
        e.set("completed", completed[k]);
        c.set(diag::class_name(k), std::move(e));
    }
    return c;
}

Json slot_json(const diag::StatusSlot& slot, int32_t pid) {
    diag::Snapshot s = diag::take_snapshot(slot, pid);
    s.on_demand = true;
    Json j = Json::object();
    j.set("device", s.device);
    j.set("vfid", s.vfid);
    j.set("ctid", s.ctid);
    j.set("backend", s.backend);
    j.set("commands", counters(s.posted, s.completed));
    j.set("polled_counter", diag::class_name(s.polled_class));
    j.set("polled_value", s.polled_value);
    j.set("seconds_since_progress", s.stalled_s);
    j.set("waiting_for_fifo", s.waiting_post);
    if (s.has_qp) {
        Json qp = Json::object();
        qp.set("local", qp_side(s.local));
        qp.set("remote", qp_side(s.remote));
        if (s.expected_psn_known) qp.set("expected_psn", hex(s.expected_psn, 6));
        const char* peer = s.peer == diag::Snapshot::Peer::alive ? "alive"
                           : s.peer == diag::Snapshot::Peer::gone ? "gone"
                                                                  : "unknown";
        qp.set("peer_pid", s.peer_pid);
        qp.set("peer", peer);
        if (s.peer_slot_found) qp.set("peer_commands", counters(s.peer_posted, s.peer_completed));
        qp.set("refused_by_this_nic", s.refused_here.total);
        if (s.refused_there.known) qp.set("refused_by_peer_nic", s.refused_there.total);
        j.set("queue_pair", std::move(qp));
    } else {
        j.set("queue_pair", Json());
    }
    j.set("diagnoses_printed", slot.diagnoses.load());
    j.set("diagnosis", diag::likeliest_cause(s));
    return j;
}

}  // namespace

Json live_processes() {
    Json out = Json::array();
    for (const diag::ProcessStatus& p : diag::open_all()) {
        Json j = Json::object();
        j.set("pid", p.pid);
        j.set("alive", p.alive);
        Json threads = Json::array();
        for (const auto& [index, slot] : p.slots) threads.push(slot_json(*slot, p.pid));
        j.set("cthreads", std::move(threads));
        out.push(std::move(j));
    }
    return out;
}

}  // namespace coyote::tools::info
