// coyote-mpi collectives engine: the state of one peer's channel (slots, credits, messages set aside,
// point-to-point matching, direct-placement windows); see wire.hpp for its buffer layout.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>

#include "collectives/engine/wire.hpp"

namespace coyote::detail::coll {

/// A collective message taken off the ring before its call consumed it (another call was at the head).
struct Stashed {
    MsgHeader h;
    std::vector<std::byte> data;
};

/// A ready-to-receive message: the `index`-th direct stream of call `epoch` on this channel goes to `addr`.
struct ReadyToReceive {
    MsgHeader h; ///< epoch, tag = index, addr, signature
};

/// A point-to-point message that arrived before a matching receive was posted.
struct Unexpected {
    int tag = 0;
    uint64_t total = 0;
    uint64_t got = 0;
    bool complete = false;
    std::vector<std::byte> data;
};

/// Shared state of a non-blocking operation.
struct OpState {
    std::atomic<bool> done{false};
    std::exception_ptr error;
    std::string what; ///< e.g. "isend to rank 2 (tag 5, 4096 bytes)"
    // point-to-point
    bool is_p2p = false;
    bool is_send = false;
    int peer = -1;
    int tag = 0;
    const std::byte* sbuf = nullptr;
    std::byte* rbuf = nullptr;
    uint64_t bytes = 0;    ///< send: message bytes; receive: capacity
    uint64_t progress = 0; ///< bytes posted (send)
    bool started = false;
    uint64_t received = 0; ///< bytes of the matched message (receive)
    uint64_t msg_id = 0;
    std::shared_ptr<Unexpected> from_unexpected;
};

/// A remote-access window over a caller's destination range, kept registered after its call (a later call with
/// the same range offers it again without registering).
struct CachedWindow {
    std::byte* addr = nullptr;
    uint64_t len = 0;     ///< 0: slot empty
    bool in_use = false;  ///< offered to the peer by a running schedule
    uint64_t stamp = 0;   ///< last use (least recently used idle windows are replaced first)
};

/// One peer's channel (see wire.hpp for the buffer layout).
struct Channel {
    int peer = -1;
    cThread* thread = nullptr;
    std::byte* buf = nullptr;
    uint32_t slots = 0;
    uint64_t slot_bytes = 0;
    uint64_t recv_base = 0;
    uint64_t send_base = 0;
    // sending
    uint64_t sent = 0;
    uint32_t write_base = 0;
    uint64_t p2p_msgs_out = 0;
    // receiving
    uint64_t consumed = 0;
    uint64_t credited = 0;
    uint32_t arrive_base = 0;
    std::deque<Stashed> stash;
    std::deque<ReadyToReceive> rtrs; ///< received, not yet used by a send
    uint32_t windows = 0;            ///< windows in use by running schedules
    std::array<CachedWindow, 4> wins; ///< registered windows (in use or cached)
    uint64_t win_clock = 0;
    // point-to-point
    std::deque<std::shared_ptr<OpState>> sendq;
    std::deque<std::shared_ptr<OpState>> posted;
    std::deque<std::shared_ptr<Unexpected>> unexpected;
    bool in_active = false;
    uint64_t in_total = 0;
    uint64_t in_got = 0;
    int in_tag = 0;
    std::shared_ptr<OpState> in_req;
    std::shared_ptr<Unexpected> in_unexp;
    bool in_discard = false;
    // liveness
    std::chrono::steady_clock::time_point last_probe{};
    // links
    bool lazy = false;  ///< opened on demand (a Link), not part of the wired peer set
    bool ready = true;  ///< may be written and read (a link: connected and the peer's ready received)
};

}  // namespace coyote::detail::coll
