#include "detail/handles.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coyote/error.hpp>

namespace coyote::detail {

void Fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

void Mapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
}

ShmSegment ShmSegment::create(const std::string& name, size_t size) {
    Fd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
    if (!fd) throw_errno("shm_open", "create shared segment " + name);
    ShmSegment seg;
    seg.name_ = name;
    seg.owner_ = true; // from here on the destructor unlinks the name
    if (::fchmod(fd.get(), 0600) != 0) throw_errno("fchmod", name);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw_errno("ftruncate", name);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw_errno("mmap", "map shared segment " + name);
    seg.map_ = Mapping(p, size);
    return seg;
}

ShmSegment ShmSegment::open(const std::string& name) {
    Fd fd(::shm_open(name.c_str(), O_RDWR, 0));
    if (!fd) throw_errno("shm_open", "open shared segment " + name);
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
