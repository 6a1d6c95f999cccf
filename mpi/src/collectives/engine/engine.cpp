// coyote-mpi collectives engine: construction (wiring the peers, one channel each), teardown, channel lookup
// and the progress thread of non-blocking collectives.
#include "collectives/engine/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <string>
#include <utility>

#include <coyote/mpi/bootstrap.hpp>

#include "collectives/engine/internal.hpp"
#include "bootstrap/mpi_state.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

namespace {

std::vector<int> log_peers(int rank, int size) {
    std::vector<int> out;
    for (int d = 1; d < size; d <<= 1) {
        out.push_back((rank + d) % size);
        out.push_back((rank - d % size + size) % size);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    out.erase(std::remove(out.begin(), out.end(), rank), out.end());
    return out;
}

mpi::WiringOptions wiring_for(const mpi::Communicator& comm, const EngineConfig& cfg) {
    mpi::WiringOptions wo;
    wo.buffer_size = cfg.buffer_size;
    if (cfg.all_peers) {
        wo.pattern = mpi::PeerPattern::all;
    } else {
        wo.pattern = mpi::PeerPattern::explicit_list;
        wo.peers = log_peers(comm.rank(), comm.size());
    }
    return wo;
}

}  // namespace

Engine::Engine(const mpi::Communicator& comm, const mpi::DeviceAssignment& device, const EngineConfig& cfg)
    : comm_(comm.share()), rank_(comm.rank()), size_(comm.size()), cfg_(cfg), qps_(comm, device, wiring_for(comm, cfg)),
      device_(device), owner_(std::this_thread::get_id()) {
    // More ranks than CPUs they may use on this node: a waiting rank's peer is often descheduled, so yield at once.
    spin_passes_ = comm.local_size() > comm.local_cores() ? 1 : k_spin_passes;
    bootstrap_ = mpi::BootstrapOptions::from_env();
    bootstrap_.on_timeout = mpi::OnTimeout::throw_error;
    const uint64_t slot_bytes = cfg.chunk_bytes + k_header_bytes;
    const uint64_t ring = (cfg.buffer_size - k_control_bytes) / 2;
    slots_ = static_cast<uint32_t>(std::min<uint64_t>(ring / slot_bytes, 1024));
    payload_ = static_cast<uint32_t>(cfg.chunk_bytes);
    chan_of_.assign(static_cast<std::size_t>(size_), nullptr);
    for (int p : qps_.peers())
        chan_of_[static_cast<std::size_t>(p)] =
            &chans_.emplace(p, make_channel(p, qps_.thread(p), static_cast<std::byte*>(qps_.buffer(p)))).first->second;
    const MPI_Comm dup = mpi::detail::duplicate_bounded(comm.get(), "collectives: communicator for queue-pair links",
                                                        "construct its Collectives", bootstrap_);
    link_comm_ = std::make_shared<mpi::detail::CommHandle>(dup);
    live_.emplace(comm.get(), mpi::LivenessOptions{.host = {}, .setup_timeout = bootstrap_.timeout});
    // Nobody writes before every rank has taken its counter baselines.
    mpi::arrive(comm, "collectives ready", bootstrap_);
}

Channel Engine::make_channel(int peer, cThread& thread, std::byte* buf) {
    Channel c;
    c.peer = peer;
    c.thread = &thread;
    c.buf = buf;
    c.slots = slots_;
    c.slot_bytes = payload_ + k_header_bytes;
    c.recv_base = k_control_bytes;
    c.send_base = k_control_bytes + slots_ * c.slot_bytes;
    std::memset(c.buf, 0, k_control_bytes);
    c.arrive_base = thread.checkCompleted(CoyoteOper::LOCAL_WRITE);
    c.write_base = thread.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
    return c;
}

Engine::~Engine() {
    {
        // Queued non-blocking collectives still run (each bounded by the deadline), then the thread ends.
        std::lock_guard lk(async_mtx_);
        async_stop_ = true;
    }
    async_cv_.notify_all();
    if (async_thread_.joinable()) async_thread_.join();
    fail_open_requests();
    if (mpi::detail::mpi_finalized()) return;
    // A broken object still joins: the ranks it failed with are in this teardown too, and a rank that skipped it
    // left them waiting out their whole deadline.
    if (size_ > 1) {
        announce_close();
        teardown_barrier();
    }
    drain_links();
}

void Engine::fail_open_requests() noexcept {
    // Their Request objects outlive this engine: each finds its error without it.
    for (auto& [p, c] : chans_)
        for (auto* q : {&c.sendq, &c.posted})
            for (const auto& op : *q) {
                if (op->done.load(std::memory_order_acquire)) continue;
                try {
                    op->error = std::make_exception_ptr(
                        Error(make_error_code(Errc::invalid_argument), op->what,
                              "its Collectives object was destroyed before the request completed"));
                } catch (...) { // no memory for the message: the request still fails
                    op->error = std::current_exception();
                }
                op->done.store(true, std::memory_order_release);
            }
}

void Engine::announce_close() noexcept {
    const uint64_t word = epoch_.load() + 1;
    for (auto& [p, c] : chans_) {
        if (!c.ready) continue;
        try {
            // The count first: a peer that sees the word reads a count that is already there (one queue pair).
            std::memcpy(c.buf + k_closed_stage + 8, &c.sent, sizeof(c.sent));
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_closed_stage + 8, .remote_offs = k_closed_sent, .len = 8}, false);
            std::memcpy(c.buf + k_closed_stage, &word, sizeof(word));
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_closed_stage, .remote_offs = k_closed_in, .len = 8}, false);
        } catch (...) {
            // that peer is gone: nothing to tell it
        }
    }
}

