// coyote-mpi collectives engine: running a schedule (Engine::execute): every pass offers the windows of direct
// receives, then moves each ready step (send, receive, copy forward, forward) as far as its channels allow.
#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

/// One execute() call: its steps and identity, and how each kind of step moves (mtx_ held throughout). Used by
/// this file only (hidden); the helpers of a pass are inlined into the schedule loop, as when it was one function.
class [[gnu::visibility("hidden")]] ScheduleRun {
public:
    ScheduleRun(Engine& e, std::vector<Step>& steps, uint64_t epoch, const Signature& sig, const char* what) noexcept
        : e_(e), steps_(steps), epoch_(epoch), sig_(sig), what_(what), payload_(e.payload_),
          proto_(coll_proto(epoch, sig)) {}

    const MsgHeader& proto() const noexcept { return proto_; }

    /// Resets the steps' progress, finds their channels and each channel's previous step, and numbers the
    /// direct streams: the k-th on a channel in schedule order has ready-to-receive k, on both sides.
    void prepare() {
        std::vector<std::pair<Channel*, int>> in_count, out_count;
        auto next_index = [](std::vector<std::pair<Channel*, int>>& v, Channel* c) {
            for (auto& [ch, n] : v)
                if (ch == c) return n++;
            v.emplace_back(c, 1);
            return 0;
        };
        for (std::size_t i = 0; i < steps_.size(); ++i) {
            Step& s = steps_[i];
            s.chunks = s.bytes == 0 ? 1 : (s.bytes + payload_ - 1) / payload_;
            s.done = s.in_done = 0;
            s.finished = false;
            s.prev_out = s.prev_in = -1;
            s.out = s.kind == Step::Kind::recv ? nullptr : &e_.chan(s.to, what_);
            s.in = s.kind == Step::Kind::send ? nullptr : &e_.chan(s.from, what_);
            for (std::size_t j = i; j-- > 0;) {
                if (s.out && s.prev_out < 0 && steps_[j].out == s.out) s.prev_out = static_cast<int>(j);
                if (s.in && s.prev_in < 0 && steps_[j].in == s.in) s.prev_in = static_cast<int>(j);
            }
            s.rtr_in = s.rtr_out = -1;
            s.rtr_sent = s.window = s.out_known = false;
            s.out_addr = 0;
            const bool big = e_.cfg_.direct_min != 0 && s.bytes >= e_.cfg_.direct_min;
            if (big && s.in && s.direct_in) s.rtr_in = next_index(in_count, s.in);
            if (big && s.out && (s.direct_out || (s.kind == Step::Kind::forward && s.direct_in)))
                s.rtr_out = next_index(out_count, s.out);
        }
    }

    /// One pass over the schedule: true when anything moved; `all_done` when every step has finished.
    [[gnu::always_inline]] bool pass(bool& all_done) {
        // Windows are offered before any chunk goes out: a rank that wrote its streams first and offered its
        // windows afterwards would make its peers wait for the whole write (exchanges would run one after the
        // other instead of at the same time).
        bool progress = false;
        for (Step& s : steps_) {
            if (s.finished || s.rtr_in < 0 || s.rtr_sent) continue;
            if (after_done(s) && send_rtr(s)) progress = true;
        }
        all_done = true;
        for (Step& s : steps_) {
            if (s.finished) continue;
            all_done = false;
            if (!after_done(s)) continue;
            if (advance(s)) progress = true;
        }
        return progress;
    }

    /// Every outgoing chunk is posted.
    bool sent_all() const noexcept {
        bool sent = true;
        for (const Step& s : steps_)
            if (s.kind != Step::Kind::recv && s.done != s.chunks) sent = false;
        return sent;
    }

