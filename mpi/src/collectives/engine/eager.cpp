// coyote-mpi collectives engine: eager calls (Engine::execute_eager): a list of single-message operations run
// in order without a schedule; direct receives offer their windows first.
#include "collectives/engine/engine.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

/// One execute_eager() call: its operations and identity, and how one operation moves (mtx_ held throughout).
/// Used by this file only (hidden).
class [[gnu::visibility("hidden")]] EagerRun {
public:
    EagerRun(Engine& e, EagerOp* ops, std::size_t n, uint64_t epoch, const Signature& sig, const char* what) noexcept
        : e_(e), ops_(ops), n_(n), epoch_(epoch), sig_(sig), what_(what), proto_(coll_proto(epoch, sig)) {}

    const MsgHeader& proto() const noexcept { return proto_; }
    /// Index past the last send (set by prepare).
    std::size_t sends() const noexcept { return sends_; }

    /// Copy messages from direct_min bytes on are placed directly; the k-th such message on a channel (in list
    /// order, each direction apart) has ready-to-receive k, on both sides.
    void prepare() noexcept {
        const uint64_t direct_min = e_.cfg_.direct_min;
        for (std::size_t j = 0; j < n_; ++j) {
            EagerOp& op = ops_[j];
            op.rtr = op.win = -1;
            op.offered = false;
            if (op.send) sends_ = j + 1;
            if (!op.copy || op.len == 0 || direct_min == 0 || op.len < direct_min) continue;
            int index = 0;
            for (std::size_t k = 0; k < j; ++k)
                if (ops_[k].rtr >= 0 && ops_[k].send == op.send && ops_[k].peer == op.peer) ++index;
            op.rtr = index;
            if (!op.send) ++offers_;
        }
    }

    /// Offers the windows of the direct receives from operation `from` on whose channel has a free slot: a rank
    /// that offered its windows only when it reached the receive would make its peers wait with their writes.
    void offer_windows(std::size_t from) {
        for (std::size_t j = from; offers_ != 0 && j < n_; ++j) {
            EagerOp& o = ops_[j];
            if (o.send || o.rtr < 0 || o.offered) continue;
            Channel& c = e_.chan(o.peer, what_);
            if (!e_.can_send(c, 1)) continue;
            o.win = c.windows < k_windows_per_channel ? e_.offer_window(c, proto_, o.rtr, o.dst, o.len)
                                                      : e_.offer_window(c, proto_, o.rtr, nullptr, 0);
            o.offered = true;
            --offers_;
        }
    }

    /// Tries operation `op` on its channel `c`: true when done.
    bool advance(EagerOp& op, Channel& c) { return op.send ? send(op, c) : receive(op, c); }

    /// The channel operation `i` waits on (see Engine::idle_pass); with `debug`, which operation it is.
    void waiting(std::size_t i, Channel& c, std::vector<Channel*>& data, std::vector<Channel*>& credit,
                 std::string* debug) const {
        const EagerOp& op = ops_[i];
        (op.send && op.rtr < 0 ? credit : data).push_back(&c);
        if (debug != nullptr)
            *debug += " op" + std::to_string(i) + "/" + std::to_string(n_) +
                      (op.send ? " send to " : " receive from ") + std::to_string(op.peer) +
                      (op.rtr >= 0 ? " (direct)" : "");
    }

private:
    bool send(EagerOp& op, Channel& c) {
        if (!e_.can_send(c, 1)) return false;
        MsgHeader h = proto_;
        h.len = op.len;
        if (op.rtr < 0) {
            e_.post_copy(c, h, op.src);
            return true;
        }
        if (uint64_t addr = 0; e_.take_rtr(c, proto_, epoch_, sig_, what_, op.rtr, addr)) {
            e_.post_placed(c, h, op.src, addr);
            return true;
        }
        return false;
    }

    bool receive(EagerOp& op, Channel& c) {
        const std::byte* pl = nullptr;
        bool from_stash = false;
        const MsgHeader* h = e_.peek_coll(c, epoch_, &pl, from_stash);
        if (h == nullptr) return false;
        e_.check_chunk(c.peer, *h, proto_, op.len, op.win >= 0, epoch_, sig_, what_);
        if (op.len != 0 && h->first != k_first_direct) {
            if (op.copy)
                std::memcpy(op.dst, pl, op.len);
            else
                op.take(op.ctx, pl, op.len);
        }
        if (op.win >= 0) {
            e_.end_offer(c, op.win);
            op.win = -1;
        }
        e_.drop_coll(c, from_stash, epoch_);
        return true;
    }

    Engine& e_;
    EagerOp* const ops_;
    const std::size_t n_;
    const uint64_t epoch_;
    const Signature& sig_;
    const char* const what_;
    const MsgHeader proto_;
    std::size_t offers_ = 0; ///< direct receives whose ready-to-receive is not out yet
    std::size_t sends_ = 0;  ///< index past the last send
};

void Engine::execute_eager(EagerOp* ops, std::size_t n, uint64_t epoch, const Signature& sig, const char* what,
                           IdleCopy idle_copy) {
    std::unique_lock lk(mtx_);
    EagerRun run(*this, ops, n, epoch, sig, what);
    const CallScope scope(*this, epoch, run.proto(), sig, what);
    run.prepare();
    const bool idle_overlap = idle_copy.bytes <= k_idle_copy_max && spin_passes_ > 1;
    Idle idle;
    std::size_t i = 0;
    try {
        while (i < n) {
            run.offer_windows(i);
            Channel& c = chan(ops[i].peer, what);
            if (run.advance(ops[i], c)) {
                ++i;
                idle.passes = 0;
                continue;
            }
            if (idle_overlap && idle_copy.bytes != 0 && i >= run.sends()) {
                run_idle_copy(idle_copy, k_idle_copy_piece);
                continue;
            }
            idle_pass(idle, lk, epoch, sig, what,
                      [&](std::vector<Channel*>& data, std::vector<Channel*>& credit, std::string* debug) {
                          run.waiting(i, c, data, credit, debug);
                      });
        }
        run_idle_copy(idle_copy);
    } catch (...) {
        fail_call();
        throw;
    }
    eager_calls_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace coyote::detail::coll
