// coyote-mpi collectives engine: a channel's slots and credits: posting messages into the peer's ring, reading
// the head of ours, returning credits (see wire.hpp for the buffer layout).
#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

uint32_t Engine::arrived(Channel& c) {
    try {
        return c.thread->checkCompleted(CoyoteOper::LOCAL_WRITE) - c.arrive_base;
    } catch (const Error& e) {
        peer_failed(c, e);
    }
}

uint32_t Engine::free_slots(Channel& c) {
    const uint64_t credit = load_u64(c.buf + k_credit_in);
    const uint64_t outstanding = c.sent - credit;
    if (outstanding > c.slots)
        throw_error(Errc::protocol, "collectives",
                    "rank " + std::to_string(c.peer) + " returned credit " + std::to_string(credit) + " for " +
                        std::to_string(c.sent) + " messages sent");
    uint32_t free = c.slots - static_cast<uint32_t>(outstanding);
    if (free == 0) return 0;
    // The staging slot of message `sent` was last used by message sent - slots: its WRITE must be complete
    // (always so on the shm wire; the TCP wire completes on the peer's ACK).
    if (c.sent >= c.slots) {
        const uint32_t done = c.thread->checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) - c.write_base;
        if (static_cast<uint32_t>(c.sent - c.slots) >= done) return 0;
    }
    return free;
}

bool Engine::can_send(Channel& c, uint32_t reserve) { return free_slots(c) >= reserve; }

std::byte* Engine::staging(Channel& c) noexcept {
    return c.buf + c.send_base + slot_offset(c) + k_header_bytes;
}

void Engine::post(Channel& c, MsgHeader h, bool header_only) {
    h.seq = c.sent;
    const uint64_t slot = slot_offset(c);
    std::memcpy(c.buf + c.send_base + slot, &h, sizeof(h));
    try {
        c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                         rdmaSg{.local_offs = c.send_base + slot, .remote_offs = c.recv_base + slot,
                                .len = k_header_bytes + (header_only ? 0 : h.len)},
                         true);
    } catch (const Error& e) {
        peer_failed(c, e);
    }
    ++c.sent;
}

void Engine::post_copy(Channel& c, const MsgHeader& h, const std::byte* src) {
    // Large enough to pay for a second request: the payload goes from the source straight into the peer's ring
    // slot (no staging copy), then the header (last = true) follows it on the same queue pair. A backend that
    // writes only from the registered buffer denies it: stage.
    if (h.len >= k_ring_write_min &&
        write_from_source(c, src,
                          reinterpret_cast<uint64_t>(c.thread->getQpair()->remote.vaddr) + c.recv_base +
                              slot_offset(c) + k_header_bytes,
                          h.len, ring_write_denied_)) {
        post(c, h, true);
        unstaged_bytes_.fetch_add(h.len, std::memory_order_relaxed);
        return;
    }
    if (h.len != 0) std::memcpy(staging(c), src, h.len);
    post(c, h);
}

bool Engine::write_from_source(Channel& c, const std::byte* src, uint64_t remote, uint32_t len, bool& denied) {
    if (denied) return false;
    try {
        c.thread->invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, const_cast<std::byte*>(src), remote, len, false);
    } catch (const Error& e) {
        if (e.code() != make_error_code(Errc::not_supported)) peer_failed(c, e);
        denied = true;
        return false;
    }
    return true;
}

void Engine::validate(Channel& c, const MsgHeader& h) {
    if ((h.kind != k_kind_coll && h.kind != k_kind_p2p && h.kind != k_kind_rtr) || h.seq != c.consumed ||
        h.len > payload_)
        throw_error(Errc::protocol, "collectives",
                    "malformed message " + std::to_string(c.consumed) + " from rank " + std::to_string(c.peer) +
                        " (kind " + std::to_string(h.kind) + ", seq " + std::to_string(h.seq) + ", len " +
                        std::to_string(h.len) + ", payload limit " + std::to_string(payload_) + ")");
}

const MsgHeader* Engine::head(Channel& c, const std::byte** payload) {
    if (arrived(c) == static_cast<uint32_t>(c.consumed)) return nullptr;
    const std::byte* slot = c.buf + c.recv_base + (c.consumed % c.slots) * c.slot_bytes;
    std::atomic_thread_fence(std::memory_order_acquire);
    const auto* h = reinterpret_cast<const MsgHeader*>(slot);
    validate(c, *h);
    *payload = slot + k_header_bytes;
    return h;
}

void Engine::return_credit(Channel& c) {
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(c.buf + k_credit_stage))
        .store(c.consumed, std::memory_order_release);
    try {
        c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                         rdmaSg{.local_offs = k_credit_stage, .remote_offs = k_credit_in, .len = 8}, false);
    } catch (const Error& e) {
        peer_failed(c, e);
    }
    c.credited = c.consumed;
}

void Engine::release_head(Channel& c) {
    ++c.consumed;
    if (c.consumed - c.credited >= std::max<uint32_t>(1, c.slots / 2)) return_credit(c);
}

void Engine::flush_credits() {
    for (auto& [p, c] : chans_)
        if (c.ready && c.consumed != c.credited) return_credit(c);
}

}  // namespace coyote::detail::coll
