// coyote-mpi diagnostics: creating, filling and reading the per-process status segments.
#include "diag/status.hpp"

#include <dirent.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <new>

#include "backend/sim/segments.hpp"

namespace coyote::detail::diag {

namespace {

/// A segment of an ancestor process that a forked child keeps mapped (slots inherited from the parent may still
/// point into it) but never unlinks: the name is the parent's. Chained from Own, so it stays reachable until exit.
struct Inherited {
    ShmSegment seg;
    Inherited* older = nullptr;
};

/// This process's segment: created on first use, kept until exit (then unlinked by the segment tracker).
struct Own {
    std::mutex mtx;
    pid_t pid = 0;
    ShmSegment seg;
    StatusSegment* status = nullptr;
    Inherited* inherited = nullptr; // never destroyed, like Own itself
};

Own& own() {
    static auto* o = new Own(); // never destroyed: slots may be released from static destructors
    return *o;
}

std::string segment_name(int32_t pid) {
    return "/coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + ".diag";
}

/// Creates the segment of this process (mutex held). A forked child gets its own.
StatusSegment* own_segment(Own& o) noexcept {
    if (o.pid == ::getpid()) return o.status; // null when creating it failed
    if (o.seg) { // a forked child: the parent's name is not ours to unlink
        auto* kept = new (std::nothrow) Inherited{std::move(o.seg), o.inherited};
        if (kept == nullptr) return nullptr; // keep the parent's segment in o.seg; no status for this child
        o.inherited = kept;
    }
    o.status = nullptr;
    o.pid = ::getpid();
    try {
        const std::string name = segment_name(o.pid);
        ::shm_unlink(name.c_str()); // a leftover of a dead process that had our pid
        ShmSegment seg = ShmSegment::create(name, sizeof(StatusSegment));
        sim::track_segment(name);
        auto* s = new (seg.get()) StatusSegment();
        s->version = k_status_version;
        s->pid = o.pid;
        s->start_time = sim::process_start_time(o.pid);
        s->uid = ::getuid();
        std::atomic_thread_fence(std::memory_order_release);
        s->magic = k_status_magic;
        o.seg = std::move(seg);
        o.status = s;
    } catch (...) {
    }
    return o.status;
}

}  // namespace

int64_t monotonic_ns() noexcept {
    // The coarse clock (timer-tick resolution, a few ms, plenty for stalls of seconds) never reads the clock
    // hardware: on VMs whose clocksource is not the TSC a precise read is a system call of about a microsecond.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

StatusSlot* acquire_slot(uint32_t device, int32_t vfid, int32_t ctid, const char* backend) noexcept {
    Own& o = own();
    std::lock_guard lk(o.mtx);
    StatusSegment* s = own_segment(o);
    if (s == nullptr) return nullptr;
    for (uint32_t i = 0; i < k_max_slots; ++i) {
        StatusSlot& slot = s->slots[i];
        if (slot.in_use.load(std::memory_order_relaxed) != 0) continue;
        slot.~StatusSlot();
        auto* fresh = new (&slot) StatusSlot();
        fresh->device = device;
        fresh->vfid = vfid;
        fresh->ctid = ctid;
        std::strncpy(fresh->backend, backend, sizeof(fresh->backend) - 1);
        const int64_t now = monotonic_ns();
        fresh->last_progress_ns.store(now, std::memory_order_relaxed);
        fresh->opened_ns.store(now, std::memory_order_relaxed);
        fresh->last_check_ns.store(now, std::memory_order_relaxed);
        fresh->in_use.store(1, std::memory_order_release);
        if (i + 1 > s->slots_used) s->slots_used = i + 1;
        return fresh;
    }
    return nullptr;
}

void release_slot(StatusSlot* slot) noexcept {
    if (slot == nullptr) return;
    std::lock_guard lk(own().mtx);
    slot->in_use.store(0, std::memory_order_release);
}

std::optional<ProcessStatus> open_process(int32_t pid) noexcept {
    try {
        ProcessStatus p;
        p.seg = ShmSegment::open(segment_name(pid));
        if (p.seg.size() < sizeof(StatusSegment)) return std::nullopt;
        const auto* s = static_cast<const StatusSegment*>(p.seg.get());
        if (s->magic != k_status_magic || s->version != k_status_version || s->pid != pid) return std::nullopt;
        p.pid = pid;
        p.start_time = s->start_time;
        p.alive = sim::process_alive(pid, s->start_time);
        for (uint32_t i = 0; i < k_max_slots && i < s->slots_used; ++i)
            if (s->slots[i].in_use.load(std::memory_order_acquire) != 0) p.slots.emplace_back(i, &s->slots[i]);
        return p;
    } catch (...) {
        return std::nullopt;
    }
}

std::vector<ProcessStatus> open_all() noexcept {
    std::vector<ProcessStatus> out;
    const std::string prefix = "coyote-sim." + std::to_string(::getuid()) + ".";
    DIR* d = ::opendir("/dev/shm");
    if (d == nullptr) return out;
    while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n.rfind(prefix, 0) != 0 || n.size() < 5 || n.compare(n.size() - 5, 5, ".diag") != 0) continue;
        const std::string pid_text = n.substr(prefix.size(), n.size() - 5 - prefix.size());
        if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
        if (auto p = open_process(std::stoi(pid_text))) out.push_back(std::move(*p));
    }
    ::closedir(d);
    return out;
}

const char* class_name(uint32_t cls) noexcept {
    static const char* const names[k_classes] = {"LOCAL_READ", "LOCAL_WRITE", "RDMA_READ", "RDMA_WRITE"};
    return cls < k_classes ? names[cls] : "none";
}

}  // namespace coyote::detail::diag
