// GPU memory through the CUDA driver API (COYOTE_ENABLE_GPU=ON with CUDA): device memory from cuMemAlloc in the
// GPU's primary context, exported with cuMemGetHandleForAddressRange as a dma-buf fd. libcuda.so.1 is loaded on
// first use, so that a GPU build still runs on nodes without the NVIDIA driver (getMem(GPU) then names the cause).
#include "backend/hw/gpu/gpu_memory.hpp"

#include <cuda.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <coyote/error.hpp>

namespace coyote::detail::hw::gpu {

namespace {

// The symbol a name of cuda.h stands for (cuMemAlloc is cuMemAlloc_v2).
#define COYOTE_CU_SYMBOL_(f) #f
#define COYOTE_CU_SYMBOL(f) COYOTE_CU_SYMBOL_(f)

/// The driver API entry points this file uses: (member, cuda.h name).
#define COYOTE_CUDA_CALLS(X)                                                                                   \
    X(init, cuInit) X(device_get, cuDeviceGet) X(device_attribute, cuDeviceGetAttribute)                         \
    X(ctx_retain, cuDevicePrimaryCtxRetain) X(ctx_release, cuDevicePrimaryCtxRelease) X(ctx_push, cuCtxPushCurrent) \
    X(ctx_pop, cuCtxPopCurrent) X(mem_alloc, cuMemAlloc) X(mem_free, cuMemFree)                                  \
    X(export_range, cuMemGetHandleForAddressRange) X(error_name, cuGetErrorName) X(error_string, cuGetErrorString)

/// The entry points, resolved from libcuda.so.1.
struct CudaApi {
#define COYOTE_CU_MEMBER(member, fn) decltype(&::fn) member = nullptr;
    COYOTE_CUDA_CALLS(COYOTE_CU_MEMBER)
#undef COYOTE_CU_MEMBER
    std::string load_error; ///< why the library or a symbol could not be loaded; empty when loaded
};

template <typename Fn>
void resolve(void* lib, Fn& fn, const char* symbol, std::string& error) {
    fn = reinterpret_cast<Fn>(::dlsym(lib, symbol));
    if (fn == nullptr && error.empty()) error = std::string("libcuda.so.1 has no ") + symbol + " (a driver older than CUDA 11.7?)";
}

CudaApi load_api() {
    CudaApi api;
    void* lib = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        const char* why = ::dlerror();
        api.load_error = std::string("the CUDA driver library libcuda.so.1 could not be loaded (") +
                         (why != nullptr ? why : "unknown reason") +
                         "): no NVIDIA driver on this node, or it is not on the library path";
        return api;
    }
#define COYOTE_CU_RESOLVE(member, fn) resolve(lib, api.member, COYOTE_CU_SYMBOL(fn), api.load_error);
    COYOTE_CUDA_CALLS(COYOTE_CU_RESOLVE)
#undef COYOTE_CU_RESOLVE
    return api; // the library stays loaded for the life of the process
}

const CudaApi& api() {
    static const CudaApi loaded = load_api();
    if (!loaded.load_error.empty()) throw_error(Errc::not_supported, "getMem GPU", loaded.load_error);
    return loaded;
}

/// "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
std::string describe(const CudaApi& cu, const char* call, CUresult res) {
    const char* name = nullptr;
    const char* text = nullptr;
    if (cu.error_name(res, &name) != CUDA_SUCCESS) name = nullptr;
    if (cu.error_string(res, &text) != CUDA_SUCCESS) text = nullptr;
    std::string s = std::string(call) + ": " + (name != nullptr ? name : "CUresult " + std::to_string(static_cast<int>(res)));
    if (text != nullptr) s += std::string(" (") + text + ")";
    return s;
}

Errc errc_of(CUresult res) {
    switch (res) {
    case CUDA_ERROR_NO_DEVICE: return Errc::no_device;
    case CUDA_ERROR_OUT_OF_MEMORY: return Errc::resource_exhausted;
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_INVALID_VALUE: return Errc::invalid_argument;
    default: return Errc::not_supported;
    }
}

/// Throws the Error of a failed CUDA call; `hint` says what it likely means.
void check(const CudaApi& cu, CUresult res, const char* call, const std::string& hint = {}) {
    if (res == CUDA_SUCCESS) return;
    throw_error(errc_of(res), "getMem GPU", describe(cu, call, res) + (hint.empty() ? "" : ": " + hint));
}

/// The GPU's primary context made current on this thread for the scope (the caller's context comes back).
class ScopedContext {
public:
    ScopedContext(const CudaApi& cu, CUcontext ctx) : cu_(cu) { check(cu, cu.ctx_push(ctx), "cuCtxPushCurrent"); }
    ~ScopedContext() {
        CUcontext popped = nullptr;
        (void)cu_.ctx_pop(&popped);
    }
    ScopedContext(const ScopedContext&) = delete;
    ScopedContext& operator=(const ScopedContext&) = delete;

private:
    const CudaApi& cu_;
};

uint64_t host_page() {
    const long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<uint64_t>(p) : 4096;
}

/// Device memory of `size` bytes (a multiple of `page`) at a page-aligned address; `base` is what to free.
uint64_t alloc_aligned(const CudaApi& cu, uint64_t size, uint64_t page, uint64_t& base) {
    CUdeviceptr p = 0;
    check(cu, cu.mem_alloc(&p, size), "cuMemAlloc", std::to_string(size) + " bytes");
    if (p % page == 0) {
        base = p;
        return p;
    }
    // The export needs a page-aligned range: take one page more and export the aligned part inside it.
    (void)cu.mem_free(p);
    check(cu, cu.mem_alloc(&p, size + page), "cuMemAlloc", std::to_string(size + page) + " bytes");
    base = p;
    return (p + page - 1) / page * page;
}

}  // namespace

