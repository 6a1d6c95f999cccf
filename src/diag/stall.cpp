// coyote-mpi diagnostics: the stall doctor's slow path (progress tracking, warnings with back-off), the
// registry of watched cThreads and the opt-in SIGUSR1 handler that prints all their diagnoses.
#include "diag/stall.hpp"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "diag/doctor.hpp"
#include "detail/per_process.hpp"
#include "diag/sim_probe.hpp"
#include "diag/wait.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::diag {

namespace {

namespace settings = ::coyote::detail::settings;

const settings::Millis k_warn{"COYOTE_STALL_WARN_MS", "runtime", std::chrono::milliseconds(5000),
                              "stall doctor: print a diagnosis to stderr when a cThread polled or waited this long "
                              "without progress (then again with back-off); 0 turns the doctor off for the cThreads opened then",
                              std::chrono::milliseconds(0)};
const settings::Flag k_signal{"COYOTE_STALL_SIGNAL", "runtime", false,
                              "stall doctor: SIGUSR1 prints the diagnosis of every cThread of the process to stderr"};

constexpr int64_t k_max_backoff_ns = 300LL * 1000000000LL;

/// Every attached Watch of this process (for SIGUSR1).
struct Registry {
    Registry() { ::sem_init(&wake, 0, 0); }
    std::mutex mtx;
    std::set<const Watch*> watches;
    sem_t wake;
    bool handler_installed = false;
};

/// The registry of this process (fresh in a forked child, which has no printing thread until one of its own
/// Watches asks for it).
Registry& registry() { return PerProcess<Registry>::get(); }

void on_sigusr1(int) { ::sem_post(&registry().wake); }

void print_all() {
    Registry& r = registry();
    std::lock_guard lk(r.mtx);
    std::string out;
    for (const Watch* w : r.watches) {
        try {
            out += w->diagnose();
        } catch (...) {
        }
    }
    try {
        out += describe_waits();
    } catch (...) {
    }
    if (out.empty()) out = "coyote stall doctor: no cThread and no wait in this process\n";
    (void)!::write(STDERR_FILENO, out.data(), out.size());
}

/// Installs the SIGUSR1 handler and its printing thread once (registry mutex held).
void install_signal_handler(Registry& r) {
    if (r.handler_installed) return;
    r.handler_installed = true;
    std::thread printer([&r] {
        for (;;) {
            if (::sem_wait(&r.wake) == 0) print_all();
        }
    });
    (void)::pthread_setname_np(printer.native_handle(), "coyote-sigusr1");
    printer.detach();
    struct sigaction sa {};
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGUSR1, &sa, nullptr);
}

/// Whether another watched cThread of this process made progress after `since_ns`: the process is then not
/// stalled, and a cThread it polls without news is idle (e.g. a queue pair the collectives engine only probes).
/// Never waits for the registry: diagnose() takes a Watch's check lock under it.
bool another_progressed_since(const Watch* self, int64_t since_ns) noexcept {
    Registry& r = registry();
    std::unique_lock lk(r.mtx, std::try_to_lock);
    if (!lk.owns_lock()) return false;
    return std::any_of(r.watches.begin(), r.watches.end(),
                       [&](const Watch* w) { return w != self && w->last_progress_ns() > since_ns; });
}

}  // namespace

std::chrono::milliseconds stall_warn_after() { return k_warn.get(); }

Watch::~Watch() {
    if (!attached_) return;
    {
        Registry& r = registry();
        std::lock_guard lk(r.mtx);
        r.watches.erase(this);
    }
    if (slot_ != &local_slot_) release_slot(slot_);
}

void Watch::attach(const Subject& s, PollCountdown& countdown) {
    subject_ = s;
    countdown_ = &countdown;
    warn_ns_ = static_cast<int64_t>(stall_warn_after().count()) * 1000000;
    const bool signal = k_signal.get();
    countdown_->set(warn_ns_ == 0 ? 0 : k_first_period); // off: the slow path comes every 2^32 polls
    slot_ = warn_ns_ == 0 ? nullptr : acquire_slot(s.device, s.vfid, s.ctid, s.dev->backend_name());
    if (slot_ == nullptr) {
        slot_ = &local_slot_;
        local_slot_.device = s.device;
        local_slot_.vfid = s.vfid;
        local_slot_.ctid = s.ctid;
        std::strncpy(local_slot_.backend, s.dev->backend_name(), sizeof(local_slot_.backend) - 1);
        local_slot_.last_progress_ns.store(monotonic_ns());
        local_slot_.opened_ns.store(monotonic_ns());
    }
    // Sleeping polls bring the next check forward; with the doctor off there is none to bring.
    s.dev->set_poll_countdown(s.ctid, warn_ns_ == 0 ? nullptr : countdown.word());
    publish_qp();
    Registry& r = registry();
    std::lock_guard lk(r.mtx);
    r.watches.insert(this);
    if (signal) install_signal_handler(r);
    attached_ = true;
}

