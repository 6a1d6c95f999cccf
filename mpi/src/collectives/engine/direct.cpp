// coyote-mpi collectives engine: direct placement. The receiver registers its destination as a window and offers
// it with a ready-to-receive; the sender writes each chunk straight into it, then posts the header (engine.hpp).
#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

bool Engine::write_direct(Channel& c, const std::byte* src, uint64_t remote, uint32_t len) {
    // The wire may not reach the peer's memory (e.g. cross-process access denied): the receiver takes either.
    if (!write_from_source(c, src, remote, len, direct_denied_)) return false;
    direct_bytes_.fetch_add(len, std::memory_order_relaxed);
    return true;
}

int Engine::offer_window(Channel& c, const MsgHeader& proto, int index, std::byte* dst, uint64_t len) {
    uint64_t addr = 0;
    const int w = dst != nullptr ? acquire_window(c, dst, len) : -1;
    if (w >= 0) {
        ++c.windows;
        addr = reinterpret_cast<uint64_t>(dst);
    } // else no window (table full, backend without windows): the peer sends through the ring
    MsgHeader h = proto;
    h.kind = k_kind_rtr;
    h.len = 0;
    h.tag = index;
    h.addr = addr;
    post(c, h);
    return w;
}

void Engine::end_offer(Channel& c, int slot) noexcept {
    c.wins[static_cast<std::size_t>(slot)].in_use = false;
    --c.windows;
}

bool Engine::take_rtr(Channel& c, const MsgHeader& proto, uint64_t epoch, const Signature& sig, const char* what,
                      int index, uint64_t& addr) {
    const ReadyToReceive* r = find_rtr(c, epoch, index);
    if (r == nullptr) return false;
    check_sig(c.peer, r->h, proto, epoch, sig, what);
    addr = r->h.addr;
    c.rtrs.erase(std::find_if(c.rtrs.begin(), c.rtrs.end(), [r](const ReadyToReceive& x) { return &x == r; }));
    return true;
}

void Engine::post_placed(Channel& c, MsgHeader h, const std::byte* src, uint64_t remote) {
    if (remote != 0 && h.len != 0 && write_direct(c, src, remote, h.len)) {
        h.first = k_first_direct;
        post(c, h, true);
    } else {
        post_copy(c, h, src);
    }
}

const ReadyToReceive* Engine::find_rtr(Channel& c, uint64_t epoch, int index) {
    const auto match = [&](const ReadyToReceive& r) { return r.h.epoch == epoch && r.h.tag == index; };
    for (auto& r : c.rtrs)
        if (match(r)) return &r;
    // Read the ring up to it: other messages are dispatched (point-to-point) or set aside (collective).
    for (;;) {
        const std::byte* p = nullptr;
        const MsgHeader* h = head(c, &p);
        if (h == nullptr) return nullptr;
        if (h->kind == k_kind_rtr) {
            set_aside(c, *h, nullptr);
            release_head(c);
            if (match(c.rtrs.back())) return &c.rtrs.back();
            continue;
        }
        if (h->kind == k_kind_p2p) {
            dispatch_p2p(c, *h, p);
        } else {
            set_aside(c, *h, p);
        }
        release_head(c);
    }
}

int Engine::acquire_window(Channel& c, std::byte* addr, uint64_t len) {
    int slot = -1;
    for (std::size_t i = 0; i < c.wins.size(); ++i) {
        CachedWindow& w = c.wins[i];
        if (w.len != 0 && !w.in_use && w.addr == addr && w.len == len) {
            slot = static_cast<int>(i);
            break;
        }
    }
    if (slot < 0) {
        if (windows_denied_) return -1; // the backend has no windows: the peer sends through the ring
        slot = window_slot_for(c, addr, len);
        if (slot < 0) return -1;
        CachedWindow& w = c.wins[static_cast<std::size_t>(slot)];
        release_window(c, w);
        try {
            c.thread->registerWindow(addr, len);
        } catch (const Error& e) {
            // table full (windows of other users of the queue pair), overlap, or no windows (for good)
            if (e.code() == make_error_code(Errc::not_supported)) windows_denied_ = true;
            return -1;
        }
        w.addr = addr;
        w.len = len;
    }
    CachedWindow& w = c.wins[static_cast<std::size_t>(slot)];
    w.in_use = true;
    w.stamp = ++c.win_clock;
    return slot;
}

int Engine::window_slot_for(Channel& c, std::byte* addr, uint64_t len) {
    // Idle windows overlapping the range go (the NIC refuses overlapping windows); the new one takes a free
    // slot, else the least recently used idle one.
    const auto lo = reinterpret_cast<uintptr_t>(addr);
    for (CachedWindow& w : c.wins) {
        const auto wlo = reinterpret_cast<uintptr_t>(w.addr);
        if (w.len != 0 && !w.in_use && lo < wlo + w.len && wlo < lo + len) release_window(c, w);
    }
    auto rank_of = [](const CachedWindow& w) { return w.len == 0 ? 0 : w.stamp + 1; }; // empty slots first
    int slot = -1;
    for (std::size_t i = 0; i < c.wins.size(); ++i) {
        if (c.wins[i].in_use) continue;
        if (slot < 0 || rank_of(c.wins[i]) < rank_of(c.wins[static_cast<std::size_t>(slot)]))
            slot = static_cast<int>(i);
    }
    return slot;
}

void Engine::release_window(Channel& c, CachedWindow& w) noexcept {
    if (w.len == 0) return;
    try {
        c.thread->unregisterWindow(w.addr);
    } catch (...) {
        // the queue pair is gone with its windows
    }
    w = {};
}

void Engine::fail_call() noexcept {
    broken_ = true;
    for (auto& [p, c] : chans_) {
        c.windows = 0;
        for (auto& w : c.wins) release_window(c, w);
    }
    report_mismatch();
}

}  // namespace coyote::detail::coll
