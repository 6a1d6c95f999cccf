// coyote-mpi: RAII owners of OS handles, and the owner and type checks of objects at our names in shared places.
#include "detail/handles.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <coyote/error.hpp>

namespace coyote::detail {

namespace {

const char* kind_of(mode_t mode) noexcept {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    return "not a regular file";
}

/// The text of EEXIST on creating `name` in /dev/shm: who owns what is in the way.
std::string in_the_way(const std::string& name) {
    struct stat st {};
    if (::lstat(("/dev/shm" + name).c_str(), &st) != 0) return "it exists";
    if (st.st_uid != ::geteuid())
        return "an object of uid " + std::to_string(st.st_uid) + " (another user) is at that name; remove it";
    return "a segment of this user is at that name (a leftover of a process that had this pid?); remove it";
}

/// Throws ENOSPC unless the file system of segment `fd` (the tmpfs at /dev/shm) has `size` bytes free: tmpfs hands
/// out pages at the first touch, and one it has no room for then kills the process with SIGBUS. (Nothing is
/// allocated here: what others take after the check can still run it out.)
void check_room(int fd, const std::string& name, size_t size) {
    struct statvfs fs {};
    if (::fstatvfs(fd, &fs) != 0) return; // no figures: the first touch will tell
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (fs.f_blocks == 0 || size <= free_bytes) return; // f_blocks 0: a tmpfs without a size limit
    throw Error(std::error_code(ENOSPC, std::generic_category()), "shm_open",
                "shared segment /dev/shm" + name + " of " + std::to_string(size) + " bytes: /dev/shm has " +
                    std::to_string(free_bytes) +
                    " bytes free (free space there, or mount it larger: docker run --shm-size)");
}

}  // namespace

std::string foreign_file_reason(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return path + ": fstat: " + std::strerror(errno);
    if (st.st_uid != ::geteuid())
        return path + ": it belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
               std::to_string(::geteuid()) + "); remove it";
    if (!S_ISREG(st.st_mode)) return path + ": it is " + kind_of(st.st_mode) + "; remove it";
    return {};
}

std::string foreign_output_reason(int fd, const std::string& path) {
    const uid_t me = ::geteuid();
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid != me && st.st_uid != 0)
        return path + " is a symbolic link of uid " + std::to_string(st.st_uid) + " (another user chose where it "
               "points); name the file itself";
    if (::fstat(fd, &st) != 0) return path + ": fstat: " + std::strerror(errno);
    if (S_ISREG(st.st_mode) && st.st_uid != me && st.st_uid != 0)
        return path + " is a file of uid " + std::to_string(st.st_uid) + " (another user could read what is "
               "written to it); remove it or choose another name";
    return {};
}

Fd open_output_file(const std::string& path, int flags, std::string& refused) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600));
    if (!fd) return fd;
    refused = foreign_output_reason(fd.get(), path);
    if (refused.empty()) return fd;
    fd.reset();
    errno = EPERM;
    return fd;
}

void require_own_file(int fd, const std::string& call, const std::string& path) {
    const std::string why = foreign_file_reason(fd, path);
    if (!why.empty()) throw_error(Errc::invalid_argument, call, "refusing " + why);
}

Fd open_own_file(const std::string& path, const std::string& call) {
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
    if (!fd) {
        if (errno == ELOOP) throw_error(Errc::invalid_argument, call, "refusing " + path + ": a symbolic link; remove it");
        throw_errno("open", call + ": " + path);
    }
    require_own_file(fd.get(), call, path);
    // Back to blocking mode for the caller (a regular file ignores the flag, but it should not stay set).
    const int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl >= 0) (void)::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

void Fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

void Mapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
}

ShmSegment ShmSegment::create(const std::string& name, size_t size, bool check_free) {
    Fd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
        const int err = errno;
        if (err == EEXIST)
            throw Error(std::error_code(err, std::generic_category()), "shm_open",
                        "create shared segment " + name + ": " + in_the_way(name));
        throw_errno("shm_open", "create shared segment " + name);
    }
    ShmSegment seg;
    seg.name_ = name;
    seg.owner_ = true; // from here on the destructor unlinks the name
    if (::fchmod(fd.get(), 0600) != 0) throw_errno("fchmod", name);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw_errno("ftruncate", name);
    if (check_free) check_room(fd.get(), name, size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw_errno("mmap", "map shared segment " + name);
    seg.map_ = Mapping(p, size);
    return seg;
}

ShmSegment ShmSegment::open(const std::string& name) {
    // O_NONBLOCK: a FIFO put at the name must not block; it is refused below as no regular file.
    Fd fd(::shm_open(name.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0));
    if (!fd) throw_errno("shm_open", "open shared segment " + name);
    require_own_file(fd.get(), "shm_open", "shared segment /dev/shm" + name);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("fstat", name);
    if (st.st_size <= 0) throw_error(Errc::protocol, "shm_open", "shared segment " + name + " is empty");
    const auto size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw_errno("mmap", "map shared segment " + name);
    ShmSegment seg;
    seg.name_ = name;
    seg.map_ = Mapping(p, size);
    return seg;
}

ShmSegment& ShmSegment::operator=(ShmSegment&& o) noexcept {
    if (this != &o) {
        unlink_if_owner();
        map_ = std::move(o.map_);
        name_ = std::move(o.name_);
        owner_ = std::exchange(o.owner_, false);
    }
    return *this;
}

void ShmSegment::unlink_if_owner() noexcept {
    map_.reset();
    if (owner_ && !name_.empty()) ::shm_unlink(name_.c_str());
    owner_ = false;
}

}  // namespace coyote::detail