GpuBuffer GpuBuffer::allocate(uint32_t gpu_dev_id, uint64_t size) {
    const CudaApi& cu = api();
    check(cu, cu.init(0), "cuInit", "no usable GPU: no NVIDIA GPU on this node, or its driver is not loaded");
    CUdevice dev = 0;
    check(cu, cu.device_get(&dev, static_cast<int>(gpu_dev_id)), "cuDeviceGet",
          "GPU " + std::to_string(gpu_dev_id) + " (CoyoteAlloc::gpu_dev_id) does not exist on this node");
    int dmabuf = 0;
    check(cu, cu.device_attribute(&dmabuf, CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev), "cuDeviceGetAttribute");
    if (dmabuf == 0)
        throw_error(Errc::not_supported, "getMem GPU",
                    "GPU " + std::to_string(gpu_dev_id) +
                        " cannot export its memory as a dma-buf (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is 0: the "
                        "NVIDIA kernel module or the Linux kernel lacks dma-buf support)");
    CUcontext ctx = nullptr;
    check(cu, cu.ctx_retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    GpuBuffer b; // from here on its destructor frees what was made, in the right order
    b.device_ = gpu_dev_id;
    b.base_ = 1; // holds the context reference until the memory exists (release() checks the memory by addr_)
    ScopedContext scope(cu, ctx);
    const uint64_t page = host_page();
    b.size_ = (size + page - 1) / page * page;
    b.addr_ = alloc_aligned(cu, b.size_, page, b.base_);
    int fd = -1;
    check(cu, cu.export_range(&fd, b.addr_, b.size_, CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0),
          "cuMemGetHandleForAddressRange", "exporting " + std::to_string(b.size_) + " bytes as a dma-buf");
    b.dmabuf_.reset(fd);
    return b;
}

void GpuBuffer::release() noexcept {
    if (base_ == 0) return;
    dmabuf_.reset(); // the driver holds its own reference while it has the buffer mapped
    try {
        const CudaApi& cu = api();
        CUdevice dev = 0;
        CUcontext ctx = nullptr;
        if (cu.device_get(&dev, static_cast<int>(device_)) != CUDA_SUCCESS) return;
        if (addr_ != 0 && cu.ctx_retain(&ctx, dev) == CUDA_SUCCESS) {
            {
                ScopedContext scope(cu, ctx);
                const CUresult res = cu.mem_free(base_);
                if (res != CUDA_SUCCESS)
                    std::fprintf(stderr, "coyote: freeMem GPU: %s\n", describe(cu, "cuMemFree", res).c_str());
            }
            (void)cu.ctx_release(dev); // the reference just taken
        }
        (void)cu.ctx_release(dev); // the reference of the allocation
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote: freeMem GPU: %s\n", e.what());
    }
    base_ = addr_ = size_ = 0;
}

const char* build_support() noexcept { return "CUDA"; }

}  // namespace coyote::detail::hw::gpu