    /// The channels the unfinished steps wait on (see Engine::idle_pass); with `debug`, every step's progress.
    void waiting(std::vector<Channel*>& data, std::vector<Channel*>& credit, std::string* debug) const {
        for (const Step& st : steps_) {
            if (st.finished) continue;
            if (st.in) data.push_back(st.in);
            if (st.out) credit.push_back(st.out);
        }
        if (debug == nullptr) return;
        for (std::size_t i = 0; i < steps_.size(); ++i)
            *debug += " step" + std::to_string(i) + "[k" + std::to_string(static_cast<int>(steps_[i].kind)) + " " +
                      std::to_string(steps_[i].done) + "/" + std::to_string(steps_[i].in_done) + "/" +
                      std::to_string(steps_[i].chunks) + "]";
    }

private:
    Step& step(int i) const noexcept { return steps_[static_cast<std::size_t>(i)]; }

    bool after_done(const Step& s) const noexcept {
        bool ready = true;
        for (int a : s.after) ready = ready && step(a).finished;
        return ready;
    }

    /// Moves one step as far as its channels allow; true when anything moved.
    [[gnu::always_inline]] bool advance(Step& s) {
        // A channel's previous step must have finished its side of that channel only.
        const bool out_ok = s.prev_out < 0 || step(s.prev_out).done == step(s.prev_out).chunks;
        const bool in_ok = s.prev_in < 0 || in_side_done(step(s.prev_in));
        if (s.kind == Step::Kind::send) return s.direct_out != nullptr ? send_direct(s, out_ok) : send_staged(s, out_ok);
        if (s.kind == Step::Kind::recv) return recv(s, in_ok);
        if (s.direct_in != nullptr || s.direct_out != nullptr) return forward_copy(s, out_ok, in_ok);
        return forward(s, out_ok, in_ok);
    }

    uint32_t len_of(const Step& s, uint64_t chunk) const noexcept {
        const uint64_t off = chunk * payload_;
        return static_cast<uint32_t>(off >= s.bytes ? 0 : std::min<uint64_t>(payload_, s.bytes - off));
    }
    uint64_t bytes_moved(const Step& g) const noexcept {
        if (g.finished) return g.bytes;
        const uint64_t c = g.kind == Step::Kind::forward ? std::min(g.done, g.in_done) : g.done;
        return std::min<uint64_t>(g.bytes, c * payload_);
    }
    bool gate_open(const Step& s, uint64_t chunk) const noexcept {
        if (s.gate < 0) return true;
        const uint64_t need = s.gate_shift + chunk * payload_ + len_of(s, chunk);
        return bytes_moved(step(s.gate)) >= need;
    }
    static bool in_side_done(const Step& g) noexcept {
        return (g.kind == Step::Kind::forward ? g.in_done : g.done) == g.chunks;
    }
    uint32_t backlog(Channel& c) { return e_.arrived(c) - static_cast<uint32_t>(c.consumed); }
    void check(const Step& s, const MsgHeader& h, uint32_t len) const {
        e_.check_chunk(s.in->peer, h, proto_, len, s.window, epoch_, sig_, what_);
    }

    // Direct placement. Receiver: offer direct_in as a window (or the ring, address 0) with a ready-to-receive.
    bool send_rtr(Step& s) {
        if (s.in->windows >= k_windows_per_channel || !e_.can_send(*s.in, 1)) return false;
        s.win_slot = e_.offer_window(*s.in, proto_, s.rtr_in, s.direct_in, s.bytes);
        s.window = s.win_slot >= 0;
        s.rtr_sent = true;
        return true;
    }
    // The window stays registered (cached) for a later call with the same destination.
    void drop_window(Step& s) {
        if (!s.window) return;
        s.window = false;
        e_.end_offer(*s.in, s.win_slot);
    }
    // Sender: learn where the stream goes.
    bool out_ready(Step& s) {
        if (s.rtr_out < 0 || s.out_known) return true;
        s.out_known = e_.take_rtr(*s.out, proto_, epoch_, sig_, what_, s.rtr_out, s.out_addr);
        return s.out_known;
    }
    // One chunk of a stream read from `src`: straight into the peer's window, or through the ring.
    void send_copy(Step& s, const std::byte* src) {
        const uint32_t len = len_of(s, s.done);
        const uint64_t off = s.done * payload_;
        MsgHeader h = proto_;
        h.len = len;
        e_.post_placed(*s.out, h, src + off, s.out_addr != 0 ? s.out_addr + off : 0);
        ++s.done;
    }
    // One received chunk of a copy stream: placed already, or copied (absorbed) into place.
    void take_copy(Step& s, uint64_t chunk, const MsgHeader& h, const std::byte* payload) {
        const uint32_t len = len_of(s, chunk);
        check(s, h, len);
        if (h.first != k_first_direct && len != 0) { // placed directly: already in the window
            if (s.direct_in != nullptr)
                std::memcpy(s.direct_in + chunk * payload_, payload, len);
            else
                s.absorb(chunk * payload_, payload, len);
        }
    }
    /// Posts a message of `len` payload bytes already in the staging slot of `c`.
    void post_staged(Channel& c, uint32_t len) {
        MsgHeader h = proto_;
        h.len = len;
        e_.post(c, h);
    }

