// The fake Coyote driver's entry points: open/close/ioctl/mmap/munmap of this process, interposed with LD_PRELOAD.
// Calls on /dev/coyote_fpga_<device>_v<vfid> and /dev/coyote_fpga_<device>_reconfig go to the fake; every other
// call goes to the C library. It also exports the MMIO hook the hw backend's seam looks for.
#undef _FORTIFY_SOURCE // the fortified inline open() would clash with the definition below
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend/sim/shell_config.hpp"
#include "detail/per_process.hpp"
#include "detail/settings.hpp"
#include "fake_reconfig.hpp"
#include "fake_vfpga.hpp"

namespace coyote_fake {

namespace {

namespace settings = coyote::detail::settings;

const settings::Integer k_devices{"COYOTE_FAKE_DEVICES", "hw-fake", 1, 1, 1024,
                                  "fake driver: devices whose vFPGA files exist (vFPGAs per device: the sim shell's n_fpga_reg)"};
const settings::Choice k_access{"COYOTE_FAKE_ACCESS", "hw-fake", "rw", {"rw", "denied"},
                                "fake driver: 'denied' makes opening a device file fail with EACCES (no udev rule)"};

const settings::Flag k_sink{"COYOTE_FAKE_SINK", "hw-fake", false,
                            "fake driver: drop every register store (it reads back 0): the FPGA side out of benchmarks"};

const settings::Flag k_huge{"COYOTE_FAKE_HUGE_PAGES", "hw-fake", false,
                            "fake driver: anonymous MAP_HUGETLB maps that fail for want of reserved huge pages get "
                            "2 MiB-aligned ordinary memory (a node with huge pages reserved, for getMem HPF and initRDMA)"};

/// The value of flag `f`; a malformed value is reported on stderr and counts as off (interposed calls cannot throw).
bool flag_or_off(const settings::Flag& f) noexcept {
    try {
        return f.get();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: %s\n", e.what());
        return false;
    }
}

bool emulate_huge_pages() noexcept { return flag_or_off(k_huge); }
bool sink_mode() noexcept { return flag_or_off(k_sink); }

using OpenFn = int (*)(const char*, int, ...);
using CloseFn = int (*)(int);
using AccessFn = int (*)(const char*, int);
using IoctlFn = int (*)(int, unsigned long, ...);
using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using MunmapFn = int (*)(void*, size_t);

template <typename Fn>
Fn next(const char* name) {
    return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

/// An open fake file: a vFPGA (dev set) or the reconfiguration device (dev null).
struct FakeFile {
    std::shared_ptr<FakeVfpga> dev;
    std::shared_ptr<FakeReconfig> rcnfg;
    uint32_t device = 0;
};

/// A mapping the process made of a fake region.
struct MappedRegion {
    std::shared_ptr<FakeVfpga> dev;
    unsigned long index = 0;
    size_t len = 0;
};

struct Registry {
    std::mutex mtx;
    std::map<int, FakeFile> files;
    std::map<std::pair<uint32_t, int32_t>, std::weak_ptr<FakeVfpga>> devices;
    std::map<uint32_t, std::shared_ptr<FakeReconfig>> reconfig; ///< one per device, kept for the process
    std::map<unsigned long, std::array<uint64_t, 8>> last_args;  ///< the arguments of each call, as passed in
    std::map<std::pair<unsigned long, unsigned long>, std::array<uint64_t, 4>> last_stores; ///< (region, offset)
    std::map<uintptr_t, MappedRegion> regions; ///< by start address
};

/// This process's registry: never destroyed (calls may come during exit), and fresh in a forked child, whose copies
/// of the parent's devices have no poller thread and whose copy of the mutex may be held by a thread it lacks. The
/// child's inherited descriptors then reach the C library (/dev/null), as a device it opens itself is its own.
Registry& registry() { return coyote::detail::PerProcess<Registry>::get(); }

/// Parses a fake device path: vfid >= 0 for a vFPGA, -1 for the reconfiguration device; false otherwise.
bool parse_path(const char* path, uint32_t& device, int32_t& vfid) {
    if (path == nullptr || std::strncmp(path, "/dev/coyote_fpga_", 17) != 0) return false;
    unsigned d = 0;
    int v = 0, n = 0;
    if (std::sscanf(path + 17, "%u_v%d%n", &d, &v, &n) == 2 && path[17 + n] == '\0' && v >= 0) {
        device = d;
        vfid = v;
        return true;
    }
    if (std::sscanf(path + 17, "%u_reconfig%n", &d, &n) == 1 && path[17 + n] == '\0') {
        device = d;
        vfid = -1;
        return true;
    }
    return false;
}

/// The device of (device, vfid), created on first use. Never called with the registry locked: the sim vFPGA maps
/// memory of its own, which comes back through the interposed calls.
std::shared_ptr<FakeVfpga> device_for(uint32_t device, int32_t vfid) {
    auto& r = registry();
    {
        std::lock_guard lk(r.mtx);
        if (auto d = r.devices[{device, vfid}].lock()) return d;
    }
    auto made = std::make_shared<FakeVfpga>(device, vfid);
    std::lock_guard lk(r.mtx);
    auto& slot = r.devices[{device, vfid}];
    if (auto d = slot.lock()) return d; // another thread was first; ours goes when `made` does
    slot = made;
    return made;
}

std::shared_ptr<FakeReconfig> reconfig_for(uint32_t device) {
    auto& r = registry();
    {
        std::lock_guard lk(r.mtx);
        if (auto it = r.reconfig.find(device); it != r.reconfig.end()) return it->second;
    }
    auto made = std::make_shared<FakeReconfig>();
    std::lock_guard lk(r.mtx);
    return r.reconfig.emplace(device, made).first->second;
}

int open_fake(uint32_t device, int32_t vfid) {
    try {
        if (k_access.get() == "denied") {
            errno = EACCES;
            return -1;
        }
        if (static_cast<int64_t>(device) >= k_devices.get()) {
            errno = ENOENT;
            return -1;
        }
        FakeFile f;
        f.device = device;
        if (vfid >= 0) f.dev = device_for(device, vfid);
        else f.rcnfg = reconfig_for(device);
        const int fd = next<OpenFn>("open")("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) return -1;
        std::lock_guard lk(registry().mtx);
        registry().files[fd] = std::move(f);
        return fd;
    } catch (const coyote::Error& e) {
        if (e.code() == coyote::Errc::no_device) {
            errno = ENOENT;
        } else {
            std::fprintf(stderr, "coyote fake driver: %s\n", e.what());
            errno = EIO;
        }
        return -1;
    }
}

/// open/open64: a fake device file, or the C library's call (`ap` holds the mode when the flags need one).
int open_or_forward(OpenFn real, const char* path, int flags, va_list ap) {
    uint32_t device = 0;
    int32_t vfid = 0;
    if (parse_path(path, device, vfid)) return open_fake(device, vfid);
    mode_t mode = 0;
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) mode = va_arg(ap, mode_t);
    return real(path, flags, mode);
}

/// 2 MiB-aligned ordinary memory standing in for a hugetlb map (COYOTE_FAKE_HUGE_PAGES); munmap frees it as usual.
void* huge_page_stand_in(size_t len, int prot, int flags) {
    static const auto real = next<MmapFn>("mmap");
    static const auto real_unmap = next<MunmapFn>("munmap");
    constexpr size_t huge = 2UL << 20;
    const int f = (flags & ~(MAP_HUGETLB | (0x3f << MAP_HUGE_SHIFT))) | MAP_NORESERVE;
    auto* p = static_cast<char*>(real(nullptr, len + huge, prot, f, -1, 0));
    if (p == MAP_FAILED) return p;
    const auto a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t aligned = (a + huge - 1) & ~(huge - 1);
    if (aligned > a) (void)real_unmap(p, aligned - a);
    const uintptr_t end = a + len + huge;
    if (end > aligned + len) (void)real_unmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
    return reinterpret_cast<void*>(aligned);
}

/// mmap of the reconfiguration device: the pages of the buffer allocated last by this process.
void* map_reconfig(FakeReconfig& rc, unsigned long index, size_t len, int prot) {
    const long err = rc.mappable(index, len);
    if (err != 0) {
        errno = static_cast<int>(-err);
        return MAP_FAILED;
    }
    static const auto real = next<MmapFn>("mmap");
    void* p = real(nullptr, len, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) rc.mapped(p, len);
    return p;
}

}  // namespace

}  // namespace coyote_fake

using namespace coyote_fake;

extern "C" {

__attribute__((visibility("default"))) void coyote_fake_mmio_stored(const volatile void* addr, const void* data,
                                                                    size_t bytes) noexcept {
    static const bool sink = sink_mode();
    if (sink) { // benchmarks of the host side: the store is dropped and the register reads back 0 (queue empty)
        *static_cast<volatile uint64_t*>(const_cast<volatile void*>(addr)) = 0;
        return;
    }
    const auto a = reinterpret_cast<uintptr_t>(addr);
    std::shared_ptr<FakeVfpga> dev;
    unsigned long index = 0, offset = 0;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        auto it = r.regions.upper_bound(a);
        if (it == r.regions.begin()) return;
        --it;
        if (a >= it->first + it->second.len) return;
        dev = it->second.dev;
        index = it->second.index;
        offset = a - it->first;
        auto& rec = r.last_stores[{index, offset}];
        rec = {};
        std::memcpy(rec.data(), data, bytes < 32 ? bytes : 32);
    }
    dev->on_store(index, offset, data, bytes);
}

/// For tests: copies the first `n` (<= 8) argument words the last `request` on a fake file passed in; -1 if none.
__attribute__((visibility("default"))) int coyote_fake_last_ioctl_args(unsigned long request, uint64_t* out,
                                                                       size_t n) noexcept {
    auto& r = registry();
    std::lock_guard lk(r.mtx);
    auto it = r.last_args.find(request);
    if (it == r.last_args.end() || n > 8) return -1;
    std::memcpy(out, it->second.data(), n * sizeof(uint64_t));
    return 0;
}

/// For tests: the words last stored at byte `offset` of region `region` (mmap index) of any fake vFPGA; -1 if none.
__attribute__((visibility("default"))) int coyote_fake_last_store(unsigned long region, unsigned long offset,
                                                                  uint64_t* out4) noexcept {
    auto& r = registry();
    std::lock_guard lk(r.mtx);
    auto it = r.last_stores.find({region, offset});
    if (it == r.last_stores.end()) return -1;
    std::memcpy(out4, it->second.data(), 4 * sizeof(uint64_t));
    return 0;
}

__attribute__((visibility("default"))) int open(const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    static const auto real = next<OpenFn>("open");
    const int fd = open_or_forward(real, path, flags, ap);
    va_end(ap);
    return fd;
}

// On LP64 open64 is open (files are large by default): the same interposer serves both.
static_assert(sizeof(off_t) == 8, "open64 is an alias of open only where off_t has 64 bits");
__attribute__((visibility("default"), alias("open"))) int open64(const char* path, int flags, ...);

/// access() of a fake device file answers as the file would (backend selection checks the file this way).
__attribute__((visibility("default"))) int access(const char* path, int mode) noexcept {
    uint32_t device = 0;
    int32_t vfid = 0;
    if (!parse_path(path, device, vfid)) {
        static const auto real = next<AccessFn>("access");
        return real(path, mode);
    }
    try {
        const bool exists = static_cast<int64_t>(device) < k_devices.get() &&
                            (vfid < 0 || static_cast<uint32_t>(vfid) < coyote::detail::sim::load_shell_config().n_fpga_reg);
        if (!exists) {
            errno = ENOENT;
            return -1;
        }
        if (mode != F_OK && k_access.get() == "denied") {
            errno = EACCES;
            return -1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: %s\n", e.what());
        errno = EIO;
        return -1;
    }
}

__attribute__((visibility("default"))) int close(int fd) {
    std::shared_ptr<FakeVfpga> last;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        auto it = r.files.find(fd);
        if (it != r.files.end()) {
            last = std::move(it->second.dev);
            r.files.erase(it);
            for (const auto& [f, file] : r.files)
                if (file.dev == last) last.reset(); // other files still hold the device open
        }
    }
    if (last) last->release_all(); // vfpga_dev_release at ref_cnt 0
    static const auto real = next<CloseFn>("close");
    return real(fd);
}

__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...) noexcept {
    va_list ap;
    va_start(ap, request);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    FakeFile file;
    bool fake = false;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        auto it = r.files.find(fd);
        if (it != r.files.end()) {
            fake = true;
            file = it->second;
            if (arg != nullptr) std::memcpy(r.last_args[request].data(), arg, 8 * sizeof(uint64_t));
        }
    }
    if (!fake) {
        static const auto real = next<IoctlFn>("ioctl");
        return real(fd, request, arg);
    }
    auto* args = static_cast<uint64_t*>(arg);
    const long ret = file.dev ? file.dev->ioctl(request, args) : file.rcnfg->ioctl(request, args);
    if (ret < 0) {
        errno = static_cast<int>(-ret);
        return -1;
    }
    return static_cast<int>(ret);
}

