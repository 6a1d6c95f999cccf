// The hw backend: drives /dev/coyote_fpga_<device>_v<vfid> through the Coyote driver's ioctls and mmap.
// Not implemented yet: opening fails with a clear error naming the device file.
// Remote-access windows (cThread::registerWindow / unregisterWindow / invokeRdma's window targets) are a sim-only
// extension: a Device of this backend keeps the contract's register_window / unregister_window, which throw
// Errc::not_supported naming the backend.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "backend/device.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::hw {

std::shared_ptr<Device> open(uint32_t device, int32_t vfid) {
    const std::string path = device_file(device, vfid);
    Fd fd(::open(path.c_str(), O_RDWR | O_SYNC));
    if (!fd) {
        throw Error(std::error_code(errno, std::generic_category()), "open " + path,
                    "no Coyote device found for device " + std::to_string(device) + ", vFPGA " +
                        std::to_string(vfid) + " (load the Coyote driver, or set COYOTE_BACKEND=sim)");
    }
    throw_error(Errc::not_supported, "open " + path,
                "the hw backend of this build cannot drive the Coyote driver yet; set COYOTE_BACKEND=sim");
}

}  // namespace coyote::detail::hw
