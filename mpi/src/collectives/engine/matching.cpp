// coyote-mpi collectives engine: matching collective messages with their call: the next message of a call (set
// aside what belongs to other calls) and the checks that both ranks made the same call.
#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

const MsgHeader* Engine::peek_coll(Channel& c, uint64_t epoch, const std::byte** payload, bool& from_stash) {
    for (auto& s : c.stash)
        if (s.h.epoch == epoch) {
            from_stash = true;
            *payload = s.data.data();
            return &s.h;
        }
    for (;;) {
        const std::byte* p = nullptr;
        const MsgHeader* h = head(c, &p);
        if (h == nullptr) return nullptr;
        if (h->kind == k_kind_coll) {
            if (h->epoch == epoch) {
                from_stash = false;
                *payload = p;
                return h;
            }
            set_aside(c, *h, p);
        } else if (h->kind == k_kind_rtr) {
            set_aside(c, *h, nullptr);
        } else {
            dispatch_p2p(c, *h, p);
        }
        release_head(c);
    }
}

void Engine::drop_coll(Channel& c, bool from_stash, uint64_t epoch) {
    if (!from_stash) {
        release_head(c);
        return;
    }
    // peek_coll returned the first stash entry of the epoch.
    const auto it = std::find_if(c.stash.begin(), c.stash.end(), [&](const Stashed& s) { return s.h.epoch == epoch; });
    if (it != c.stash.end()) c.stash.erase(it);
}

void Engine::set_aside(Channel& c, const MsgHeader& h, const std::byte* payload) {
    check_current(c, h);
    if (h.kind == k_kind_rtr) {
        c.rtrs.push_back(ReadyToReceive{h});
        return;
    }
    Stashed s;
    s.h = h;
    s.data.assign(payload, payload + carried(h));
    c.stash.push_back(std::move(s));
}

void Engine::check_current(const Channel& c, const MsgHeader& h) const {
    // A message of the running call seen ahead of its turn shows a mismatch now, not at the deadline (e.g. a
    // peer that sends through the ring where this rank waits for its ready-to-receive).
    if (cur_.proto != nullptr && h.epoch == cur_.epoch && h.kind != k_kind_p2p &&
        cur_.thread == std::this_thread::get_id())
        check_sig(c.peer, h, *cur_.proto, cur_.epoch, *cur_.sig, cur_.what);
}

void Engine::check_sig(int peer, const MsgHeader& h, const MsgHeader& proto, uint64_t epoch, const Signature& sig,
                       const char* what) const {
    if (h.sig_kind == proto.sig_kind && h.sig_dtype == proto.sig_dtype && h.total == proto.total &&
        h.sig_root == proto.sig_root && h.sig_op == proto.sig_op)
        return;
    Signature theirs;
    theirs.kind = static_cast<CollKind>(h.sig_kind);
    theirs.dtype = h.sig_dtype;
    theirs.count = h.total;
    theirs.root = h.sig_root;
    theirs.op = h.sig_op;
    throw_error(Errc::invalid_argument, what,
                "mismatched collective call #" + std::to_string(epoch) + ": rank " + std::to_string(peer) + " called " +
                    describe(theirs) + ", rank " + std::to_string(rank_) + " called " + describe(sig));
}

void Engine::check_chunk(int peer, const MsgHeader& h, const MsgHeader& proto, uint32_t len, bool window,
                         uint64_t epoch, const Signature& sig, const char* what) const {
    check_sig(peer, h, proto, epoch, sig, what);
    if (h.len != len)
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(peer) + " sent a chunk of " + std::to_string(h.len) + " bytes where " +
                        std::to_string(len) + " were expected (call #" + std::to_string(epoch) + ", " +
                        describe(sig) + "; mismatched counts?)");
    if (h.first == k_first_direct && !window)
        throw_error(Errc::protocol, what,
                    "rank " + std::to_string(peer) + " placed a chunk directly where no window was offered (call #" +
                        std::to_string(epoch) + ")");
}

}  // namespace coyote::detail::coll