    /// A send from direct_out: a few chunks per pass. Between them the other steps consume what the peers sent
    /// and return their credits (a burst of direct writes takes ~40 us per chunk, and a peer waiting for
    /// credits would idle through it).
    [[gnu::always_inline]] bool send_direct(Step& s, bool out_ok) {
        bool progress = false;
        for (uint32_t burst = 0; burst < k_send_burst && out_ok && s.done < s.chunks && gate_open(s, s.done) &&
                                 e_.can_send(*s.out, 2) && out_ready(s);
             ++burst) {
            send_copy(s, s.direct_out);
            progress = true;
        }
        s.finished = s.done == s.chunks;
        return progress;
    }

    /// A send whose chunks `produce` writes into the staging slot.
    [[gnu::always_inline]] bool send_staged(Step& s, bool out_ok) {
        bool progress = false;
        for (uint32_t burst = 0;
             burst < k_send_burst && out_ok && s.done < s.chunks && gate_open(s, s.done) && e_.can_send(*s.out, 2);
             ++burst) {
            const uint32_t len = len_of(s, s.done);
            if (len != 0) s.produce(s.done * payload_, e_.staging(*s.out), len);
            post_staged(*s.out, len);
            ++s.done;
            progress = true;
        }
        s.finished = s.done == s.chunks;
        return progress;
    }

    [[gnu::always_inline]] bool recv(Step& s, bool in_ok) {
        bool progress = false;
        while (in_ok && s.done < s.chunks && gate_open(s, s.done)) {
            const std::byte* pl = nullptr;
            bool from_stash = false;
            const MsgHeader* h = e_.peek_coll(*s.in, epoch_, &pl, from_stash);
            if (h == nullptr) break;
            if (s.direct_in != nullptr) {
                take_copy(s, s.done, *h, pl);
            } else {
                const uint32_t len = len_of(s, s.done);
                check(s, *h, len);
                if (len != 0) s.consume(s.done * payload_, pl, len);
            }
            e_.drop_coll(*s.in, from_stash, epoch_);
            ++s.done;
            progress = true;
        }
        s.finished = s.done == s.chunks;
        if (s.finished) drop_window(s);
        return progress;
    }

    /// Copy forward: chunks land in user memory (directly or copied), then go out from there.
    [[gnu::always_inline]] bool forward_copy(Step& s, bool out_ok, bool in_ok) {
        bool progress = false;
        const std::byte* src = s.direct_out != nullptr ? s.direct_out : s.direct_in;
        for (;;) {
            bool moved = false;
            while (out_ok && s.done < s.in_done && e_.can_send(*s.out, 1) && out_ready(s)) {
                send_copy(s, src);
                moved = true;
            }
            if (in_ok && s.in_done < s.chunks) {
                const std::byte* pl = nullptr;
                bool from_stash = false;
                if (const MsgHeader* h = e_.peek_coll(*s.in, epoch_, &pl, from_stash)) {
                    take_copy(s, s.in_done, *h, pl);
                    e_.drop_coll(*s.in, from_stash, epoch_);
                    ++s.in_done;
                    moved = true;
                }
            }
            if (!moved) break;
            progress = true;
        }
        if (s.in_done == s.chunks) drop_window(s);
        s.finished = s.done == s.chunks && s.in_done == s.chunks;
        return progress;
    }

