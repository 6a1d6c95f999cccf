// coyote-mpi: the per-user vFPGA lock (a named semaphore, owner-only) that the last holder removes.
#pragma once

#include <boost/interprocess/sync/named_mutex.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "detail/handles.hpp"

namespace coyote::detail {

/// The lock of one (user, device, vFPGA): /dev/shm/sem.coyote_vlock_u<uid>_d<dev>_v<vfid>, mode 0600. Every
/// holder also keeps a shared flock on /dev/shm/coyote_vlock_u<uid>_d<dev>_v<vfid>.holders; the one that can
/// turn it exclusive when it closes is the last and removes both, so nothing stays in /dev/shm (a semaphore
/// left locked by a dead holder goes with the next holder's teardown).
class VfpgaLock {
public:
    /// Opens (or creates) the lock of `device`/`vfid` for this user; a coyote::Error names it on failure.
    VfpgaLock(uint32_t device, int32_t vfid);
    ~VfpgaLock();
    VfpgaLock(const VfpgaLock&) = delete;
    VfpgaLock& operator=(const VfpgaLock&) = delete;

    /// The semaphore's name (without /dev/shm/sem.).
    const std::string& name() const noexcept { return name_; }
    /// Takes the lock if it is free (never waits).
    bool try_lock();
    /// Takes the lock, waiting at most `timeout`; false when it stayed taken. A lock whose recorded holder died
    /// holding it (a kill, a crash) is released by the waiter that finds it so.
    bool timed_lock(std::chrono::milliseconds timeout);
    /// Releases the lock.
    void unlock();
    /// The process that holds the lock as it recorded itself in the holders file (pid 0: none recorded).
    struct Holder {
        int32_t pid = 0;
        uint64_t start_time = 0;
    };
    Holder holder() const noexcept;
    /// Who holds the lock, in one line for a waiter ("the lock is held by pid 42 (alive) ..."); never throws.
    std::string why_taken() const noexcept;

private:
    /// Opens (or creates, owner-only) the named semaphore.
    void open_semaphore();
    void record_holder(bool held) noexcept;
    /// Releases the lock when its recorded holder is a process that exited; true if it did.
    bool release_dead_holder() noexcept;

    std::string name_;
    std::string holders_;
    Fd holders_fd_;
    std::unique_ptr<boost::interprocess::named_mutex> mutex_;
};

}  // namespace coyote::detail
