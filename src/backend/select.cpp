#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "backend/device.hpp"
#include "detail/settings.hpp"

namespace coyote::detail {

namespace {

const settings::Choice k_backend{"COYOTE_BACKEND", "runtime", "", {"sim", "hw"},
                                 "backend of every cThread; unset: hw when the device file exists, else sim"};

}  // namespace

std::string device_file(uint32_t device, int32_t vfid) {
    return "/dev/coyote_fpga_" + std::to_string(device) + "_v" + std::to_string(vfid);
}

std::string selected_backend(uint32_t device, int32_t vfid) {
    if (k_backend.is_set()) return k_backend.get();
    return ::access(device_file(device, vfid).c_str(), F_OK) == 0 ? "hw" : "sim";
}

namespace {

// One Device per (backend, device, vfid) per process, shared by its cThreads.
std::mutex g_cache_mtx;
std::map<std::tuple<std::string, uint32_t, int32_t>, std::weak_ptr<Device>> g_cache;

}  // namespace

std::shared_ptr<Device> find_open_device(uint32_t device, int32_t vfid) {
    std::lock_guard lk(g_cache_mtx);
    auto it = g_cache.find(std::make_tuple(selected_backend(device, vfid), device, vfid));
    return it == g_cache.end() ? nullptr : it->second.lock();
}

std::shared_ptr<Device> open_device(uint32_t device, int32_t vfid) {
    if (vfid < 0) throw_error(Errc::invalid_argument, "cThread", "vfid must be >= 0, got " + std::to_string(vfid));
    auto& mtx = g_cache_mtx;
    auto& cache = g_cache;
    const std::string backend = selected_backend(device, vfid);
    std::lock_guard lk(mtx);
    auto key = std::make_tuple(backend, device, vfid);
    if (auto it = cache.find(key); it != cache.end())
        if (auto dev = it->second.lock()) return dev;
    auto dev = backend == "hw" ? hw::open(device, vfid) : sim::open(device, vfid);
    cache[key] = dev;
    return dev;
}

}  // namespace coyote::detail
