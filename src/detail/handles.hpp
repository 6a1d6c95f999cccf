// coyote-mpi: move-only RAII owners of OS handles (fd, mapping, POSIX shm segment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace coyote::detail {

/// Owns a file descriptor (also used for sockets and eventfds).
class Fd {
public:
    Fd() noexcept = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

/// Owns an mmap'd region.
class Mapping {
public:
    Mapping() noexcept = default;
    Mapping(void* addr, size_t len) noexcept : addr_(addr), len_(len) {}
    Mapping(Mapping&& o) noexcept : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
    Mapping& operator=(Mapping&& o) noexcept {
        if (this != &o) {
            reset();
            addr_ = std::exchange(o.addr_, nullptr);
            len_ = std::exchange(o.len_, 0);
        }
        return *this;
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { reset(); }

    void* get() const noexcept { return addr_; }
    size_t size() const noexcept { return len_; }
    std::byte* bytes() const noexcept { return static_cast<std::byte*>(addr_); }
    explicit operator bool() const noexcept { return addr_ != nullptr; }
    void reset() noexcept;

private:
    void* addr_ = nullptr;
    size_t len_ = 0;
};

/// Why the object open at `fd` (found at `path`) is not a regular file of this user: another user's file, a FIFO,
/// a device... Empty when it is one. An object of another user at a name of ours is never used: he could read,
/// hold or rewrite it.
std::string foreign_file_reason(int fd, const std::string& path);
/// Throws coyote::Error (invalid_argument, `call`) naming the problem unless `fd` is a regular file of this user.
void require_own_file(int fd, const std::string& call, const std::string& path);
/// Opens `path` read/write, creating it owner-only (0600, whatever the umask) when absent; never follows a symbolic
/// link, never blocks on a FIFO, and refuses (coyote::Error naming it) a file that is not this user's own: for lock
/// and record files at predictable names in shared directories (/tmp, /dev/shm).
Fd open_own_file(const std::string& path, const std::string& call);

/// Why an output file open at `fd` (a log or report at a path the user chose, `path`) should not be written: a
/// regular file of another user (he could read what we write), or `path` a symbolic link of another user (he chose
/// where our output goes; root's are trusted, e.g. /dev/stdout). Empty otherwise (a file of ours, a device, a FIFO).
std::string foreign_output_reason(int fd, const std::string& path);

/// Opens output file `path` for writing (O_WRONLY | O_CREAT | O_CLOEXEC plus `flags`; created owner-only, 0600) unless
/// foreign_output_reason refuses it. An empty Fd on failure, errno set: EPERM when refused, with `refused` saying why.
Fd open_output_file(const std::string& path, int flags, std::string& refused);

/// A POSIX shared-memory segment mapped read/write. The creator unlinks the name on destruction.
class ShmSegment {
public:
    ShmSegment() noexcept = default;
    /// Creates `name` (exclusive, mode 0600) of `size` bytes. With `check_free` a /dev/shm with less room free than
    /// `size` fails here (ENOSPC, naming both) instead of with SIGBUS when the pages are first touched.
    static ShmSegment create(const std::string& name, size_t size, bool check_free = false);
    /// Maps an existing segment created by another process of this user (a segment of another user at the name is
    /// refused); size is read from the segment.
    static ShmSegment open(const std::string& name);

    ShmSegment(ShmSegment&& o) noexcept
        : name_(std::move(o.name_)), owner_(std::exchange(o.owner_, false)), map_(std::move(o.map_)) {}
    ShmSegment& operator=(ShmSegment&& o) noexcept;
    ShmSegment(const ShmSegment&) = delete;
    ShmSegment& operator=(const ShmSegment&) = delete;
    ~ShmSegment() { unlink_if_owner(); }

    void* get() const noexcept { return map_.get(); }
    std::byte* bytes() const noexcept { return map_.bytes(); }
    size_t size() const noexcept { return map_.size(); }
    const std::string& name() const noexcept { return name_; }
    bool owner() const noexcept { return owner_; }
    explicit operator bool() const noexcept { return static_cast<bool>(map_); }

private:
    void unlink_if_owner() noexcept;

    std::string name_;
    bool owner_ = false;
    Mapping map_; // the destructor unmaps before it unlinks
};

}  // namespace coyote::detail