    /// Forward through `forward` (fused), or `absorb` now and `emit` later when the outgoing side is blocked.
    [[gnu::always_inline]] bool forward(Step& s, bool out_ok, bool in_ok) {
        bool progress = false;
        for (;;) {
            // 1. chunks absorbed earlier go out first (message order)
            if (out_ok && s.done < s.in_done && e_.can_send(*s.out, 1)) {
                const uint32_t len = len_of(s, s.done);
                if (len != 0) s.emit(s.done * payload_, e_.staging(*s.out), len);
                post_staged(*s.out, len);
                ++s.done;
                progress = true;
                continue;
            }
            if (!in_ok || s.in_done >= s.chunks) break;
            const bool can_fwd = out_ok && s.done == s.in_done && e_.can_send(*s.out, 1);
            // 2. fused: received chunk transformed straight into the next message
            // 3. absorbed: the outgoing side is blocked and the incoming ring fills up
            const bool can_absorb = !can_fwd && s.absorb && (!out_ok || backlog(*s.in) * 2 >= s.in->slots);
            if (!can_fwd && !can_absorb) break;
            const std::byte* pl = nullptr;
            bool from_stash = false;
            const MsgHeader* h = e_.peek_coll(*s.in, epoch_, &pl, from_stash);
            if (h == nullptr) break;
            const uint32_t len = len_of(s, s.in_done);
            check(s, *h, len);
            if (can_fwd) {
                if (len != 0) s.forward(s.in_done * payload_, pl, e_.staging(*s.out), len);
                post_staged(*s.out, len);
                ++s.done;
            } else if (len != 0) {
                s.absorb(s.in_done * payload_, pl, len);
            }
            e_.drop_coll(*s.in, from_stash, epoch_);
            ++s.in_done;
            progress = true;
        }
        s.finished = s.done == s.chunks && s.in_done == s.chunks;
        return progress;
    }

    Engine& e_;
    std::vector<Step>& steps_;
    const uint64_t epoch_;
    const Signature& sig_;
    const char* const what_;
    const uint32_t payload_;
    const MsgHeader proto_;
};

void Engine::execute(std::vector<Step>& steps, uint64_t epoch, const Signature& sig, const char* what,
                     IdleCopy idle_copy) {
    if (steps.empty()) {
        run_idle_copy(idle_copy);
        return;
    }
    // Large copies are bandwidth-bound like the exchange itself: overlapping them gains nothing (measured:
    // 16 MiB allgather on 2 ranks), so they run after the schedule. On an oversubscribed node a waiting rank
    // gives its core to the rank it waits for instead (measured: 1 MiB alltoall on 4 ranks / 2 cores).
    const bool idle_overlap = idle_copy.bytes <= k_idle_copy_max && spin_passes_ > 1;
    std::unique_lock lk(mtx_); // one lock for the setup and the schedule loop
    ScheduleRun run(*this, steps, epoch, sig, what);
    run.prepare();
    const CallScope scope(*this, epoch, run.proto(), sig, what);
    Idle idle;
    try {
        for (;;) {
            bool all_done = true;
            const bool progress = run.pass(all_done);
            if (all_done) break;
            if (progress) {
                idle.passes = 0;
                continue;
            }
            if (idle_copy.bytes != 0 && idle_overlap && run.sent_all()) {
                // In pieces, polling in between: a long copy must not stop this rank from consuming (and
                // crediting) what its peers still send.
                run_idle_copy(idle_copy, k_idle_copy_piece);
                continue;
            }
            idle_pass(idle, lk, epoch, sig, what,
                      [&](std::vector<Channel*>& data, std::vector<Channel*>& credit, std::string* debug) {
                          run.waiting(data, credit, debug);
                      });
        }
        run_idle_copy(idle_copy);
    } catch (...) {
        // Channels may hold messages of this call: the object cannot continue.
        for (auto& st : steps) st.window = false;
        fail_call();
        throw;
    }
}

}  // namespace coyote::detail::coll
