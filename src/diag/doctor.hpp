// coyote-mpi diagnostics: what the stall doctor knows about one cThread (a snapshot) and what it concludes from
// it (the likeliest cause, the report text). Used in-process (stall warnings, printDebug, SIGUSR1) and from
// outside (coyote-info -v) alike.
#pragma once

#include <cstdint>
#include <string>

#include "diag/status.hpp"

namespace coyote::detail::diag {

/// Rejections a sim NIC counted as target (its published counters), by check.
struct Rejections {
    bool known = false;
    uint64_t total = 0;
    std::string by_check; ///< "out_of_bounds x 2, rkey x 1"
    int64_t latest_ns = 0;    ///< monotonic_ns() of the latest refused request to the queue pair asked about (0: none)
    std::string latest_check; ///< the check that one failed
};

/// Everything one diagnosis looks at.
struct Snapshot {
    int32_t pid = 0;
    uint32_t device = 0;
    int32_t vfid = 0, ctid = 0;
    std::string backend;
    uint64_t posted[k_classes] = {};
    uint32_t completed[k_classes] = {};
    uint32_t polled_class = k_no_class;
    uint32_t polled_value = 0;
    double stalled_s = 0.0;
    int64_t opened_ns = 0; ///< monotonic_ns() when this cThread opened (older refusals were of its ctid's earlier owners)
    bool on_demand = false; ///< asked for (printDebug, SIGUSR1, coyote-info -v), not a stall warning
    bool waiting_post = false;
    bool has_qp = false;
    QpSide local, remote;
    uint32_t expected_psn = 0; ///< sim: the PSN this queue pair accepts next (0 if unknown)
    bool expected_psn_known = false;
    // The peer.
    enum class Peer { none, unknown, alive, gone } peer = Peer::none;
    int32_t peer_pid = 0;
    bool peer_stopped = false; ///< alive but stopped (SIGSTOP, a debugger, job control)
    bool peer_slot_found = false;
    uint64_t peer_posted[k_classes] = {};
    uint32_t peer_completed[k_classes] = {};
    Rejections refused_here;  ///< requests of the peer this vFPGA's NIC refused
    Rejections refused_there; ///< requests the peer's NIC refused (ours, most likely)
};

/// A snapshot of `slot` of process `pid` (this process or another one of this user): the peer's liveness and
/// counters, and on sim the NICs' rejection counters and the live completion counters.
Snapshot take_snapshot(const StatusSlot& slot, int32_t pid);

/// The likeliest cause, one line, starting with its kind: "peer gone: ...", "peer stopped: ...",
/// "peer never posted: ...",
/// "window or rkey refused: ...", "back-pressure: ...", "user logic: ...", "peer idle: ...", "no peer: ...";
/// on demand, "progressing: ..." when the counters moved within the last second.
std::string likeliest_cause(const Snapshot& s);

/// Whether the cause is certain from what the snapshot shows (the peer exited or is stopped, a refusal on this
/// queue pair, a full command FIFO, local commands the user logic leaves pending), rather than a guess that this
/// side may be waiting for something ("peer idle", "peer never posted", "no progress").
bool definite_cause(const Snapshot& s);

/// The full report (several lines, each starting with "coyote stall doctor"), ending with the cause.
std::string report(const Snapshot& s);

}  // namespace coyote::detail::diag
