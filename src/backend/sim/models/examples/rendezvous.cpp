// coyote-mpi sim backend: the host-wide rendezvous of a device's packet sniffer: its record, the publisher's claim
// (an flock held while it captures) and the NICs' periodic read of it.
#include "backend/sim/models/examples/rendezvous.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <utility>

#include <coyote/error.hpp>

#include "backend/sim/models/examples/packet_tap.hpp"
#include "backend/sim/segments.hpp"

namespace coyote::detail::sim::sniffer {

namespace {

constexpr uint64_t k_record_magic = 0x5a56445246464e53ULL; // "SNFFRDVZ"
constexpr uint32_t k_record_version = 1;
/// How often a claim opens the name afresh when the file it locked was removed meanwhile.
constexpr int k_claim_attempts = 16;

uint64_t record_hash(const RendezvousRecord& r) noexcept {
    unsigned char bytes[offsetof(RendezvousRecord, check)];
    std::memcpy(bytes, &r, sizeof bytes);
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/// The record in the rendezvous segment `fd`; an invalid (zero) record when the file is not exactly one record.
RendezvousRecord read_record(int fd) noexcept {
    RendezvousRecord r{};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid() ||
        st.st_size != static_cast<off_t>(sizeof r))
        return {};
    if (::pread(fd, &r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) return {};
    return r;
}

/// The record in the rendezvous of `device`, or an invalid one when there is none.
RendezvousRecord read_rendezvous(uint32_t device) {
    // O_NONBLOCK: a FIFO put at the name (by anyone) must not block the NIC; it is then no regular file.
    const Fd fd(::shm_open(rendezvous_name(device).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0));
    return fd ? read_record(fd.get()) : RendezvousRecord{};
}

/// The descriptors of this process that hold a rendezvous lock. A forked child shares their open files, and with
/// them the locks: it swaps its copies for /dev/null at once, so that a lock never outlives the process that took
/// it. Lock-free (the fork handler runs in the child, where another thread may have held any lock).
class HeldLocks {
public:
    static HeldLocks& get() {
        static HeldLocks* const held = [] {
            auto* h = new HeldLocks(); // never destroyed: the fork handler uses it
            (void)::pthread_atfork(nullptr, nullptr, [] { get().drop_in_child(); });
            return h;
        }();
        return *held;
    }
    /// Remembers `fd`; its slot, or -1 when the table is full (a forked child then keeps that lock while it keeps
    /// its copy of the descriptor).
    int add(int fd) noexcept {
        for (std::size_t i = 0; i < fds_.size(); ++i) {
            int free = -1;
            if (fds_[i].compare_exchange_strong(free, fd)) return static_cast<int>(i);
        }
        return -1;
    }
    void remove(int slot) noexcept {
        if (slot >= 0) fds_[static_cast<std::size_t>(slot)].store(-1);
    }

private:
    HeldLocks() {
        for (auto& f : fds_) f.store(-1);
    }
    void drop_in_child() noexcept {
        const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (auto& f : fds_) {
            const int fd = f.exchange(-1);
            if (fd >= 0 && null >= 0) (void)::dup3(null, fd, O_CLOEXEC); // the descriptor stays valid, the lock goes
        }
        if (null >= 0) ::close(null);
    }

    std::array<std::atomic<int>, 16> fds_;
};

/// The user's announcement segment: one counter per device slot (devices share a slot modulo k_slots: a change of
/// one then makes the NICs of the others re-read too, which is harmless).
constexpr uint32_t k_slots = 64;
struct alignas(64) Slot {
    std::atomic<uint64_t> counter;
};
static_assert(sizeof(Slot) == 64 && std::atomic<uint64_t>::is_always_lock_free);

/// Maps the announcement segment `name` (creating it); null when it cannot be used.
Slot* map_announcements(const std::string& name) noexcept {
    try {
        // Created here: 0600 whatever the umask; else the existing one, checked below.
        Fd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC, 0600));
        if (fd && ::fchmod(fd.get(), 0600) != 0) return nullptr;
        if (!fd && errno == EEXIST) fd = Fd(::shm_open(name.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0));
        if (!fd) return nullptr;
        struct stat st {};
        // Another user's file at the name is never used (nor is anything but a private regular file).
        if (::fstat(fd.get(), &st) != 0) return nullptr;
        if (st.st_uid != ::getuid() || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
            std::fprintf(stderr,
                         "coyote sim: /dev/shm%s is not used (owner uid %u, mode %04o%s): the NICs re-read the packet "
                         "sniffer rendezvous every %lld ms instead\n",
                         name.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_mode & 07777),
                         S_ISREG(st.st_mode) ? "" : ", not a regular file",
                         static_cast<long long>(k_watch_period.count()));
            return nullptr;
        }
        constexpr off_t size = k_slots * sizeof(Slot);
        if (st.st_size < size && ::ftruncate(fd.get(), size) != 0) return nullptr; // zeros: every counter at 0
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        return p == MAP_FAILED ? nullptr : static_cast<Slot*>(p); // kept for the process's life
    } catch (...) {
        return nullptr;
    }
}

