// coyote-mpi diagnostics: the watchdog of blocking waits (registry, one thread per process, reports with back-off).
#include "diag/wait.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include "detail/per_process.hpp"
#include "diag/stall.hpp"

namespace coyote::detail::diag {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto k_max_backoff = std::chrono::seconds(300);

struct Entry {
    std::string call, what, cause;
    WaitWatch::Probe probe;
    Clock::time_point since;
    std::time_t since_wall = 0;
    Clock::duration next; ///< report when the wait is this old
};

/// Every watched wait of this process and the watchdog thread that reports them.
struct Waits {
    std::mutex mtx;
    std::condition_variable cv;
    std::map<uint64_t, Entry> entries;
    uint64_t next_id = 1;
    pid_t thread_pid = 0; ///< the process whose watchdog thread runs
    /// When the watchdog wakes next: a new wait due later needs no wake-up (waits come and go at every connSync,
    /// and a wake-up per wait would take the waiting rank's core from it for nothing).
    Clock::time_point wake_at = Clock::time_point::max();
    /// How long the idle watchdog sleeps: the warning period of the latest wait, read by its thread (the watchdog
    /// never reads the setting itself: it may run during static destruction, and a malformed value must be the
    /// waiting thread's error, not a throw in a detached thread).
    Clock::duration idle = std::chrono::hours(1);
};

/// The registry of this process (fresh in a forked child: the parent's waits are not the child's).
Waits& waits() { return PerProcess<Waits>::get(); }

/// The report of entry `e` (waits().mtx held; runs the probe).
std::string report_of(Entry& e, Clock::time_point now, bool on_demand) {
    if (e.probe) {
        try {
            if (std::string c = e.probe(); !c.empty()) e.cause = std::move(c);
        } catch (...) {
        }
    }
    char since[32] = "?";
    std::tm tm{};
    if (::localtime_r(&e.since_wall, &tm) != nullptr) std::strftime(since, sizeof since, "%H:%M:%S", &tm);
    const double waited = std::chrono::duration<double>(now - e.since).count();
    char head[160];
    std::snprintf(head, sizeof head, "coyote stall doctor [pid %d wait]", static_cast<int>(::getpid()));
    char line[96];
    std::snprintf(line, sizeof line, ": %s%.1f s (since %s) in ", on_demand ? "on demand; waiting " : "waiting ",
                  waited, since);
    return std::string(head) + line + e.call + " for " + e.what + "\n" + head + ":   likeliest cause: " + e.cause +
           "\n";
}

void watchdog(Waits& w) {
    (void)::pthread_setname_np(::pthread_self(), "coyote-watchdog");
    std::unique_lock lk(w.mtx);
    for (;;) {
        const auto now = Clock::now();
        // Idle, it looks again one warning period on: a wait that starts meanwhile is due no earlier.
        auto wake = now + w.idle;
        std::string out;
        for (auto& [id, e] : w.entries) {
            if (now - e.since >= e.next) {
                out += report_of(e, now, false);
                e.next = std::min(e.next * 2, (now - e.since) + Clock::duration(k_max_backoff));
            }
            wake = std::min(wake, e.since + e.next);
        }
        if (!out.empty()) (void)!::write(STDERR_FILENO, out.data(), out.size());
        w.wake_at = wake;
        w.cv.wait_until(lk, wake);
    }
}

}  // namespace

WaitWatch::WaitWatch(std::string call, std::string what, std::string cause, Probe probe) {
    const auto warn = stall_warn_after();
    if (warn.count() == 0) return;
    Waits& w = waits();
    std::lock_guard lk(w.mtx);
    id_ = w.next_id++;
    const auto first = std::chrono::duration_cast<Clock::duration>(warn);
    const auto now = Clock::now();
    w.idle = first;
    w.entries.emplace(id_, Entry{std::move(call), std::move(what), std::move(cause), std::move(probe), now,
                                 std::time(nullptr), first});
    if (w.thread_pid == 0) {
        w.thread_pid = ::getpid();
        try {
            std::thread([&w] { watchdog(w); }).detach();
        } catch (...) { // no thread: the wait goes unwatched, as with the doctor off
            w.thread_pid = 0;
        }
        return; // the new thread looks at the entries before it first sleeps
    }
    if (now + first < w.wake_at) w.cv.notify_all();
}

WaitWatch::~WaitWatch() {
    if (id_ == 0) return;
    Waits& w = waits();
    std::lock_guard lk(w.mtx);
    w.entries.erase(id_);
}

void WaitWatch::set_cause(std::string cause) {
    if (id_ == 0) return;
    Waits& w = waits();
    std::lock_guard lk(w.mtx);
    if (auto it = w.entries.find(id_); it != w.entries.end()) it->second.cause = std::move(cause);
}

std::string describe_waits() {
    Waits& w = waits();
    std::lock_guard lk(w.mtx);
    std::string out;
    const auto now = Clock::now();
    for (auto& [id, e] : w.entries) out += report_of(e, now, true);
    return out;
}

}  // namespace coyote::detail::diag
