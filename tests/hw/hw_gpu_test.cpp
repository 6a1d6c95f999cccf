// getMem(GPU) of a COYOTE_ENABLE_GPU=ON (CUDA) build, end to end on the fake driver and the fake libcuda
// (tests/hw/fake_cuda): allocation, dma-buf export, IOCTL_MAP_DMABUF / IOCTL_UNMAP_DMABUF, data moved by the sim vFPGA
// into GPU memory and back, teardown order, and the error paths. Proven against these fakes only, never a real GPU.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/hw/driver_abi.hpp"
#include "unit/test_support.hpp"

using namespace coyote;
using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::wait_completed;
namespace hwabi = coyote::detail::hw::abi;

namespace {

// CUresult values of cuda.h (the test does not include it).
constexpr int k_cuda_success = 0, k_cuda_no_device = 100, k_cuda_not_supported = 801;

template <typename Fn>
Fn hook(const char* name) {
    auto fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
    if (fn == nullptr) ADD_FAILURE() << name << " not found: run with LD_PRELOAD of the fake driver and fake libcuda";
    return fn;
}

void configure(int init, int exp, int dmabuf, int devices, int plain) {
    if (auto fn = hook<void (*)(int, int, int, int, int)>("coyote_fake_cuda_configure")) fn(init, exp, dmabuf, devices, plain);
}

struct CudaState {
    int allocations = -1, context_refs = -1, freed_while_exported = -1;
};
CudaState cuda_state() {
    CudaState s;
    if (auto fn = hook<void (*)(int*, int*, int*)>("coyote_fake_cuda_state"))
        fn(&s.allocations, &s.context_refs, &s.freed_while_exported);
    return s;
}

int dmabuf_mappings() {
    const auto fn = hook<int (*)()>("coyote_fake_dmabuf_mappings");
    return fn != nullptr ? fn() : -1;
}

/// Copies through the fake GPU's memfd (what the GPU sees), not through the device address.
void gpu_copy(void* dptr, void* host, uint64_t len, bool to_device) {
    const auto fn = hook<int (*)(uint64_t, void*, uint64_t, int)>("coyote_fake_cuda_copy");
    ASSERT_NE(fn, nullptr);
    ASSERT_EQ(fn(reinterpret_cast<uint64_t>(dptr), host, len, to_device ? 1 : 0), 0);
}

std::vector<uint64_t> last_args(unsigned long request, size_t n) {
    std::vector<uint64_t> out(n);
    const auto fn = hook<int (*)(unsigned long, uint64_t*, size_t)>("coyote_fake_last_ioctl_args");
    if (fn == nullptr || fn(request, out.data(), n) != 0) return {};
    return out;
}

std::string fd_link(uint64_t fd) {
    char link[128] = {0};
    if (::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof(link) - 1) < 0) return {};
    return link;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
    return v;
}

class HwGpu : public ::testing::Test {
protected:
    void SetUp() override { configure(k_cuda_success, k_cuda_success, 1, 4, 0); }
    void TearDown() override {
        configure(k_cuda_success, k_cuda_success, 1, 4, 0);
        const CudaState s = cuda_state(); // every test leaves nothing behind
        EXPECT_EQ(s.allocations, 0);
        EXPECT_EQ(s.context_refs, 0);
        EXPECT_EQ(s.freed_while_exported, 0);
        EXPECT_EQ(dmabuf_mappings(), 0);
    }
    EnvGuard backend_{"COYOTE_BACKEND", "hw"};
};

TEST_F(HwGpu, LocalTransferIntoGpuMemoryAndBack) {
    cThread t(0, getpid());
    ASSERT_EQ(t.backendName(), "hw");
    constexpr uint32_t n = 3 * 4096 + 100; // rounded up to whole pages for the export
    auto* host = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    auto* back = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    auto* gpu = t.getMem({.alloc = CoyoteAllocType::GPU, .size = n, .gpu_dev_id = 0});
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(gpu) % 4096, 0U);
    const auto ctid = static_cast<uint64_t>(t.getCtid());
    const auto map = last_args(hwabi::k_map_dmabuf, 4);
    ASSERT_EQ(map.size(), 4U);
    EXPECT_NE(fd_link(map[0]).find("coyote-fake-dmabuf"), std::string::npos) << fd_link(map[0]);
    EXPECT_EQ(map[1], reinterpret_cast<uint64_t>(gpu));
    EXPECT_EQ(map[2], ctid);
    EXPECT_EQ(map[3], ~0ULL);
    EXPECT_EQ(dmabuf_mappings(), 1);

    const auto up = pattern(n, 5);
    std::memcpy(host, up.data(), n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = host, .len = n}, localSg{.addr = gpu, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    std::vector<uint8_t> seen(n);
    gpu_copy(gpu, seen.data(), n, false);
    EXPECT_EQ(seen, up) << "the vFPGA's write did not reach the GPU memory";

    auto down = pattern(n, 77); // new contents written on the GPU side: the read must come from there
    gpu_copy(gpu, down.data(), n, true);
    std::memset(back, 0, n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = gpu, .len = n}, localSg{.addr = back, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 2));
    EXPECT_EQ(std::memcmp(back, down.data(), n), 0);
}

