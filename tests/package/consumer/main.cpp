// Consumer of an installed coyote-mpi: one LOCAL_TRANSFER on the sim backend, verified, and a short cBench.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include <coyote/cBench.hpp>
#include <coyote/cThread.hpp>

namespace {

constexpr uint32_t k_size = 64 * 1024;

bool wait_writes(const coyote::cThread& thread, uint32_t expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (thread.checkCompleted(coyote::CoyoteOper::LOCAL_TRANSFER) < expected) {
        if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
}

}  // namespace

int main() {
    try {
        coyote::cThread thread(0, getpid());
        std::cout << "backend: " << thread.backendName() << ", ctid " << thread.getCtid() << std::endl;

        auto* src = static_cast<uint8_t*>(thread.getMem({coyote::CoyoteAllocType::REG, k_size}));
        auto* dst = static_cast<uint8_t*>(thread.getMem({coyote::CoyoteAllocType::REG, k_size}));
        for (uint32_t i = 0; i < k_size; ++i) src[i] = static_cast<uint8_t>(i * 7 + 3);
        std::memset(dst, 0, k_size);

        coyote::localSg src_sg = {.addr = src, .len = k_size, .stream = coyote::STRM_HOST, .dest = 0};
        coyote::localSg dst_sg = {.addr = dst, .len = k_size};
        thread.clearCompleted();
        thread.invoke(coyote::CoyoteOper::LOCAL_TRANSFER, src_sg, dst_sg);
        if (!wait_writes(thread, 1)) {
            std::cerr << "FAIL: LOCAL_TRANSFER did not complete within 30 s" << std::endl;
            return 1;
        }
        if (std::memcmp(src, dst, k_size) != 0) {
            std::cerr << "FAIL: destination differs from source after LOCAL_TRANSFER" << std::endl;
            return 1;
        }

        coyote::cBench bench(20, 2);
        uint32_t issued = 1; // the verified transfer above
        bench.execute(
            [&] {
                thread.invoke(coyote::CoyoteOper::LOCAL_TRANSFER, src_sg, dst_sg);
                ++issued;
                if (!wait_writes(thread, issued)) throw std::runtime_error("transfer timed out");
            },
            [&] { /* nothing to prepare */ });
        if (bench.getAll().size() != 20 || !(bench.getMin() <= bench.getMax())) {
            std::cerr << "FAIL: cBench recorded " << bench.getAll().size() << " runs" << std::endl;
            return 1;
        }
        std::cout << "PASS: transfer verified, p50 " << bench.getP50() << " ns" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "FAIL: " << e.what() << std::endl;
        return 1;
    }
}
