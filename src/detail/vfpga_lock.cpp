// coyote-mpi: the per-user vFPGA lock: owner-only named semaphore, holders counted with flock, last one removes.
#include "detail/vfpga_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>

#include "backend/sim/segments.hpp"

#include <coyote/error.hpp>

namespace coyote::detail {

namespace {

namespace bip = boost::interprocess;

/// Opens `path` with a shared flock, retrying when a last holder removed the file meanwhile.
Fd open_holders(const std::string& path, const std::string& name) {
    for (;;) {
        // Owner-only, never a link, a FIFO or another user's file (who could hold its flock forever).
        Fd fd = open_own_file(path, "cThread: the holders file of the vFPGA lock " + name);
        while (::flock(fd.get(), LOCK_SH) != 0)
            if (errno != EINTR) throw_errno("flock", "cThread: " + path);
        struct stat held {}, now {};
        if (::fstat(fd.get(), &held) != 0) throw_errno("fstat", "cThread: " + path);
        // Still the file at `path` (a last holder may have unlinked it while we waited): it is ours.
        if (::stat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev) return fd;
    }
}

/// Refuses the lock when the semaphore file at `path` is not a regular file of this user; a missing file is fine
/// before it is opened (open_or_create makes it, owner-only), not after (it was removed under us).
void check_semaphore_owner(const std::string& path, bool opened) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT && !opened) return;
        if (errno == ENOENT)
            throw_error(Errc::invalid_argument, "cThread",
                        "the vFPGA lock " + path + " was removed while it was opened (by its owner?); retry");
        throw_errno("lstat", "cThread: the vFPGA lock " + path);
    }
    if (st.st_uid != ::geteuid() || !S_ISREG(st.st_mode))
        throw_error(Errc::invalid_argument, "cThread",
                    "refusing the vFPGA lock " + path + ": " +
                        (st.st_uid != ::geteuid() ? "it belongs to uid " + std::to_string(st.st_uid) + ", not to this user"
                                                  : std::string("it is not a regular file")) +
                        "; remove it");
}

}  // namespace

VfpgaLock::VfpgaLock(uint32_t device, int32_t vfid)
    : name_("coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(device) + "_v" +
            std::to_string(vfid)),
      holders_("/dev/shm/" + name_ + ".holders") {
    holders_fd_ = open_holders(holders_, name_);
    // The semaphore opens by name: one another user put there (mode 0666) would let him hold the vFPGA or post it
    // to let two holders in. Its owner is checked before it is opened, and again after: one he put there between
    // the two, or removed after we opened it, shows then (a file of ours in the sticky /dev/shm stays ours).
    const std::string sem_path = "/dev/shm/sem." + name_;
    try {
        check_semaphore_owner(sem_path, false);
        open_semaphore();
        check_semaphore_owner(sem_path, true);
    } catch (...) {
        mutex_.reset();
        // The holders file we may have created goes too, unless another holder uses it.
        if (::flock(holders_fd_.get(), LOCK_EX | LOCK_NB) == 0) (void)::unlink(holders_.c_str());
        throw;
    }
}

void VfpgaLock::open_semaphore() {
    try {
        bip::permissions owner_only(0600);
        mutex_ = std::make_unique<bip::named_mutex>(bip::open_or_create, name_.c_str(), owner_only);
    } catch (const bip::interprocess_exception& e) {
        const int err = e.get_native_error();
        const char* hint = err == EMFILE || err == ENFILE
                               ? " (the process or the system is out of file descriptors: raise ulimit -n)"
                           : err == EACCES || err == EPERM
                               ? " (a lock of that name left by another user: remove it and retry)"
                               : " (a stale lock or a full /dev/shm: remove it, or free space, and retry)";
        throw_error(Errc::resource_exhausted, "cThread",
                    "cannot open the vFPGA lock /dev/shm/sem." + name_ + ": " + e.what() + hint);
    }
}

VfpgaLock::~VfpgaLock() {
    mutex_.reset();
    // The last holder (no other shared flock) removes the semaphore and the holders file.
    if (::flock(holders_fd_.get(), LOCK_EX | LOCK_NB) == 0) {
        (void)bip::named_mutex::remove(name_.c_str());
        (void)::unlink(holders_.c_str());
    }
}