TEST_F(HwGpu, FreeMemUnmapsBeforeTheMemoryIsFreed) {
    cThread t(0, getpid());
    auto* gpu = t.getMem({.alloc = CoyoteAllocType::GPU, .size = 8192, .gpu_dev_id = 1});
    EXPECT_EQ(cuda_state().allocations, 1);
    EXPECT_EQ(cuda_state().context_refs, 1); // the primary context stays retained while the memory lives
    t.freeMem(gpu);
    EXPECT_EQ(last_args(hwabi::k_unmap_dmabuf, 2),
              (std::vector<uint64_t>{reinterpret_cast<uint64_t>(gpu), static_cast<uint64_t>(t.getCtid())}));
    EXPECT_EQ(dmabuf_mappings(), 0);
    EXPECT_EQ(cuda_state().allocations, 0);
    EXPECT_EQ(cuda_state().freed_while_exported, 0); // dma-buf fds closed and unmapped before cuMemFree
    EXPECT_EQ(error_of([&] { t.freeMem(gpu); }).first, static_cast<int>(Errc::not_mapped));
}

TEST_F(HwGpu, TeardownReleasesGpuMemoryInOrder) {
    auto t = std::make_unique<cThread>(0, getpid());
    (void)t->getMem({.alloc = CoyoteAllocType::GPU, .size = 4096, .gpu_dev_id = 0});
    (void)t->getMem({.alloc = CoyoteAllocType::GPU, .size = 65536, .gpu_dev_id = 2});
    EXPECT_EQ(dmabuf_mappings(), 2);
    t.reset(); // TearDown checks: no allocation, context reference or mapping left, nothing freed while exported
}

TEST_F(HwGpu, NoGpuGivesAClearError) {
    configure(k_cuda_no_device, k_cuda_success, 1, 0, 0);
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({CoyoteAllocType::GPU, 4096}); });
    EXPECT_EQ(code, static_cast<int>(Errc::no_device)) << what;
    EXPECT_NE(what.find("cuInit"), std::string::npos) << what;
    EXPECT_NE(what.find("CUDA_ERROR_NO_DEVICE"), std::string::npos) << what;
    EXPECT_NE(what.find("no CUDA-capable device is detected"), std::string::npos) << what;
    EXPECT_NE(what.find("no NVIDIA GPU on this node"), std::string::npos) << what;
}

TEST_F(HwGpu, MissingDeviceAndNoDmabufSupport) {
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({.alloc = CoyoteAllocType::GPU, .size = 4096, .gpu_dev_id = 9}); });
    EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument)) << what;
    EXPECT_NE(what.find("cuDeviceGet: CUDA_ERROR_INVALID_DEVICE"), std::string::npos) << what;
    EXPECT_NE(what.find("GPU 9"), std::string::npos) << what;
    configure(k_cuda_success, k_cuda_success, 0, 4, 0);
    const auto [code2, what2] = error_of([&] { (void)t.getMem({.alloc = CoyoteAllocType::GPU, .size = 4096, .gpu_dev_id = 0}); });
    EXPECT_EQ(code2, static_cast<int>(Errc::not_supported)) << what2;
    EXPECT_NE(what2.find("CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED"), std::string::npos) << what2;
}

TEST_F(HwGpu, ExportRefusedFreesTheMemory) {
    configure(k_cuda_success, k_cuda_not_supported, 1, 4, 0);
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({.alloc = CoyoteAllocType::GPU, .size = 4096, .gpu_dev_id = 0}); });
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
    EXPECT_NE(what.find("cuMemGetHandleForAddressRange: CUDA_ERROR_NOT_SUPPORTED"), std::string::npos) << what;
    EXPECT_EQ(cuda_state().allocations, 0);
    EXPECT_EQ(cuda_state().context_refs, 0);
}

