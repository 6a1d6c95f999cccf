// coyote-mpi sim backend: the host-wide rendezvous of the packet sniffer of a device (see packet_tap.hpp). The
// sniffer capturing sim device N publishes its process (pid and start time) and the id of its capture buffer in the
// POSIX shm segment "/coyote-sim.<uid>.sniffer.d<N>" (mode 0600) while it captures; the NICs of device N in every
// process of the user read it at most every k_watch_period and append their frames to that buffer. The publisher
// holds an flock on the segment: a second process finds it taken, and a crashed publisher's lock ends with it (its
// record stays and names a dead process, which readers ignore and the next publisher overwrites).
//
// Every change of a rendezvous is announced: its publisher increments the device's counter in the user's
// announcement segment "/coyote-sim.<uid>.sniffers" (mode 0600, created by the first process that needs it and kept:
// a page of counters, one cache line per device slot), which every process maps once. A NIC re-reads the rendezvous
// within k_watch_period of an announced change, else only every k_watch_idle_period while no sniffer is published (a
// safety net for a rendezvous changed by a program that does not announce it), or every k_watch_period while one is
// (its process may end). Without the announcement segment (another user's file at the name) it re-reads every
// k_watch_period, as it did before announcements.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "backend/sim/clock.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim::sniffer {

class TapCache;

/// "/coyote-sim.<uid>.sniffer.d<device>" (no pid after the uid: stale-segment reclaiming leaves it alone).
std::string rendezvous_name(uint32_t device);

/// The content of a rendezvous segment (exactly this size; anything else reads as no sniffer).
struct RendezvousRecord {
    uint64_t magic = 0;
    uint32_t version = 0;
    int32_t pid = 0;         ///< the publishing process
    uint64_t start_time = 0; ///< its start time (segments.hpp process_start_time): a reused pid is not it
    uint64_t id = 0;         ///< its capture buffer (capture_ring.hpp ring_name(pid, id)); 1 .. 2^32 - 1
    uint64_t check = 0;      ///< hash of the fields above: a torn or damaged record reads as no sniffer
};
static_assert(sizeof(RendezvousRecord) == 40, "the record's layout is shared by every process of the user");

/// A record of process `pid` started at `start_time` publishing capture buffer `id`, with its check.
RendezvousRecord make_record(int32_t pid, uint64_t start_time, uint64_t id) noexcept;
/// Whether `r` is well formed: magic, version, check, a positive pid, a start time and an id that fits 32 bits.
bool record_valid(const RendezvousRecord& r) noexcept;

/// Where a NIC's frames go: capture buffer `id` of process `pid` (id 0: nowhere).
struct Target {
    int32_t pid = 0;
    uint64_t id = 0;
    explicit operator bool() const noexcept { return id != 0; }
};

/// A publication in the rendezvous of a device, held while it lives: the flock on the segment and the record. The
/// destructor empties and removes the segment. Move-only. A forked child does not inherit the lock.
class Publication {
public:
    /// Publishes capture buffer `id` of this process for `device`. nullopt when a live process holds the
    /// rendezvous (`holder`: its record, as far as it reads); throws coyote::Error when the segment cannot be
    /// created or belongs to another user.
    static std::optional<Publication> claim(uint32_t device, uint64_t id, RendezvousRecord& holder);

    Publication(Publication&& o) noexcept;
    Publication& operator=(Publication&& o) noexcept;
    Publication(const Publication&) = delete;
    Publication& operator=(const Publication&) = delete;
    ~Publication() { release(); }

    /// Publishes capture buffer `id` instead (another sniffer of this process takes the device over).
    void update(uint64_t id) noexcept;

private:
    Publication(Fd fd, std::string name, uint32_t device) noexcept;
    void release() noexcept;

    Fd fd_;
    std::string name_;
    uint32_t device_ = 0;
    pid_t owner_ = 0; ///< the claiming process (a forked child's copy does nothing)
    int slot_ = -1;   ///< its entry in the table of locked descriptors a forked child drops
};

/// How often a NIC re-reads the rendezvous while it moves packets and a sniffer is published (or announcements are
/// not available): a sniffer another process starts (or stops, or whose process ends) is seen within this period.
inline constexpr std::chrono::milliseconds k_watch_period{4};
/// How often it re-reads it while no sniffer is published and its device's announcement counter stays: each re-read
/// wakes the vFPGA's worker, which takes the core of the polling thread for a moment.
inline constexpr std::chrono::milliseconds k_watch_idle_period{1000};

