// coyote-mpi collectives engine: liveness and failure: probing peers, reporting a failed rank to the others,
// and the idle passes of a call that waits (spin, yield, probe, deadline).
#include "collectives/engine/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "detail/settings.hpp"

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Flag k_debug{"COYOTE_COLL_DEBUG", "collectives", false,
                             "1: a collective that times out describes its steps and channels in the error"};

std::string ranks_text(const std::vector<int>& r) {
    std::string s;
    for (std::size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + std::to_string(r[i]);
    return s;
}

}  // namespace

void Engine::peer_failed(Channel& c, const Error& e) {
    if (e.code() != make_error_code(Errc::peer_gone) && e.code() != make_error_code(Errc::remote_rejected)) throw;
    lost_peer(c, "collectives", e);
}

void Engine::lost_peer(Channel& c, const std::string& what, const Error& e) {
    lost_peer(c, what, std::string("its queue pair failed: ") + e.what());
}

void Engine::lost_peer(Channel& c, const std::string& what, const std::string& reason) {
    broken_ = true;
    check_abort(what);
    notify_failure(c.peer);
    throw_error(Errc::peer_gone, what, "rank " + std::to_string(c.peer) + " is gone (" + reason + ")");
}

void Engine::check_liveness(std::span<Channel* const> v, const std::string& what) {
    if (!live_ || live_->check() < 0) return;
    for (Channel* c : v)
        if (live_->gone(c->peer)) lost_peer(*c, what, live_->reason(c->peer));
}

void Engine::notify_failure(int dead) noexcept {
    // The low half holds dead + 1 as 32 bits: k_dead_mismatch (-2) is 0xffffffff there, not a 64-bit -1 that would
    // cover the reporter in the high half.
    const uint64_t word = (static_cast<uint64_t>(rank_) + 1) << 32 | static_cast<uint32_t>(dead + 1);
    for (auto& [p, c] : chans_) {
        if (p == dead || !c.ready) continue;
        try {
            std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(c.buf + k_abort_stage)).store(word, std::memory_order_release);
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_abort_stage, .remote_offs = k_abort_in, .len = 8}, false);
        } catch (...) {
            // that peer is gone too: nothing to tell it
        }
    }
}

void Engine::report_mismatch() noexcept {
    if (!std::current_exception()) return;
    try {
        throw;
    } catch (const Error& e) {
        // Inside a call only the signature and chunk checks throw invalid_argument.
        if (e.code() == make_error_code(Errc::invalid_argument)) notify_failure(k_dead_mismatch);
    } catch (...) {
    }
}

void Engine::check_abort(const std::string& what) {
    for (auto& [p, c] : chans_) {
        if (!c.ready) continue;
        const uint64_t w = load_u64(c.buf + k_abort_in);
        if (w == 0) continue;
        const int reporter = static_cast<int>(w >> 32) - 1;
        const int dead = static_cast<int>(w & 0xffffffffu) - 1;
        broken_ = true;
        notify_failure(dead);
        if (dead >= 0)
            throw_error(Errc::peer_gone, what,
                        "rank " + std::to_string(dead) + " is gone (reported by rank " + std::to_string(reporter) + ")");
        if (dead == k_dead_mismatch)
            throw_error(Errc::invalid_argument, what,
                        "rank " + std::to_string(reporter) + " reported a mismatched collective call and left the collectives");
        throw_error(Errc::peer_gone, what, "rank " + std::to_string(reporter) + " failed and left the collectives");
    }
}

void Engine::check_closed(std::span<Channel* const> v, uint64_t epoch, const std::string& what) {
    for (Channel* c : v) {
        const uint64_t w = load_u64(c->buf + k_closed_in);
        if (w == 0 || w - 1 >= epoch) continue; // open, or it took part in this call
        lost_peer(*c, what,
                  "it closed its collectives (object destroyed, or process ending) after " + std::to_string(w - 1) +
                      (w - 1 == 1 ? " call" : " calls") + "; this rank waits for it in call #" + std::to_string(epoch));
    }
}