TEST_F(HwGpu, DriverRefusingTheFdFreesTheMemory) {
    configure(k_cuda_success, k_cuda_success, 1, 4, 1); // the export hands out a plain memfd
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({.alloc = CoyoteAllocType::GPU, .size = 4096, .gpu_dev_id = 0}); });
    EXPECT_EQ(code, EINVAL) << what;
    EXPECT_NE(what.find("IOCTL_MAP_DMABUF"), std::string::npos) << what;
    EXPECT_NE(what.find("could not import dma-buf fd"), std::string::npos) << what;
    EXPECT_EQ(cuda_state().allocations, 0);
    EXPECT_EQ(dmabuf_mappings(), 0);
}

TEST_F(HwGpu, DriverArgumentChecksOfTheDmabufCalls) {
    cThread t(0, getpid()); // a GPU buffer to have a real dma-buf fd at hand
    auto* gpu = t.getMem({.alloc = CoyoteAllocType::GPU, .size = 8192, .gpu_dev_id = 0});
    const auto args = last_args(hwabi::k_map_dmabuf, 1);
    ASSERT_EQ(args.size(), 1U);
    const uint64_t good_fd = args[0];
    const int fd = ::open("/dev/coyote_fpga_0_v0", O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const auto ctid = static_cast<uint64_t>(t.getCtid());
    const auto map = [&](uint64_t dmabuf, uint64_t vaddr, uint64_t c) {
        hwabi::Args a{};
        a[0] = dmabuf;
        a[1] = vaddr;
        a[2] = c;
        a[3] = ~0ULL;
        errno = 0;
        return std::make_pair(::ioctl(fd, hwabi::k_map_dmabuf, a.data()), errno);
    };
    void* spare = ::mmap(nullptr, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(spare, MAP_FAILED);
    const auto va = reinterpret_cast<uint64_t>(spare);
    EXPECT_EQ(map(9999, va, ctid), std::make_pair(-1, EINVAL));                              // not an fd
    EXPECT_EQ(map(static_cast<uint64_t>(fd), va, ctid), std::make_pair(-1, EINVAL));         // not a dma-buf
    EXPECT_EQ(map(good_fd, va + 512, ctid), std::make_pair(-1, EINVAL));                     // unaligned vaddr
    EXPECT_EQ(map(good_fd, va, 63), std::make_pair(-1, EINVAL));                             // unregistered ctid
    EXPECT_EQ(map(good_fd, reinterpret_cast<uint64_t>(gpu), ctid), std::make_pair(-1, EINVAL)); // already mapped
    EXPECT_EQ(dmabuf_mappings(), 1);
    hwabi::Args u{};
    u[0] = va; // nothing mapped there: the driver finds no entry and returns 0
    u[1] = ctid;
    EXPECT_EQ(::ioctl(fd, hwabi::k_unmap_dmabuf, u.data()), 0);
    EXPECT_EQ(dmabuf_mappings(), 1);
    ::munmap(spare, 8192);
    ::close(fd);
}

// Run by hw_gpu_test_no_libcuda: the fake driver without the fake libcuda, on a machine without a CUDA driver.
TEST(HwGpuNoDriver, MissingLibcudaIsNamed) {
    if (::dlsym(RTLD_DEFAULT, "coyote_fake_cuda_configure") != nullptr) GTEST_SKIP() << "the fake libcuda is loaded";
    if (void* real = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
        ::dlclose(real);
        GTEST_SKIP() << "this machine has a CUDA driver library";
    }
    EnvGuard backend("COYOTE_BACKEND", "hw");
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({CoyoteAllocType::GPU, 4096}); });
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
    EXPECT_NE(what.find("libcuda.so.1 could not be loaded"), std::string::npos) << what;
    EXPECT_NE(what.find("no NVIDIA driver on this node"), std::string::npos) << what;
}

TEST(HwGpuSim, TheSimBackendNamesTheHwBackend) {
    EnvGuard backend("COYOTE_BACKEND", "sim");
    cThread t(0, getpid(), 5);
    ASSERT_EQ(t.backendName(), "sim");
    const auto [code, what] = error_of([&] { (void)t.getMem({CoyoteAllocType::GPU, 4096}); });
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
    EXPECT_NE(what.find("COYOTE_ENABLE_GPU=ON (CUDA)"), std::string::npos) << what;
    EXPECT_NE(what.find("needs the hw backend"), std::string::npos) << what;
}

}  // namespace