/// The announcement counter of `device` in this user's announcement segment (mapped once per process, created if
/// needed), or null when it cannot be had (the name holds another user's file, or /dev/shm refuses it).
std::atomic<uint64_t>* announcement(uint32_t device) noexcept;
/// Maps the announcement segment `name` ("/..."), creating it (mode 0600, its counters at 0) when it does not exist:
/// its first counter (kept mapped for the process's life), or null with a line on stderr when the name holds
/// anything but a private regular file of this user. announcement() uses "/coyote-sim.<uid>.sniffers".
std::atomic<uint64_t>* open_announcements(const std::string& name) noexcept;
/// Tells every NIC of `device` that its rendezvous changed: they re-read it within k_watch_period.
void announce(uint32_t device) noexcept;

/// How long a NIC's packets leave a due re-read of the rendezvous to the thread that keeps its view fresh (see
/// Watch) before one of them reads it itself: a read looks up a name in /dev/shm, which takes the directory's lock
/// when the name does not exist (tmpfs keeps no negative entries) and then sleeps for milliseconds whenever other
/// processes create or remove files there. The posting thread reads it only when that thread did not come.
inline constexpr std::chrono::milliseconds k_watch_inline_after{16};

/// A NIC's view of the rendezvous of one device: the publisher's Target, re-read at most every k_watch_period. With
/// a waker, a due re-read asks a thread off the data path (the device's worker) to make it through refresh_if_due,
/// and the packets keep the current view meanwhile; without one, or once that thread is k_watch_inline_after late,
/// the packet's thread re-reads it. Between two reads a packet costs one clock read and a comparison. Thread-safe.
class Watch {
public:
    /// Asks the keeping thread to call refresh_if_due soon; never blocks.
    using Waker = void (*)(void* ctx) noexcept;

    /// `cache`: the TapCache that maps the publisher's buffer, told to let go of it when the publication ends.
    Watch(uint32_t device, TapCache* cache, Waker waker = nullptr, void* waker_ctx = nullptr) noexcept
        : device_(device), cache_(cache), waker_(waker), waker_ctx_(waker_ctx), announced_(announcement(device)) {}

    /// The live publisher's buffer, or none. `now`: coarse_now_ns().
    Target target(int64_t now) noexcept {
        int64_t due = next_ns_.load(std::memory_order_relaxed);
        const bool changed = announced_ != nullptr &&
                             announced_->load(std::memory_order_acquire) != seen_.load(std::memory_order_relaxed);
        if (changed) [[unlikely]] {
            // A change was announced: due k_watch_period after the last re-read, as without announcements (long
            // past after an idle spell: then the packet re-reads it itself, see overdue).
            const int64_t soon = last_read_ns_.load(std::memory_order_relaxed) +
                                 std::chrono::nanoseconds(k_watch_period).count();
            if (soon < due) {
                next_ns_.store(soon, std::memory_order_relaxed);
                due = soon;
            }
        }
        if (now >= due) [[unlikely]]
            overdue(now, due);
        const uint64_t w = word_.load(std::memory_order_acquire);
        return {static_cast<int32_t>(w >> 32), w & 0xffffffffULL};
    }

    /// Re-reads the rendezvous when due: the keeping thread's call.
    void refresh_if_due(int64_t now) noexcept {
        if (now >= next_ns_.load(std::memory_order_relaxed)) refresh(now);
    }

private:
    /// A packet found the re-read due since `due`: asks the keeping thread, or re-reads.
    void overdue(int64_t now, int64_t due) noexcept;
    /// Re-reads the rendezvous (one thread at a time; the others keep the word as it is).
    void refresh(int64_t now) noexcept;
    /// Whether the process of `r` runs (its pidfd is kept while it stays the publisher).
    bool publisher_alive(const RendezvousRecord& r) noexcept;

    const uint32_t device_;
    TapCache* const cache_;
    std::atomic<int64_t> next_ns_{0};
    std::atomic<uint64_t> word_{0}; ///< pid << 32 | id; 0: none
    const Waker waker_;
    void* const waker_ctx_;
    std::atomic<bool> asked_{false}; ///< the keeping thread was asked since the last re-read
    std::atomic<uint64_t>* const announced_; ///< the device's announcement counter (null: none)
    std::atomic<uint64_t> seen_{0};          ///< its value before the last re-read
    std::atomic<int64_t> last_read_ns_{0};   ///< when the last re-read was made
    std::mutex mtx_;                ///< the refresh and the fields below
    int32_t pid_ = 0;
    uint64_t start_time_ = 0;
    Fd pidfd_; ///< of pid_ (started at start_time_); invalid: checked through /proc each time
};

/// Where the frames of a NIC go: the sniffer of the NIC's own process, whose capture buffer id is in the NIC's sniff
/// word `sniff` (`pid`: that process), else the one `rendezvous` sees published for the NIC's device.
inline Target tap_target(const std::atomic<uint64_t>& sniff, int32_t pid, Watch& rendezvous, int64_t now) noexcept {
    if (const uint64_t id = sniff.load(std::memory_order_acquire); id != 0) [[unlikely]]
        return {pid, id};
    return rendezvous.target(now);
}

}  // namespace coyote::detail::sim::sniffer
