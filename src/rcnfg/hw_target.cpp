// coyote-mpi: loading a hw bitstream through the driver's reconfiguration device.
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "backend/hw/reconfig_device.hpp"
#include "rcnfg/bitstream_file.hpp"
#include "rcnfg/targets.hpp"

namespace coyote::detail::rcnfg {

namespace {

std::atomic<uint32_t> g_crid{0};

}  // namespace

void load_hw(uint32_t device, int32_t vfid, std::span<const char> bytes, const std::string& origin) {
    check_hw_bitstream(bytes, origin);
    hw::ReconfigDevice dev(device);
    hw::ReconfigBuffer buf = dev.alloc(bytes.size(), ::getpid(), g_crid++);
    // The .bin holds big-endian 32-bit words; the engine reads native words.
    auto* words = static_cast<uint32_t*>(buf.data());
    for (size_t i = 0; i < bytes.size() / 4; ++i) {
        uint32_t w;
        std::memcpy(&w, bytes.data() + 4 * i, 4);
        words[i] = __builtin_bswap32(w);
    }
    if (vfid < 0) dev.reconfigure_shell(buf, bytes.size());
    else dev.reconfigure_app(buf, bytes.size(), vfid);
}

}  // namespace coyote::detail::rcnfg