void Watch::publish_qp() noexcept {
    if (subject_.qp == nullptr) return;
    auto side = [](const ibvQ& q) {
        return QpSide{q.qpn, q.psn, q.rkey, q.ip_addr, reinterpret_cast<uint64_t>(q.vaddr)};
    };
    slot_->local = side(subject_.qp->local);
    slot_->remote = side(subject_.qp->remote);
}

void Watch::on_connect(std::span<const std::byte> endpoint) noexcept {
    if (slot_ == nullptr) return;
    publish_qp();
    slot_->peer_pid = 0;
    slot_->peer_nic[0] = '\0';
    if (std::string_view(subject_.dev->backend_name()) == "sim") {
        if (auto p = sim_probe::peer_of(endpoint); p && p->same_host) {
            slot_->peer_device = p->ep.device;
            slot_->peer_vfid = p->ep.vfid;
            slot_->peer_ctid = p->ep.ctid;
            slot_->peer_start_time = p->ep.start_time;
            std::strncpy(slot_->peer_nic, p->ep.nic_name.c_str(), sizeof(slot_->peer_nic) - 1);
            slot_->peer_pid = p->ep.pid;
        }
    }
    slot_->has_qp.store(1, std::memory_order_release);
    slot_->last_progress_ns.store(monotonic_ns(), std::memory_order_relaxed);
}

uint64_t Watch::refresh() noexcept {
    uint64_t sig = 0;
    for (uint32_t c = 0; c < k_classes; ++c) {
        uint32_t v = 0;
        try {
            v = subject_.dev->completed(subject_.ctid, static_cast<CmplClass>(c));
        } catch (...) {
        }
        slot_->completed[c].store(v, std::memory_order_relaxed);
        sig = sig * 1000003 + v + slot_->posted[c].load(std::memory_order_relaxed) * 7919;
    }
    return sig;
}

void Watch::on_backpressure(bool done) noexcept {
    if (slot_ == nullptr) return;
    slot_->waiting_post.store(done ? 0 : 1, std::memory_order_relaxed);
    if (!done) check(k_no_class, true);
}

void Watch::adapt_period(int64_t now) noexcept {
    uint32_t p = period_.load(std::memory_order_relaxed);
    const int64_t since = now - last_check_ns_.load(std::memory_order_relaxed);
    last_check_ns_.store(now, std::memory_order_relaxed);
    if (since < k_fast_check_ns)
        p = std::min(p * 2, k_check_period);
    else if (since > k_slow_check_ns)
        p = std::max(p / 4, 1U);
    period_.store(p, std::memory_order_relaxed);
    countdown_->set(p);
}

void Watch::check(uint32_t cls, bool posting) noexcept {
    if (warn_ns_ == 0) { // off
        countdown_->set(0);
        return;
    }
    const int64_t now = monotonic_ns();
    const uint32_t period = period_.load(std::memory_order_relaxed);
    // Polls this fast (the longest period within the same clock tick or millisecond): one full check per
    // millisecond is plenty for stalls of seconds; until then the check is this clock read.
    if (!posting && period == k_check_period &&
        now - last_check_ns_.load(std::memory_order_relaxed) < k_fast_check_ns) {
        countdown_->set(period);
        return;
    }
    std::unique_lock lk(check_mtx_, std::try_to_lock);
    if (!lk.owns_lock() || slot_ == nullptr) {
        countdown_->set(period);
        return;
    }
    adapt_period(now);
    slot_->checks.fetch_add(1, std::memory_order_relaxed);
    slot_->last_check_ns.store(now, std::memory_order_relaxed);
    const uint64_t sig = refresh();
    if (!posting) { // the value the poll is about to read (refresh read every counter just now)
        slot_->polled_class.store(cls, std::memory_order_relaxed);
        slot_->polled_value.store(slot_->completed[cls].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    if (sig != last_sig_) {
        last_sig_ = sig;
        slot_->last_progress_ns.store(now, std::memory_order_relaxed);
        next_report_ns_ = warn_ns_;
        return;
    }
    const int64_t stalled = now - slot_->last_progress_ns.load(std::memory_order_relaxed);
    if (stalled < next_report_ns_) return;
    next_report_ns_ = std::min(next_report_ns_ * 2, stalled + k_max_backoff_ns);
    try {
        const Snapshot snap = take_snapshot(*slot_, static_cast<int32_t>(::getpid()));
        // Only a certain cause is reported while the process progresses on another cThread.
        if (!definite_cause(snap) && another_progressed_since(this, now - warn_ns_)) return;
        const std::string cause = likeliest_cause(snap);
        std::strncpy(slot_->cause, cause.c_str(), sizeof(slot_->cause) - 1);
        slot_->diagnoses.fetch_add(1, std::memory_order_relaxed);
        const std::string text = report(snap);
        (void)!::write(STDERR_FILENO, text.data(), text.size());
    } catch (...) {
    }
}

std::string Watch::diagnose() const {
    if (slot_ == nullptr) return {};
    auto* self = const_cast<Watch*>(this);
    {
        std::lock_guard lk(self->check_mtx_);
        (void)self->refresh();
    }
    Snapshot snap = take_snapshot(*slot_, static_cast<int32_t>(::getpid()));
    snap.on_demand = true;
    return report(snap);
}

}  // namespace coyote::detail::diag