void Engine::teardown_barrier() noexcept {
    // Collective teardown: no rank frees its buffers while another may still write into them. It runs on the
    // engine's own communicator: a barrier given up at the deadline must not pair with a later collective of the
    // user's communicator on the ranks that arrive late.
    MPI_Request req = MPI_REQUEST_NULL;
    if (MPI_Ibarrier(link_comm_->get(), &req) != MPI_SUCCESS) return;
    const auto deadline = Clock::now() + cfg_.timeout;
    bool gone = false;
    try {
        for (int r = 0; r < size_ && live_; ++r) gone = gone || live_->gone(r);
    } catch (...) {
    }
    // A peer found gone ends the wait after a grace: a peer on another host that has left this barrier closes its
    // liveness connection, which reads as gone while our own barrier is about to complete.
    auto give_up = gone ? Clock::now() + k_teardown_grace : Clock::time_point::max();
    int flag = 0;
    while (MPI_Test(&req, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && !flag) {
        const auto now = Clock::now();
        if (now > deadline || now > give_up) break;
        if (!gone) {
            try {
                gone = live_ && live_->check() >= 0;
            } catch (...) {
            }
            if (gone) give_up = now + k_teardown_grace;
        }
        ::sched_yield();
    }
    // Given up (past the deadline, or a peer is gone): the request stays active, and freeing an active collective
    // request is not allowed; nor is freeing its communicator under it (Open MPI would progress the barrier on the
    // freed communicator in a later MPI call and crash), so the communicator is left to MPI too.
    if (!flag) link_comm_->abandon();
}

void Engine::submit(std::shared_ptr<OpState> op, std::function<void()> job) {
    {
        std::lock_guard lk(async_mtx_);
        async_q_.push_back(AsyncJob{std::move(op), std::move(job)});
        if (!async_thread_.joinable()) async_thread_ = std::thread([this] { run_async_jobs(); });
    }
    async_cv_.notify_one();
}

void Engine::run_async_jobs() {
    std::unique_lock lk(async_mtx_);
    for (;;) {
        async_cv_.wait(lk, [this] { return async_stop_ || !async_q_.empty(); });
        if (async_q_.empty()) return; // stopping, nothing left
        AsyncJob j = std::move(async_q_.front());
        async_q_.pop_front();
        lk.unlock();
        try {
            j.job();
        } catch (...) {
            j.op->error = std::current_exception();
        }
        j.op->done.store(true, std::memory_order_release);
        lk.lock();
    }
}

void Engine::check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size_ || peer == rank_)
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(peer) + " is not another rank of this communicator (size " +
                        std::to_string(size_) + ", this rank " + std::to_string(rank_) + ")");
}

Channel& Engine::chan(int peer, const char* what) {
    if (peer >= 0 && peer < size_)
        if (Channel* c = chan_of_[static_cast<std::size_t>(peer)]) return *c;
    check_peer(peer, what);
    throw_error(Errc::protocol, what,
                "no queue pair from rank " + std::to_string(rank_) + " to rank " + std::to_string(peer) +
                    " (collective schedules use the wired peers rank +- 2^k only)");
}

}  // namespace coyote::detail::coll