/// Writes `r` as the whole content of the rendezvous `fd`.
void write_record(int fd, const RendezvousRecord& r, const std::string& name) {
    if (::fchmod(fd, 0600) != 0) throw_errno("fchmod", "packet_sniffer: the rendezvous " + name);
    if (::ftruncate(fd, sizeof r) != 0) throw_errno("ftruncate", "packet_sniffer: the rendezvous " + name);
    if (::pwrite(fd, &r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
        throw_errno("pwrite", "packet_sniffer: the rendezvous " + name);
}

}  // namespace

std::string rendezvous_name(uint32_t device) {
    return "/coyote-sim." + std::to_string(::getuid()) + ".sniffer.d" + std::to_string(device);
}

std::atomic<uint64_t>* open_announcements(const std::string& name) noexcept {
    Slot* slots = map_announcements(name);
    return slots == nullptr ? nullptr : &slots[0].counter;
}

std::atomic<uint64_t>* announcement(uint32_t device) noexcept {
    static Slot* const slots = [] {
        try {
            return map_announcements("/coyote-sim." + std::to_string(::getuid()) + ".sniffers");
        } catch (...) { // the name: out of memory
            return static_cast<Slot*>(nullptr);
        }
    }();
    return slots == nullptr ? nullptr : &slots[device % k_slots].counter;
}

void announce(uint32_t device) noexcept {
    if (std::atomic<uint64_t>* c = announcement(device)) c->fetch_add(1, std::memory_order_acq_rel);
}

RendezvousRecord make_record(int32_t pid, uint64_t start_time, uint64_t id) noexcept {
    RendezvousRecord r{};
    r.magic = k_record_magic;
    r.version = k_record_version;
    r.pid = pid;
    r.start_time = start_time;
    r.id = id;
    r.check = record_hash(r);
    return r;
}

bool record_valid(const RendezvousRecord& r) noexcept {
    return r.magic == k_record_magic && r.version == k_record_version && r.check == record_hash(r) && r.pid > 0 &&
           r.start_time != 0 && r.id != 0 && r.id <= 0xffffffffULL;
}

// ---- the publisher ------------------------------------------------------------------------------------------

std::optional<Publication> Publication::claim(uint32_t device, uint64_t id, RendezvousRecord& holder) {
    const std::string name = rendezvous_name(device);
    const RendezvousRecord mine = make_record(::getpid(), process_start_time(::getpid()), id);
    for (int attempt = 0; attempt < k_claim_attempts; ++attempt) {
        Fd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600));
        if (!fd) throw_errno("shm_open", "packet_sniffer: the rendezvous " + name);
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", "packet_sniffer: the rendezvous " + name);
        if (st.st_uid != ::getuid() || !S_ISREG(st.st_mode))
            throw_error(Errc::invalid_argument, "packet_sniffer",
                        "the rendezvous /dev/shm" + name + " is not a segment of this user (owner uid " +
                            std::to_string(st.st_uid) + (S_ISREG(st.st_mode) ? "" : ", not a regular file") +
                            "); remove it");
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EINTR) continue;
            if (errno != EWOULDBLOCK) throw_errno("flock", "packet_sniffer: the rendezvous " + name);
            holder = read_record(fd.get()); // a live process holds it (the lock goes with its holder)
            return std::nullopt;
        }
        if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", "packet_sniffer: the rendezvous " + name);
        if (st.st_nlink == 0) continue; // its holder removed it while this one waited: the name is free again
        // Free: a record left here names a process that ended (or is malformed); this one replaces it.
        write_record(fd.get(), mine, name);
        track_segment(name); // a normal exit removes it
        announce(device);
        return Publication(std::move(fd), name, device);
    }
    throw_error(Errc::resource_exhausted, "packet_sniffer",
                "the rendezvous " + name + " was removed under this sniffer " + std::to_string(k_claim_attempts) +
                    " times in a row");
}

