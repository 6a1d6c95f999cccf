// coyote-mpi sim backend: the SimDevice object: construction and teardown, ctids, user CSRs, completion
// counters and asynchronous errors, user interrupts, NIC delegation, statistics, and sim::open().
#include "backend/sim/sim_device.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <iomanip>
#include <new>
#include <set>
#include <sstream>

#include "backend/sim/clock.hpp"
#include "backend/sim/net/pull_line.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/node_cores.hpp"
#include "backend/sim/reconfig_state.hpp"
#include "backend/sim/segments.hpp"
#include "backend/sim/shell_port.hpp"
#include "detail/format.hpp"
#include "detail/per_process.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim {

namespace {

std::once_flag g_reclaim_once;

/// The (device, vfid) pairs with a SimDevice alive in this process. A device being destroyed still
/// owns its shm names until its destructor ends; open() waits for that instead of colliding. A forked child starts
/// with none: the devices it inherited are its parent's (their shm names carry the parent's pid).
struct LiveDevices {
    std::mutex mtx;
    std::condition_variable cv;
    std::set<std::pair<uint32_t, int32_t>> live;
};
LiveDevices& live_devices() { return PerProcess<LiveDevices>::get(); } // never destroyed: devices may outlive statics

/// Marks (device, vfid) closed and wakes an open() waiting for it.
void release_live(uint32_t device, int32_t vfid) noexcept {
    auto& reg = live_devices();
    {
        std::lock_guard lk(reg.mtx);
        reg.live.erase({device, vfid});
    }
    reg.cv.notify_all();
}

namespace settings = ::coyote::detail::settings;
const settings::Integer k_poll_spin_us{
    "COYOTE_SIM_POLL_SPIN_US", "sim", 0, 0, 1000000,
    "how long a thread polling checkCompleted without news keeps polling before it sleeps until the next "
    "completion: the first 20 us without a system call (unless the vFPGA serves TCP wire connections), then "
    "yielding its core between polls (auto: 1000 us, 0 when this node runs more ranks than it has cores)",
    "auto"};
/// The automatic spin budget while every rank of the node can have a core of its own. It outlasts the skew of an
/// out-of-band sync (the side that returns first waits for the other's first request): a poller that sleeps is
/// woken by the kernel, which on a VM with idle vCPUs took up to 2.2 ms at times (docs/coyote_examples.md, "Stalls
/// that were wake-ups"). With 100 us, 2 - 12 in 200,000 synced 4 KiB WRITE round trips took 1 ms or more; with 1 ms,
/// none.
constexpr int64_t k_auto_spin_ns = 1000 * 1000;
/// The start of the spin budget an idle poller spends without sched_yield: the first WRITE of a peer's burst, which
/// comes a wake-up after an out-of-band sync (5 - 10 us here), then meets a poller that is not in a system call.
constexpr int64_t k_hot_spin_ns = 20 * 1000;
/// A poller asleep on a counter only the queue pair's peer moves asks whether that peer exited once it has slept
/// this long, then at most once per period (check_gone_peer: a /proc lookup).
constexpr std::chrono::nanoseconds k_gone_peer_after = std::chrono::milliseconds(500);
constexpr std::chrono::nanoseconds k_gone_peer_period = std::chrono::milliseconds(250);

/// The spin budget of idle pollers: COYOTE_SIM_POLL_SPIN_US, else k_auto_spin_ns unless the node is oversubscribed
/// (more ranks than online cores, as Open MPI's yield_when_idle decides: a polling rank would then keep the core its
/// peer needs from it more often than not).
int64_t poll_spin_budget_ns() {
    if (k_poll_spin_us.is_set()) return k_poll_spin_us.get() * 1000;
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 && local_ranks() <= cores ? k_auto_spin_ns : 0;
}

/// The error of a ctid out of range (cold: kept off the hot path).
[[noreturn, gnu::cold]] void throw_bad_ctid(int32_t ctid, const char* call) {
    throw_error(Errc::invalid_argument, call, "ctid " + std::to_string(ctid) + " is out of range");
}

/// Throws unless `ctid` indexes the ctid table (registered or not).
inline void check_ctid_index(int32_t ctid, const char* call) {
    if (ctid < 0 || ctid >= N_CTID_MAX) [[unlikely]]
        throw_bad_ctid(ctid, call);
}

/// Throws unless `offs` is a user CSR.
void check_csr_offset(uint32_t offs, const char* call) {
    if (offs >= coyote::sim::k_csr_words)
        throw_error(Errc::invalid_argument, call,
                    "CSR offset " + std::to_string(offs) + " is out of range (limit " +
                        std::to_string(coyote::sim::k_csr_words) + " 64-bit registers, offsets 0.." +
                        std::to_string(coyote::sim::k_csr_words - 1) + ")");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

SimDevice::SimDevice(uint32_t device, int32_t vfid, const ShellConfig& cfg)
    : device_(device), vfid_(vfid), cfg_(cfg), ident_(load_net_identity(device)), spin_ns_(poll_spin_budget_ns()),
      card_(cfg.card_capacity) {
    model_ = load_model_for(device, vfid);
    port_ = std::make_unique<ShellPort>(*this);

    const uint64_t header = round_up(sizeof(SharedState), k_host_page);
    state_seg_ = ShmSegment::create(state_segment_name(device, vfid), header + k_state_net_area_size);
    track_segment(state_seg_.name());
    state_ = new (state_seg_.get()) SharedState();
    state_->version = k_state_version;
    state_->owner_pid = ::getpid();
    state_->owner_start_time = process_start_time(::getpid());
    state_->device = device;
    state_->vfid = vfid;
    state_->ip_addr = ident_.ip;
    state_->mac_addr = ident_.mac;
    state_->net_offset = header;
    state_->net_size = k_state_net_area_size;
    std::atomic_ref<uint64_t>(state_->magic).store(k_state_magic, std::memory_order_release);

    if (cfg_.en_rdma) {
        nic_ = make_nic(*this);
        for (int32_t c = 0; c < N_CTID_MAX; ++c) nic_pending_[static_cast<size_t>(c)] = &nic_->pending_flag(c);
        nic_live_ = &nic_->progress_flag();
        nic_deferred_ = &nic_->deferred_flag();
        for (int32_t c = 0; c < N_CTID_MAX; ++c) {
            nic_pull_[static_cast<size_t>(c)] = &nic_->pull_line(c);
            nic_polled_[static_cast<size_t>(c)] = &nic_->polled_flag(c);
        }
    }
    worker_ = std::thread([this] { worker_loop(); });
    (void)::pthread_setname_np(worker_.native_handle(), "coyote-vfpga"); // seen in top -H, gdb
    // The packet sniffer model (Coyote example 11) writes its capture into card memory, as the example reads it.
    if (cfg_.en_mem) sniffer::offer_card_port(device_, vfid_, this);
}

SimDevice::~SimDevice() {
    sniffer::withdraw_card_port(device_, vfid_, this);
    {
        std::lock_guard lk(q_mtx_);
        stop_ = true;
    }
    q_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    for (int32_t c = 0; c < N_CTID_MAX; ++c) replace_irq_thread(c, nullptr);
    nic_pending_.fill(nullptr);
    nic_live_ = nullptr;
    nic_deferred_ = nullptr;
    nic_pull_.fill(nullptr);
    nic_polled_.fill(nullptr);
    nic_.reset();
    {
        std::lock_guard lk(alloc_mtx_);
        for (auto& [addr, rec] : allocs_) release_record(rec);
        allocs_.clear();
    }
    model_.reset();
    state_ = nullptr;
    const std::string state_name = state_seg_.name();
    state_seg_ = ShmSegment{}; // unlinks the name before the pair is released
    untrack_segment(state_name);
    release_live(device_, vfid_);
}

void SimDevice::swap_model(ModelHandle model) {
    std::lock_guard lk(hw_mtx_);
    std::swap(model_, model);
    reset_streams(); // a new app starts with empty streams, as after a partial reconfiguration
}

std::string SimDevice::model_name() const {
    std::lock_guard lk(hw_mtx_);
    return model_.origin();
}

// ---------------------------------------------------------------------------------------------
// ctids
// ---------------------------------------------------------------------------------------------

int32_t SimDevice::register_ctid(pid_t hpid) {
    std::lock_guard lk(ctid_mtx_);
    for (int32_t c = 0; c < N_CTID_MAX; ++c) {
        auto& st = ctids_[static_cast<size_t>(c)];
        if (st.active.load(std::memory_order_acquire)) continue;
        st.inflight = 0;
        st.posted = 0;
        st.bytes_read = 0;
        st.bytes_written = 0;
        st.page_faults = 0;
        st.interrupts = 0;
        st.interrupts_dropped = 0;
        st.poll_countdown.store(nullptr, std::memory_order_relaxed);
        st.hpid = hpid;
        st.foreign = hpid > 0 && hpid != ::getpid();
        clear_completed(c);
        {
            std::lock_guard elk(err_mtx_);
            errors_[static_cast<size_t>(c)].reset();
            st.has_error = false;
        }
        st.active.store(true, std::memory_order_release);
        return c;
    }
    throw_error(Errc::resource_exhausted, "cThread",
                "all " + std::to_string(N_CTID_MAX) + " ctids of vFPGA " + std::to_string(vfid_) + " on device " +
                    std::to_string(device_) + " are in use");
}

void SimDevice::unregister_ctid(int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    auto& st = ctids_[static_cast<size_t>(ctid)];
    if (!st.active.load(std::memory_order_acquire)) return;
    replace_irq_thread(ctid, nullptr);

    // Buffers the Coyote thread left behind, as the driver does when a process lets go.
    std::vector<Allocation> leftovers;
    {
        std::lock_guard lk(alloc_mtx_);
        for (const auto& [addr, rec] : allocs_)
            if (rec.ctid == ctid) leftovers.push_back(rec.info);
    }
    for (const auto& a : leftovers) free_mem(ctid, a);

    {
        std::lock_guard hw(hw_mtx_);
        {
            std::lock_guard q(q_mtx_);
            std::erase_if(queue_, [&](const Command& c) { return c.ctid == ctid; });
            queue_nonempty_.store(!queue_.empty(), std::memory_order_release);
        }
        for (auto& dq : pending_) std::erase_if(dq, [&](const PendingWrite& w) { return w.ctid == ctid; });
        st.active.store(false, std::memory_order_release);
        st.inflight = 0;
        st.poll_countdown.store(nullptr, std::memory_order_relaxed);
    }
    if (nic_) nic_->on_ctid_unregistered(ctid);
}

// ---------------------------------------------------------------------------------------------
// User control registers
// ---------------------------------------------------------------------------------------------

void SimDevice::set_csr(uint64_t val, uint32_t offs) {
    check_csr_offset(offs, "setCSR");
    csr_[offs].store(val, std::memory_order_release);
    std::lock_guard hw(hw_mtx_);
    try {
        model_->on_csr_write(*port_, offs, val);
        discard_reservations();
    } catch (const std::exception& e) {
        discard_reservations();
        throw_error(Errc::invalid_argument, "setCSR",
                    "user-logic model '" + model_.origin() + "' failed on the write of CSR " + std::to_string(offs) +
                        ": " + reason_of(e));
    } catch (...) { // not a std::exception (an int, a string literal): named like one, never let through as is
        discard_reservations();
        throw_error(Errc::invalid_argument, "setCSR",
                    "user-logic model '" + model_.origin() + "' failed on the write of CSR " + std::to_string(offs) +
                        ": it threw an exception of a type that is not std::exception");
    }
}

uint64_t SimDevice::get_csr(uint32_t offs) const {
    check_csr_offset(offs, "getCSR");
    return csr_[offs].load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------------------------
// Completions and errors
// ---------------------------------------------------------------------------------------------

uint32_t SimDevice::completed(int32_t ctid, CmplClass cls) const {
    check_ctid_index(ctid, "checkCompleted");
    // A thread polling for completions makes progress itself rather than waiting for the worker or the NIC.
    const_cast<SimDevice*>(this)->drive_progress();
    const_cast<SimDevice*>(this)->pull_offered(ctid, false); // a reading, not a polling loop
    if (cls == CmplClass::local_write) (void)claim_deferred(*state_, ctid);
    return wback(cls, ctid).load(std::memory_order_acquire);
}

void SimDevice::clear_completed(int32_t ctid) {
    check_ctid_index(ctid, "clearCompleted");
    ctids_[static_cast<size_t>(ctid)].poll_idle.store(0, std::memory_order_relaxed);
    if (std::atomic<bool>* polled = nic_polled_[static_cast<size_t>(ctid)]; polled != nullptr)
        polled->store(true, std::memory_order_relaxed); // a burst of WRITEs ends here too (Nic::polled_flag)
    // This process's own WRITEs are counted at their targets first (a clear often follows a burst, as in Coyote's
    // perf_rdma server). Completions deferred here landed before the clear: they go with the counters.
    flush_own_deferred();
    if (auto& d = state_->deferred[ctid].n; d.load(std::memory_order_relaxed) != 0)
        d.store(0, std::memory_order_relaxed);
    for (uint32_t cls = 0; cls < N_WBACKS; ++cls)
        wback(static_cast<CmplClass>(cls), ctid).store(0, std::memory_order_release);
}

void SimDevice::raise_pending_error(int32_t ctid) {
    check_ctid_index(ctid, "invoke");
    if (ctids_[static_cast<size_t>(ctid)].has_error.load(std::memory_order_acquire)) {
        std::optional<std::pair<std::error_code, std::string>> err;
        {
            std::lock_guard lk(err_mtx_);
            err.swap(errors_[static_cast<size_t>(ctid)]);
            ctids_[static_cast<size_t>(ctid)].has_error.store(false, std::memory_order_release);
        }
        if (err) throw Error(err->first, "invoke", err->second);
    }
    // The NIC's own check is lock-free too, but a virtual call away.
    if (const auto* f = nic_pending_[static_cast<size_t>(ctid)]; f != nullptr && f->load(std::memory_order_acquire))
        nic_->raise_pending_error(ctid);
}

void SimDevice::set_poll_countdown(int32_t ctid, std::atomic<uint32_t>* countdown) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    ctids_[static_cast<size_t>(ctid)].poll_countdown.store(countdown, std::memory_order_relaxed);
}

uint32_t SimDevice::poll_completed(int32_t ctid, CmplClass cls) {
    raise_pending_error(ctid); // checks the range
    drive_progress();
    pull_offered(ctid, cls == CmplClass::local_write);
    if (cls == CmplClass::local_write) claim_when_due(ctid);
    const uint32_t v = wback(cls, ctid).load(std::memory_order_acquire);
    note_idle_poll(ctid, cls, v);
    return v;
}

inline void SimDevice::pull_offered(int32_t ctid, bool stamp) noexcept {
    net::PullLine* line = nic_pull_[static_cast<size_t>(ctid)];
    if (line == nullptr) return;
    if (std::atomic<bool>& polled = *nic_polled_[static_cast<size_t>(ctid)]; !polled.load(std::memory_order_relaxed))
        polled.store(true, std::memory_order_relaxed);
    // A poller past its hot phase (asleep between polls) is not shown: an offer would wait for it in vain.
    if (stamp && ctids_[static_cast<size_t>(ctid)].sleeping_since_ns.load(std::memory_order_relaxed) == 0) {
        const uint64_t now = tick_stamp();
        if (now - line->polled_tick.load(std::memory_order_relaxed) >= k_pull_stamp_ticks)
            line->polled_tick.store(now, std::memory_order_relaxed);
    }
    if (net::pull_pending(*line)) nic_->pull(ctid);
}

inline void SimDevice::claim_when_due(int32_t ctid) noexcept {
    auto& last = ctids_[static_cast<size_t>(ctid)].last_claim_stamp;
    const uint64_t now = tick_stamp();
    if (now - last.load(std::memory_order_relaxed) < k_claim_period_ticks) return;
    last.store(now, std::memory_order_relaxed);
    (void)claim_deferred(*state_, ctid);
}

inline void SimDevice::note_idle_poll(int32_t ctid, CmplClass cls, uint32_t seen) noexcept {
    // Hints only (relaxed): threads polling the same ctid may interleave their updates.
    auto& st = ctids_[static_cast<size_t>(ctid)];
    auto& last = st.poll_seen[static_cast<size_t>(cls)];
    if (last.load(std::memory_order_relaxed) != seen) { // the counter moved since its last poll
        last.store(seen, std::memory_order_relaxed);
        st.poll_idle.store(0, std::memory_order_relaxed);
        if (st.sleeping_since_ns.load(std::memory_order_relaxed) != 0)
            st.sleeping_since_ns.store(0, std::memory_order_relaxed);
        return;
    }
    const uint32_t n = st.poll_idle.load(std::memory_order_relaxed);
    if (n < k_polls_before_yield) {
        st.poll_idle.store(n + 1, std::memory_order_relaxed);
        return;
    }
    // Past the hot phase a poller yields or sleeps, but only while no deferred WRITE waits either: WRITEs arriving
    // in a burst leave the counter unchanged between claims. A claim moves it, and the next poll is hot again.
    if (cls == CmplClass::local_write && claim_deferred(*state_, ctid)) return;
    if (queue_nonempty_.load(std::memory_order_relaxed) || worker_running_.load(std::memory_order_relaxed)) return;
    if (spin_ns_ > 0) {
        const int64_t now = precise_ns(); // read only by polls past k_polls_before_yield
        if (n == k_polls_before_yield) { // the spin budget starts now
            st.idle_since_ns.store(now, std::memory_order_relaxed);
            st.poll_idle.store(n + 1, std::memory_order_relaxed);
            return;
        }
        const int64_t idle = now - st.idle_since_ns.load(std::memory_order_relaxed);
        // No thread of ours delivers on the shm wire: spin on without handing the core away for a while. A TCP wire
        // connection's reader thread may share this core (a rank pinned to one), so with one the yields start now.
        const bool tcp_live = nic_live_ != nullptr && nic_live_->load(std::memory_order_relaxed);
        if (idle < std::min(k_hot_spin_ns, spin_ns_) && !tcp_live) return;
        if (idle < spin_ns_) {
            // The peer that will deliver often shares this core (the scheduler pulls a waker and its wakee
            // together): hand it the core now; with nothing else runnable here this returns at once.
            ::sched_yield();
            return;
        }
    }
    check_gone_peer(ctid, cls, seen);
    // A WRITE deferred after the claim above ends the sleep too (defer_local_write).
    const bool claims = cls == CmplClass::local_write;
    const std::atomic<uint32_t>& counter = wback(cls, ctid);
    const std::atomic<uint32_t>& deferred = state_->deferred[ctid].n;
    // This poll sleeps up to k_poll_sleep_ns: the owner's next poll runs the stall doctor's check, which would
    // otherwise come after as many sleeping polls as fast ones (4096 of 200 us and more).
    if (std::atomic<uint32_t>* c = st.poll_countdown.load(std::memory_order_relaxed))
        c->store(1, std::memory_order_relaxed);
    wait_completion(
        *state_,
        [&] {
            return counter.load(std::memory_order_seq_cst) != seen ||
                   (claims && deferred.load(std::memory_order_seq_cst) != 0);
        },
        k_poll_sleep_ns);
}

void SimDevice::check_gone_peer(int32_t ctid, CmplClass cls, uint32_t seen) noexcept {
    // Counters only the peer moves: LOCAL_WRITE, REMOTE_RDMA_READ, and REMOTE_RDMA_WRITE while the target copies a
    // WRITE it took (shm pulls); an shm WRITE the initiator copied was counted when it was posted.
    if (nic_ == nullptr) return;
    if (cls != CmplClass::local_write && cls != CmplClass::rdma_read &&
        (cls != CmplClass::rdma_write || !nic_->awaits_peer_copy(ctid)))
        return;
    auto& st = ctids_[static_cast<size_t>(ctid)];
    if (st.inflight.load(std::memory_order_acquire) > 0) return; // a local command may still move the counter
    const int64_t now = coarse_now_ns();
    int64_t since = st.sleeping_since_ns.load(std::memory_order_relaxed);
    if (since == 0) {
        st.sleeping_since_ns.store(now, std::memory_order_relaxed);
        return;
    }
    if (now - since < k_gone_peer_after.count() ||
        now - st.peer_checked_ns.load(std::memory_order_relaxed) < k_gone_peer_period.count())
        return;
    st.peer_checked_ns.store(now, std::memory_order_relaxed);
    const std::string gone = nic_->gone_peer(ctid);
    if (gone.empty()) return;
    const char* polled = cls == CmplClass::local_write ? "LOCAL_WRITE"
                         : cls == CmplClass::rdma_read ? "REMOTE_RDMA_READ"
                                                       : "REMOTE_RDMA_WRITE";
    record_error(ctid, make_error_code(Errc::peer_gone),
                 std::string("checkCompleted(") + polled +
                     "): " + gone + " while ctid " + std::to_string(ctid) +
                     " waited for completions only it could bring (the counter stays at " + std::to_string(seen) +
                     ")");
}

// ---------------------------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------------------------

void SimDevice::raise_interrupt(int32_t ctid, int32_t value) {
    if (ctid < 0 || ctid >= N_CTID_MAX || !ctids_[static_cast<size_t>(ctid)].active.load(std::memory_order_acquire))
        throw_error(Errc::invalid_argument, "Shell::raise_interrupt",
                    "ctid " + std::to_string(ctid) + " is not registered on vFPGA " + std::to_string(vfid_));
    auto& st = ctids_[static_cast<size_t>(ctid)];
    st.interrupts.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<IrqThread> t;
    {
        std::lock_guard lk(irq_mtx_);
        t = irq_[static_cast<size_t>(ctid)];
    }
    if (!t) {
        st.interrupts_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    {
        std::lock_guard lk(t->mtx);
        t->values.push_back(value);
    }
    t->cv.notify_one();
}

void SimDevice::stop_irq_thread(std::shared_ptr<IrqThread> t) noexcept {
    {
        std::lock_guard lk(t->mtx);
        t->stop = true;
    }
    t->cv.notify_all();
    // From inside its own handler it ends when the handler returns; the thread holds `t`, never the device.
    join_or_abandon(t->thread, t->exit, "the user-interrupt handler");
}

void SimDevice::set_interrupt_handler(int32_t ctid, InterruptHandler handler) {
    check_ctid(ctid, "cThread");
    std::shared_ptr<IrqThread> fresh;
    if (handler) {
        fresh = std::make_shared<IrqThread>();
        fresh->handler = std::move(handler);
        fresh->thread = std::thread([t = fresh] {
            irq_loop(*t);
            t->exit.mark_finished();
        });
        (void)::pthread_setname_np(fresh->thread.native_handle(), "coyote-irq");
    }
    replace_irq_thread(ctid, std::move(fresh));
}

void SimDevice::irq_loop(IrqThread& t) {
    std::unique_lock lk(t.mtx);
    for (;;) {
        t.cv.wait(lk, [&] { return t.stop || !t.values.empty(); });
        if (t.stop) return;
        const int32_t v = t.values.front();
        t.values.pop_front();
        lk.unlock();
        t.exit.enter_handler();
        try {
            t.handler(v);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote sim: user interrupt handler threw: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "coyote sim: user interrupt handler threw\n");
        }
        (void)t.exit.leave_handler(); // the thread holds `t` itself: nothing of the device to avoid
        lk.lock();
    }
}

void SimDevice::replace_irq_thread(int32_t ctid, std::shared_ptr<IrqThread> fresh) noexcept {
    std::shared_ptr<IrqThread> old;
    {
        std::lock_guard lk(irq_mtx_);
        old = std::exchange(irq_[static_cast<size_t>(ctid)], std::move(fresh));
    }
    if (old) stop_irq_thread(std::move(old));
}

// ---------------------------------------------------------------------------------------------
// Network delegation
// ---------------------------------------------------------------------------------------------

uint32_t SimDevice::rkey(int32_t ctid) const { return nic_ ? nic_->rkey(ctid) : 0; }

std::vector<std::byte> SimDevice::local_endpoint(int32_t ctid) const {
    return nic_ ? nic_->local_endpoint(ctid) : std::vector<std::byte>{};
}

void SimDevice::check_remote_endpoint(std::span<const std::byte> endpoint) const {
    (void)decode_endpoint(endpoint);
}

void SimDevice::set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) {
    if (!nic_) throw_error(Errc::not_supported, "initRDMA", "RDMA is disabled in the shell (rdma=0)");
    nic_->set_remote_endpoint(ctid, endpoint);
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

std::string SimDevice::debug_string(int32_t ctid) const {
    check_ctid_index(ctid, "printDebug");
    const auto& st = ctids_[static_cast<size_t>(ctid)];
    std::ostringstream os;
    auto line = [&](const char* label, uint64_t v) { os << std::setw(35) << label << " \t" << v << "\n"; };
    os << "-- STATISTICS - ID: " << vfid_ << " (sim device " << device_ << ", ctid " << ctid << ")\n";
    os << "-----------------------------------------------\n";
    line("Completed local reads:", completed(ctid, CmplClass::local_read));
    line("Completed local writes:", completed(ctid, CmplClass::local_write));
    line("Completed remote reads:", completed(ctid, CmplClass::rdma_read));
    line("Completed remote writes:", completed(ctid, CmplClass::rdma_write));
    line("Commands posted:", st.posted.load(std::memory_order_relaxed));
    line("Commands pending:", static_cast<uint64_t>(std::max(0, st.inflight.load(std::memory_order_relaxed))));
    line("Bytes read (to the vFPGA):", st.bytes_read.load(std::memory_order_relaxed));
    line("Bytes written (from the vFPGA):", st.bytes_written.load(std::memory_order_relaxed));
    line("Page faults received:", st.page_faults.load(std::memory_order_relaxed));
    line("Notifications received:", st.interrupts.load(std::memory_order_relaxed));
    line("Notifications without handler:", st.interrupts_dropped.load(std::memory_order_relaxed));
    {
        std::lock_guard hw(hw_mtx_);
        os << std::setw(35) << "User-logic model:" << " \t" << model_.origin();
        // A plug-in is known by its path; the name it gives itself follows.
        const char* own = model_.get() != nullptr ? model_->name() : nullptr;
        if (own != nullptr && *own != '\0' && model_.origin() != own) os << " (" << printable(own) << ")";
        os << "\n";
        line("Card memory in use (bytes):", card_.used());
        if (dropped_output_ > 0) line("Output bytes dropped:", dropped_output_);
    }
    if (nic_) os << nic_->debug_string(ctid);
    return os.str();
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

std::shared_ptr<Device> open(uint32_t device, int32_t vfid) {
    std::call_once(g_reclaim_once, [] { reclaim_stale_segments(); });
    ShellConfig cfg = load_shell_config();
    apply_shell_override(device, cfg);
    check_vfid_exists(cfg, device, vfid, "cThread");
    auto& reg = live_devices();
    {
        std::unique_lock lk(reg.mtx);
        const auto key = std::make_pair(device, vfid);
        if (!reg.cv.wait_for(lk, std::chrono::seconds(10), [&] { return reg.live.count(key) == 0; }))
            throw_error(Errc::resource_exhausted, "cThread",
                        "vFPGA " + std::to_string(vfid) + " of sim device " + std::to_string(device) +
                            " is still open in this process (its previous handle did not close within 10 s)");
        reg.live.insert(key);
    }
    try {
        return std::make_shared<SimDevice>(device, vfid, cfg);
    } catch (...) {
        release_live(device, vfid);
        throw;
    }
}

}  // namespace coyote::detail::sim