// The holder's record: "<pid> <start time>" at the start of the holders file, spaces when nobody holds the lock
// (for the stall doctor's "held by pid N", and for waiters, which release the lock of a holder that died).
constexpr size_t k_record_size = 48;
/// How often a waiter checks whether the lock's holder died.
constexpr std::chrono::milliseconds k_dead_holder_check{100};

void VfpgaLock::record_holder(bool held) noexcept {
    char rec[k_record_size];
    std::memset(rec, ' ', sizeof rec);
    if (held) {
        const int n = std::snprintf(rec, sizeof rec, "%d %llu", static_cast<int>(::getpid()),
                                    static_cast<unsigned long long>(sim::process_start_time(::getpid())));
        if (n > 0 && static_cast<size_t>(n) < sizeof rec) rec[n] = ' ';
    }
    rec[sizeof rec - 1] = '\n';
    (void)!::pwrite(holders_fd_.get(), rec, sizeof rec, 0);
}

VfpgaLock::Holder VfpgaLock::holder() const noexcept {
    char rec[k_record_size + 1] = {};
    Holder h;
    if (::pread(holders_fd_.get(), rec, k_record_size, 0) <= 0) return h;
    int pid = 0;
    unsigned long long start = 0;
    if (std::sscanf(rec, "%d %llu", &pid, &start) == 2 && pid > 0) {
        h.pid = pid;
        h.start_time = start;
    }
    return h;
}

std::string VfpgaLock::why_taken() const noexcept {
    try {
        const Holder h = holder();
        const std::string pid = "pid " + std::to_string(h.pid);
        if (h.pid == 0)
            return "the lock is held by a process that recorded no pid (stock Coyote or an older coyote-mpi), or "
                   "is being released; if its holder died, remove /dev/shm/sem." + name_;
        if (h.pid == ::getpid())
            return "the lock is held by this process (" + pid + "): another cThread of it called lock() without "
                   "unlock(); lock() is not re-entrant";
        if (sim::process_alive(h.pid, h.start_time))
            return "the lock is held by " + pid + " (alive); it releases it with unlock() or when its cThread closes";
        return "the lock is held by " + pid + ", which exited without releasing it (a waiter releases it)";
    } catch (...) {
        return "the lock is held by another cThread";
    }
}

bool VfpgaLock::try_lock() {
    if (!mutex_->try_lock()) return false;
    record_holder(true);
    return true;
}

bool VfpgaLock::timed_lock(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        // In slices, between which a holder that died holding the lock is found and its lock released.
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        const auto slice = std::clamp(left, std::chrono::milliseconds(0), k_dead_holder_check);
        const auto until = boost::posix_time::microsec_clock::universal_time() +
                           boost::posix_time::milliseconds(static_cast<int64_t>(slice.count()));
        bool got = false;
        try {
            got = mutex_->timed_lock(until);
        } catch (const bip::interprocess_exception& e) {
            // A signal (a handler of the program, Ctrl-C under Python) interrupted the wait: wait on.
            if (e.get_native_error() != EINTR) throw;
        }
        if (got) {
            record_holder(true);
            return true;
        }
        if (release_dead_holder()) continue;
        if (Clock::now() >= deadline) return false;
    }
}

bool VfpgaLock::release_dead_holder() noexcept {
    // One waiter at a time, under an exclusive lock of the byte after the record (an open-file-description lock:
    // each VfpgaLock has its own description, so cThreads of one process exclude each other too; the holders'
    // shared flock is another kind of lock and does not conflict).
    struct flock range {};
    range.l_type = F_WRLCK;
    range.l_whence = SEEK_SET;
    range.l_start = static_cast<off_t>(k_record_size);
    range.l_len = 1;
    while (::fcntl(holders_fd_.get(), F_OFD_SETLKW, &range) != 0)
        if (errno != EINTR) return false;
    bool released = false;
    try {
        // Under the range lock the record is re-read: a waiter before us may have released this holder already
        // (and cleared the record), or the lock changed hands.
        const Holder h = holder();
        if (h.pid > 0 && h.pid != ::getpid() && !sim::process_alive(h.pid, h.start_time)) {
            record_holder(false);
            mutex_->unlock(); // the dead holder's post
            released = true;
        }
    } catch (...) {
    }
    range.l_type = F_UNLCK;
    (void)::fcntl(holders_fd_.get(), F_OFD_SETLK, &range);
    return released;
}

void VfpgaLock::unlock() {
    record_holder(false);
    mutex_->unlock();
}

}  // namespace coyote::detail
