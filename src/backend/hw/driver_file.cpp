// DriverFile: open, ioctl and mmap of a Coyote device file, with errors that say what to do.
#include "backend/hw/driver_file.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <coyote/error.hpp>

namespace coyote::detail::hw {

namespace {

std::string open_cause(int err) {
    switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
        return "no Coyote device found at this path: the Coyote driver is not loaded (insmod coyote_driver.ko), the "
               "shell has fewer vFPGAs, or set COYOTE_BACKEND=sim to use the simulator";
    case EACCES:
    case EPERM:
        return "permission denied: add the user to the group of the device files or install the udev rule of "
               "docs/hardware.md";
    default: return "the Coyote driver refused the open";
    }
}

std::string call_cause(unsigned long request, int err) {
    if (err == EPROTO)
        return "the driver returned a positive code (a driver of another version that does not know this call?)";
    if (err == ENOTTY || err == EINVAL)
        return "the driver does not accept this call or its arguments (a driver of another version?)";
    if (err == EPERM && (request == abi::k_offload_req || request == abi::k_sync_req))
        return "the shell has no card memory (en_mem=0)";
    if (err == EPERM && (request == abi::k_set_ip_address || request == abi::k_set_mac_address))
        return "the shell has no network stack";
    if (err == EFAULT) return "the driver could not access the arguments or the memory range";
    return {};
}

}  // namespace

DriverFile::DriverFile(std::string path) : path_(std::move(path)) {
    fd_.reset(::open(path_.c_str(), O_RDWR | O_SYNC | O_CLOEXEC));
    if (!fd_) {
        const int err = errno;
        throw Error(std::error_code(err, std::generic_category()), "open " + path_, open_cause(err));
    }
}

int DriverFile::try_call(unsigned long request, abi::Args& args) const noexcept {
    const int ret = ::ioctl(fd_.get(), request, args.data());
    if (ret == 0) return 0;
    return ret < 0 ? errno : EPROTO;
}

void DriverFile::call(unsigned long request, abi::Args& args, const std::string& cause) const {
    const int err = try_call(request, args);
    if (err != 0) fail(request, err, cause);
}

void DriverFile::fail(unsigned long request, int err, const std::string& cause) const {
    std::string what = cause.empty() ? call_cause(request, err) : cause;
    throw Error(std::error_code(err, std::generic_category()),
                std::string("ioctl ") + abi::ioctl_name(request) + " on " + path_, what);
}

Mapping DriverFile::map(abi::Region region, uint64_t size, const char* name) const {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), abi::region_offset(region));
    if (p == MAP_FAILED) {
        const int err = errno;
        throw Error(std::error_code(err, std::generic_category()), std::string("mmap ") + name + " region of " + path_,
                    err == EINVAL ? "the driver does not expose this region (a driver of another version?)"
                                  : "the driver could not map the region");
    }
    return Mapping(p, size);
}

}  // namespace coyote::detail::hw
