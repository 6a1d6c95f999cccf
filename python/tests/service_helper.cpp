// pycoyote tests: a cService with typed test functions, served until its standard input closes (test_service.py).
// Usage: pycoyote_test_service <name> <vfid> <app bitstream> [<tcp port>]; with a port the service is remote
// (TCP, key from COYOTE_SERVICE_KEY_FILE). Prints "ready <socket path>" once listening.
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>
#include <coyote/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

/// The functions of the test service (ids as test_service.py uses them).
enum Fid : int32_t { k_add = 1, k_scale = 2, k_mixed = 3, k_throws = 4, k_slow = 5, k_bytes = 6 };

/// A struct argument sent as raw bytes.
struct Pair {
    uint32_t a;
    uint32_t b;
};

void add_functions(coyote::cService& svc, const std::string& bits) {
    auto add = [&](std::unique_ptr<coyote::bFunc> f) {
        if (svc.addFunction(std::move(f)) != 0) throw std::runtime_error("addFunction failed for " + bits);
    };
    add(std::make_unique<coyote::cFunc<int32_t, int32_t, int32_t>>(
        k_add, bits, [](coyote::cThread*, int32_t x, int32_t y) { return x + y; }));
    add(std::make_unique<coyote::cFunc<double, uint64_t, double>>(
        k_scale, bits, [](coyote::cThread*, uint64_t n, double x) { return static_cast<double>(n) * x; }));
    // Odd sizes in a row: the arguments travel packed, without padding.
    add(std::make_unique<coyote::cFunc<int64_t, int8_t, uint16_t, float, int64_t>>(
        k_mixed, bits, [](coyote::cThread*, int8_t a, uint16_t b, float c, int64_t d) {
            return static_cast<int64_t>(a) * 1000000 + static_cast<int64_t>(b) * 1000 + static_cast<int64_t>(c) + d;
        }));
    add(std::make_unique<coyote::cFunc<int32_t, int32_t>>(
        k_throws, bits, [](coyote::cThread*, int32_t) -> int32_t { throw std::runtime_error("boom"); }));
    add(std::make_unique<coyote::cFunc<int32_t, int32_t>>(k_slow, bits, [](coyote::cThread*, int32_t ms) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return ms;
    }));
    add(std::make_unique<coyote::cFunc<Pair, Pair>>(
        k_bytes, bits, [](coyote::cThread*, Pair p) { return Pair{p.b, p.a + p.b}; }));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: %s <name> <vfid> <app bitstream> [<tcp port>]\n", argv[0]);
        return 2;
    }
    try {
        const int32_t vfid = std::stoi(argv[2]);
        const bool remote = argc == 5;
        const int port = remote ? std::stoi(argv[4]) : static_cast<int>(coyote::DEF_PORT);
        if (port <= 0 || port > 65535) throw std::invalid_argument("port out of range");
        coyote::cService* svc = coyote::cService::getInstance(argv[1], remote, vfid, 0, true, static_cast<uint16_t>(port));
        add_functions(*svc, argv[3]);
        std::atomic<bool> failed{false};
        std::thread server([svc, &failed] {
            try {
                svc->run();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "pycoyote_test_service: run: %s\n", e.what());
                failed = true;
            }
        });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!svc->isRunning() && !failed && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (!svc->isRunning()) {
            svc->stop();
            server.join();
            return 1;
        }
        std::cout << "ready " << svc->getSocketPath() << std::endl;
        for (std::string line; std::getline(std::cin, line);) {
        }
        svc->stop();
        server.join();
        coyote::cService::releaseInstance(vfid);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pycoyote_test_service: %s\n", e.what());
        return 1;
    }
    return 0;
}
