// A fake CUDA driver library (soname libcuda.so.1) for the GPU tests on machines without a GPU: the driver API
// calls the runtime's GPU path makes, with CUDA's argument checks and error codes. Device memory is a memfd per
// allocation, its device address a reserved range without CPU access (as a GPU's), its dma-buf a dup of the memfd.
// Tests steer it through the coyote_fake_cuda_* functions below. Proven against this fake only, never a real GPU.
#include <cuda.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace {

constexpr uint64_t k_page = 4096;

struct DeviceMemory {
    int memfd = -1;
    uint64_t size = 0;
    int device = 0;
};

struct FakeGpu {
    std::mutex mtx;
    CUresult init_result = CUDA_SUCCESS;   ///< what cuInit returns (CUDA_ERROR_NO_DEVICE: a node without GPU)
    CUresult export_result = CUDA_SUCCESS; ///< what cuMemGetHandleForAddressRange returns when its checks pass
    int devices = 4;
    int dmabuf_supported = 1;
    int export_plain = 0;        ///< 1: the export hands out an fd that is no dma-buf (a plain memfd)
    int freed_while_exported = 0; ///< cuMemFree calls while a dma-buf of the memory was still open somewhere
    bool initialised = false;
    std::map<int, int> primary_refs;            ///< retains per device
    std::map<uint64_t, DeviceMemory> memory;    ///< by device address
};

FakeGpu& gpu() {
    static FakeGpu* g = new FakeGpu; // never destroyed: frees may come during exit
    return *g;
}

/// The primary context of device d is the pointer value d + 1; the calling thread's context stack.
thread_local std::vector<CUcontext> t_stack;

CUcontext ctx_of(int device) { return reinterpret_cast<CUcontext>(static_cast<uintptr_t>(device) + 1); }
int device_of(CUcontext ctx) { return static_cast<int>(reinterpret_cast<uintptr_t>(ctx)) - 1; }

struct ErrorText {
    CUresult code;
    const char* name;
    const char* text;
};
constexpr ErrorText k_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
};

/// True when an fd of this process other than `own` refers to the file of `own` (an exported dma-buf still open,
/// e.g. the driver's reference while the FPGA has the memory mapped).
bool shared_elsewhere(int own) {
    struct stat me {};
    if (::fstat(own, &me) != 0) return false;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return false;
    bool found = false;
    while (const dirent* e = ::readdir(dir)) {
        const int fd = std::atoi(e->d_name);
        struct stat st {};
        if (e->d_name[0] == '.' || fd == own || fd == ::dirfd(dir) || ::fstat(fd, &st) != 0) continue;
        found = found || (st.st_ino == me.st_ino && st.st_dev == me.st_dev);
    }
    ::closedir(dir);
    return found;
}

}  // namespace

extern "C" {

#define FAKE_API __attribute__((visibility("default")))

FAKE_API CUresult cuGetErrorName(CUresult error, const char** str) {
    for (const auto& e : k_errors)
        if (e.code == error) return *str = e.name, CUDA_SUCCESS;
    return CUDA_ERROR_INVALID_VALUE;
}

FAKE_API CUresult cuGetErrorString(CUresult error, const char** str) {
    for (const auto& e : k_errors)
        if (e.code == error) return *str = e.text, CUDA_SUCCESS;
    return CUDA_ERROR_INVALID_VALUE;
}

FAKE_API CUresult cuInit(unsigned int flags) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (g.init_result == CUDA_SUCCESS) g.initialised = true;
    return g.init_result;
}