__attribute__((visibility("default"))) void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) noexcept {
    FakeFile file;
    bool fake = false;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        auto it = fd >= 0 ? r.files.find(fd) : r.files.end();
        if (it != r.files.end()) {
            fake = true;
            file = it->second;
        }
    }
    static const auto real = next<MmapFn>("mmap");
    if (!fake) {
        void* p = real(addr, len, prot, flags, fd, offset);
        if (p == MAP_FAILED && errno == ENOMEM && fd < 0 && (flags & MAP_HUGETLB) != 0 && addr == nullptr &&
            emulate_huge_pages())
            p = huge_page_stand_in(len, prot, flags);
        return p;
    }
    const auto index = static_cast<unsigned long>(offset) >> 12;
    if (file.rcnfg) return map_reconfig(*file.rcnfg, index, len, prot);
    const auto& dev = file.dev;
    const RegionMemory* mem = nullptr;
    const long err = dev ? dev->region_fd(index, len, &mem) : -EINVAL;
    if (err != 0 || (offset & 0xFFF) != 0) {
        errno = err != 0 ? static_cast<int>(-err) : EINVAL;
        return MAP_FAILED;
    }
    void* p = real(addr, len, prot, flags, mem->memfd, 0);
    if (p == MAP_FAILED) return p;
    std::lock_guard lk(registry().mtx);
    registry().regions[reinterpret_cast<uintptr_t>(p)] = MappedRegion{dev, index, len};
    return p;
}

__attribute__((visibility("default"))) void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t offset) noexcept {
    return mmap(addr, len, prot, flags, fd, offset);
}

__attribute__((visibility("default"))) int munmap(void* addr, size_t len) noexcept {
    std::shared_ptr<FakeVfpga> dev; // released after the lock: may destroy the device
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        auto it = r.regions.find(reinterpret_cast<uintptr_t>(addr));
        if (it != r.regions.end()) {
            dev = std::move(it->second.dev);
            r.regions.erase(it);
        }
    }
    static const auto real = next<MunmapFn>("munmap");
    return real(addr, len);
}

}  // extern "C"
