// Consumer written as Coyote's examples often are: "cThread.hpp", not <coyote/cThread.hpp> (Coyote's package puts
// its include/coyote on the include path; coyote::runtime does too). One LOCAL_TRANSFER on the sim, verified.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>

#include "cBench.hpp"
#include "cThread.hpp"

int main() {
    try {
        coyote::cThread thread(0, getpid());
        auto* src = static_cast<uint32_t*>(thread.getMem({coyote::CoyoteAllocType::REG, 4096}));
        auto* dst = static_cast<uint32_t*>(thread.getMem({coyote::CoyoteAllocType::REG, 4096}));
        for (uint32_t i = 0; i < 1024; ++i) src[i] = i * 3u;
        coyote::localSg s{.addr = src, .len = 4096}, d{.addr = dst, .len = 4096};
        thread.invoke(coyote::CoyoteOper::LOCAL_TRANSFER, s, d);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (thread.checkCompleted(coyote::CoyoteOper::LOCAL_TRANSFER) < 1)
            if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("transfer timed out");
        for (uint32_t i = 0; i < 1024; ++i)
            if (dst[i] != i * 3u) throw std::runtime_error("word " + std::to_string(i) + " differs");
        std::cout << "quote-include consumer: transfer verified on " << thread.backendName() << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "quote-include consumer failed: " << e.what() << std::endl;
        return 1;
    }
}