Publication::Publication(Fd fd, std::string name, uint32_t device) noexcept
    : fd_(std::move(fd)), name_(std::move(name)), device_(device), owner_(::getpid()),
      slot_(HeldLocks::get().add(fd_.get())) {}

Publication::Publication(Publication&& o) noexcept
    : fd_(std::move(o.fd_)), name_(std::move(o.name_)), device_(o.device_), owner_(std::exchange(o.owner_, 0)),
      slot_(std::exchange(o.slot_, -1)) {}

Publication& Publication::operator=(Publication&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = std::move(o.fd_);
        name_ = std::move(o.name_);
        device_ = o.device_;
        owner_ = std::exchange(o.owner_, 0);
        slot_ = std::exchange(o.slot_, -1);
    }
    return *this;
}

void Publication::update(uint64_t id) noexcept {
    if (!fd_ || owner_ != ::getpid()) return;
    const RendezvousRecord r = make_record(::getpid(), process_start_time(::getpid()), id);
    try {
        write_record(fd_.get(), r, name_);
    } catch (...) {
        (void)::ftruncate(fd_.get(), 0); // no record rather than the previous sniffer's
    }
    announce(device_);
}

void Publication::release() noexcept {
    if (!fd_) return;
    if (owner_ == ::getpid()) {
        (void)::ftruncate(fd_.get(), 0); // readers see no sniffer from now on
        struct stat st {};
        // Removed before the lock goes, so that a claimer waiting on this file opens the name afresh.
        if (::fstat(fd_.get(), &st) == 0 && st.st_nlink > 0) ::shm_unlink(name_.c_str());
        untrack_segment(name_);
        announce(device_);
    }
    HeldLocks::get().remove(slot_);
    slot_ = -1;
    fd_.reset();
}

// ---- the NICs' view -------------------------------------------------------------------------------------------

void Watch::overdue(int64_t now, int64_t due) noexcept {
    if (waker_ != nullptr && now - due < std::chrono::nanoseconds(k_watch_inline_after).count()) {
        if (!asked_.exchange(true, std::memory_order_relaxed)) waker_(waker_ctx_);
        return;
    }
    refresh(now);
}

void Watch::refresh(int64_t now) noexcept {
    std::unique_lock lk(mtx_, std::try_to_lock);
    if (!lk.owns_lock() || now < next_ns_.load(std::memory_order_relaxed)) return; // another thread refreshes
    // Read before the rendezvous: a change announced meanwhile makes the next packet re-read it again.
    if (announced_ != nullptr) seen_.store(announced_->load(std::memory_order_acquire), std::memory_order_relaxed);
    uint64_t word = 0;
    try {
        const RendezvousRecord r = read_rendezvous(device_);
        if (record_valid(r) && publisher_alive(r)) word = (uint64_t{static_cast<uint32_t>(r.pid)} << 32) | r.id;
    } catch (...) {
        // Out of memory (the name): no sniffer until the next read.
    }
    const uint64_t old = word_.exchange(word, std::memory_order_acq_rel);
    if (old != 0 && old != word && cache_ != nullptr)
        cache_->release({static_cast<int32_t>(old >> 32), old & 0xffffffffULL}); // its publication ended
    const auto period = word != 0 || announced_ == nullptr ? std::chrono::nanoseconds(k_watch_period)
                                                            : std::chrono::nanoseconds(k_watch_idle_period);
    last_read_ns_.store(now, std::memory_order_relaxed);
    next_ns_.store(now + period.count(), std::memory_order_relaxed);
    asked_.store(false, std::memory_order_relaxed);
}

bool Watch::publisher_alive(const RendezvousRecord& r) noexcept {
    if (pidfd_ && r.pid == pid_ && r.start_time == start_time_) return !process_exited(pidfd_);
    pid_ = r.pid;
    start_time_ = r.start_time;
    pidfd_ = open_process_fd(r.pid, r.start_time); // checks the start time: a reused pid is not the publisher
    return pidfd_ ? true : process_alive(r.pid, r.start_time);
}

}  // namespace coyote::detail::sim::sniffer
