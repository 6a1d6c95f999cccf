#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "backend/device.hpp"
#include "detail/per_process.hpp"
#include "detail/settings.hpp"

namespace coyote::detail {

namespace {

const settings::Choice k_backend{
    "COYOTE_BACKEND", "runtime", "", {"sim", "hw"},
    "backend of every cThread; unset: hw when the host has a Coyote device file (/dev/coyote_fpga_*), else sim"};

}  // namespace

std::string device_file(uint32_t device, int32_t vfid) {
    return "/dev/coyote_fpga_" + std::to_string(device) + "_v" + std::to_string(vfid);
}

std::string choose_backend(const std::string& dev_dir, uint32_t device, int32_t vfid) {
    if (k_backend.is_set()) return k_backend.get();
    const std::string file = "coyote_fpga_" + std::to_string(device) + "_v" + std::to_string(vfid);
    if (::access((dev_dir + "/" + file).c_str(), F_OK) == 0) return "hw";
    // On an FPGA host a vFPGA or device without a file is an error of the hw backend ("the shell has fewer
    // vFPGAs"), not a silent run on the simulator.
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dev_dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().starts_with("coyote_fpga_")) return "hw";
    return "sim";
}

std::string selected_backend(uint32_t device, int32_t vfid) { return choose_backend("/dev", device, vfid); }

namespace {

// One Device per (backend, device, vfid) per process, shared by its cThreads. A forked child starts with an empty
// cache: the Devices it inherited lost their worker threads in the fork (and may hold locks those threads held), so
// a cThread the child opens gets a Device of its own.
struct DeviceCache {
    std::mutex mtx;
    std::map<std::tuple<std::string, uint32_t, int32_t>, std::weak_ptr<Device>> devices;
};

DeviceCache& cache() { return PerProcess<DeviceCache>::get(); }

}  // namespace

std::shared_ptr<Device> find_open_device(uint32_t device, int32_t vfid) {
    auto& c = cache();
    std::lock_guard lk(c.mtx);
    auto it = c.devices.find(std::make_tuple(selected_backend(device, vfid), device, vfid));
    return it == c.devices.end() ? nullptr : it->second.lock();
}

std::shared_ptr<Device> open_device(uint32_t device, int32_t vfid) {
    if (vfid < 0) throw_error(Errc::invalid_argument, "cThread", "vfid must be >= 0, got " + std::to_string(vfid));
    const std::string backend = selected_backend(device, vfid);
    auto& c = cache();
    std::lock_guard lk(c.mtx);
    auto key = std::make_tuple(backend, device, vfid);
    if (auto it = c.devices.find(key); it != c.devices.end())
        if (auto dev = it->second.lock()) return dev;
    auto dev = backend == "hw" ? hw::open(device, vfid) : sim::open(device, vfid);
    c.devices[key] = dev;
    return dev;
}

}  // namespace coyote::detail