FAKE_API CUresult cuDeviceGet(CUdevice* device, int ordinal) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (!g.initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal < 0 || ordinal >= g.devices) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, CUdevice dev) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (!g.initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g.devices) return CUDA_ERROR_INVALID_DEVICE;
    *pi = attrib == CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED ? g.dmabuf_supported : 0;
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (!g.initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g.devices) return CUDA_ERROR_INVALID_DEVICE;
    ++g.primary_refs[dev];
    *pctx = ctx_of(dev);
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (dev < 0 || dev >= g.devices) return CUDA_ERROR_INVALID_DEVICE;
    if (g.primary_refs[dev] <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    --g.primary_refs[dev];
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxPushCurrent(CUcontext ctx) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (ctx == nullptr || g.primary_refs[device_of(ctx)] <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    t_stack.push_back(ctx);
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxPopCurrent(CUcontext* pctx) {
    if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
    if (pctx != nullptr) *pctx = t_stack.back();
    t_stack.pop_back();
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemAlloc(CUdeviceptr* dptr, size_t bytesize) {
    if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
    if (bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    const uint64_t size = (bytesize + k_page - 1) / k_page * k_page;
    const int fd = ::memfd_create("coyote-fake-dmabuf", MFD_CLOEXEC);
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    void* va = MAP_FAILED;
    if (::ftruncate(fd, static_cast<off_t>(size)) == 0)
        va = ::mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (va == MAP_FAILED) {
        ::close(fd);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    *dptr = reinterpret_cast<CUdeviceptr>(va);
    g.memory[*dptr] = DeviceMemory{fd, size, device_of(t_stack.back())};
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemFree(CUdeviceptr dptr) {
    if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    auto it = g.memory.find(dptr);
    if (it == g.memory.end()) return CUDA_ERROR_INVALID_VALUE;
    if (shared_elsewhere(it->second.memfd)) ++g.freed_while_exported;
    ::munmap(reinterpret_cast<void*>(dptr), it->second.size);
    ::close(it->second.memfd);
    g.memory.erase(it);
    return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemGetHandleForAddressRange(void* handle, CUdeviceptr dptr, size_t size,
                                                CUmemRangeHandleType handle_type, unsigned long long flags) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    if (!g.initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (handle == nullptr || handle_type != CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (dptr % k_page != 0 || size % k_page != 0 || size == 0) return CUDA_ERROR_INVALID_VALUE; // host-page aligned
    auto it = g.memory.find(dptr);
    // The fake exports whole allocations only (its dma-buf is the allocation's memfd from offset 0).
    if (it == g.memory.end() || it->second.size != size) return CUDA_ERROR_INVALID_VALUE;
    if (g.export_result != CUDA_SUCCESS) return g.export_result;
    const int fd = g.export_plain != 0 ? ::memfd_create("coyote-fake-not-a-dmabuf", MFD_CLOEXEC)
                                       : ::fcntl(it->second.memfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    *static_cast<int*>(handle) = fd;
    return CUDA_SUCCESS;
}

// ---- test controls -----------------------------------------------------------------------------------------

/// What cuInit and cuMemGetHandleForAddressRange return, whether devices support dma-buf, the device count, and
/// whether the export hands out a plain memfd instead of the dma-buf.
FAKE_API void coyote_fake_cuda_configure(int init_result, int export_result, int dmabuf_supported, int devices,
                                         int export_plain) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    g.export_plain = export_plain;
    g.init_result = static_cast<CUresult>(init_result);
    g.export_result = static_cast<CUresult>(export_result);
    g.dmabuf_supported = dmabuf_supported;
    g.devices = devices;
    if (init_result != CUDA_SUCCESS) g.initialised = false;
}

/// Live allocations, primary-context references summed over the devices, and frees of exported memory.
FAKE_API void coyote_fake_cuda_state(int* allocations, int* context_refs, int* freed_while_exported) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    *freed_while_exported = g.freed_while_exported;
    *allocations = static_cast<int>(g.memory.size());
    int refs = 0;
    for (const auto& [d, n] : g.primary_refs) refs += n;
    *context_refs = refs;
}

/// Copies between the device memory at `dptr` and host memory through the allocation's memfd (not through the
/// device address): what a cuMemcpy would see. 0 on success, -1 when the range is not in one allocation.
FAKE_API int coyote_fake_cuda_copy(uint64_t dptr, void* host, uint64_t len, int to_device) {
    auto& g = gpu();
    std::lock_guard lk(g.mtx);
    auto it = g.memory.upper_bound(dptr);
    if (it == g.memory.begin()) return -1;
    --it;
    const uint64_t off = dptr - it->first;
    if (off + len > it->second.size) return -1;
    const auto n = static_cast<ssize_t>(len);
    const ssize_t done = to_device != 0 ? ::pwrite(it->second.memfd, host, len, static_cast<off_t>(off))
                                        : ::pread(it->second.memfd, host, len, static_cast<off_t>(off));
    return done == n ? 0 : -1;
}

}  // extern "C"