void Engine::probe(Channel& c, const std::string& what, const StallRecord* mine) {
    try {
        if (mine != nullptr) {
            std::memcpy(c.buf + k_stall_stage, mine, sizeof(*mine));
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_stall_stage, .remote_offs = k_stall_in, .len = sizeof(*mine)},
                             false);
        } else {
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_probe_source, .remote_offs = k_probe_target, .len = 1}, false);
        }
        (void)c.thread->checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
    } catch (const Error& e) {
        if (e.code() == make_error_code(Errc::peer_gone) || e.code() == make_error_code(Errc::remote_rejected))
            lost_peer(c, what, e);
        broken_ = true;
        notify_failure(c.peer);
        throw;
    }
}

void Engine::check_stalled_peer(const Channel& c, uint64_t epoch, const Signature& sig, const char* what) const {
    StallRecord theirs;
    std::atomic_thread_fence(std::memory_order_acquire);
    std::memcpy(&theirs, c.buf + k_stall_in, sizeof(theirs));
    if (!stall_record_valid(theirs) || theirs.epoch != epoch) return; // torn, or another call
    const Signature s = signature_of(theirs);
    if (s == sig) return;
    throw_error(Errc::invalid_argument, what,
                "mismatched collective call #" + std::to_string(epoch) + ": rank " + std::to_string(c.peer) +
                    " waits in " + describe(s) + ", rank " + std::to_string(rank_) + " waits in " + describe(sig) +
                    " (each waits for the other)");
}

bool Engine::idle_wait(Idle& idle, std::unique_lock<std::mutex>& lk, const char* what) {
    // Spin briefly (a peer on another core answers within a microsecond), then yield on every pass (ranks may
    // share cores). Credits are returned eagerly only after sustained idleness: the threshold return covers
    // active flows, the flush breaks waits where both sides hold credits.
    if (idle.passes == 0) idle.since = Clock::now();
    ++idle.passes;
    if (idle.passes < spin_passes_) {
        cpu_relax();
        return false;
    }
    if (idle.passes % k_flush_passes == 0) {
        check_abort(what);
        flush_credits();
        progress_p2p(nullptr, true);
    }
    lk.unlock();
    ::sched_yield();
    lk.lock();
    idle.stalled = Clock::now() - idle.since;
    return idle.stalled >= cfg_.probe_interval;
}

bool Engine::debug_stall(const Idle& idle) const { return idle.stalled >= cfg_.timeout && k_debug.get(); }

void Engine::on_stall(const Idle& idle, std::vector<Channel*>& data, std::vector<Channel*>& credit, bool debug,
                      std::string& state, uint64_t epoch, const Signature& sig, const char* what) {
    for (auto* v : {&data, &credit}) {
        std::sort(v->begin(), v->end());
        v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    const StallRecord mine = stall_record(epoch, sig);
    for (auto* v : {&data, &credit})
        for (Channel* c : *v) {
            if (Clock::now() - c->last_probe < cfg_.probe_interval) continue;
            c->last_probe = Clock::now();
            probe(*c, what, &mine);
        }
    for (auto* v : {&data, &credit}) check_liveness(*v, what);
    for (auto* v : {&data, &credit}) check_closed(*v, epoch, what);
    // Every peer's record: in a cycle of waits a peer that waits in another call may not be one this rank waits for.
    for (const auto& [peer, c] : chans_) check_stalled_peer(c, epoch, sig, what);
    if (idle.stalled < cfg_.timeout) return;
    auto ranks = [](const std::vector<Channel*>& v) {
        std::vector<int> r;
        for (const Channel* c : v) r.push_back(c->peer);
        std::sort(r.begin(), r.end());
        return ranks_text(r);
    };
    if (debug)
        for (auto& [p, c] : chans_)
            state += " chan" + std::to_string(p) + "[sent " + std::to_string(c.sent) + " credit " +
                     std::to_string(load_u64(c.buf + k_credit_in)) + " consumed " + std::to_string(c.consumed) +
                     " arrived " + std::to_string(arrived(c)) + "]";
    notify_failure(-1);
    std::string waits;
    if (!data.empty()) waits += "; waiting for data from rank(s) " + ranks(data);
    if (!credit.empty()) waits += "; waiting for credits (room to send) from rank(s) " + ranks(credit);
    throw_error(Errc::timeout, what,
                state + "no progress for " +
                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(idle.stalled).count()) +
                    " ms (call #" + std::to_string(epoch) + ", " + describe(sig) + ")" + waits);
}

}  // namespace coyote::detail::coll
