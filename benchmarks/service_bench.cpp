// service_bench: task round trip of an empty function through cService / cConn over the Unix socket and TCP,
// against a plain Unix-socket echo of the same sizes in the same run (one process, sim backend).
#include <benchmark/benchmark.h>

#include <coyote/cConn.hpp>
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "rcnfg/bitstream_file.hpp"

namespace {

constexpr int32_t k_empty = 1;
const uint16_t k_port = static_cast<uint16_t>(30000 + ::getpid() % 20000);

std::string scratch(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / ("coyote-service-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}

/// Services on vFPGA 0 (Unix socket) and 1 (TCP), each with one empty function; started once.
struct Services {
    std::string key = scratch("key");
    coyote::cService* local = nullptr;
    coyote::cService* remote = nullptr;
    std::thread t_local, t_remote;

    Services() {
        ::setenv("COYOTE_SIM_SHELL", "n_fpga_reg=2", 0);
        ::setenv("COYOTE_SERVICE_BIND", "127.0.0.1", 0);
        std::ofstream(key) << "bench-key";
        std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        ::setenv("COYOTE_SERVICE_KEY_FILE", key.c_str(), 1);
        const auto bits = coyote::detail::rcnfg::encode_sim_bitstream({coyote::detail::rcnfg::SimBitstream::Kind::app, "passthrough", ""});
        const std::string app = scratch("app.bin");
        std::ofstream(app, std::ios::binary).write(bits.data(), static_cast<std::streamsize>(bits.size()));
        local = start(coyote::cService::getInstance("bench", false, 0), app, t_local);
        remote = start(coyote::cService::getInstance("bench-tcp", true, 1, 0, true, k_port), app, t_remote);
    }
    static coyote::cService* start(coyote::cService* s, const std::string& app, std::thread& t) {
        s->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t>>(k_empty, app, [](coyote::cThread*, int32_t x) { return x; }));
        t = std::thread([s] { s->run(); });
        while (!s->isRunning()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return s;
    }
    ~Services() {
        local->stop();
        remote->stop();
        t_local.join();
        t_remote.join();
    }
};

Services& services() {
    static Services s;
    return s;
}

void BM_EchoUnix(benchmark::State& state) {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    std::thread echo([fd = sv[1]] {
        char req[16], rep[12] = {};
        while (::recv(fd, req, sizeof(req), MSG_WAITALL) == sizeof(req))
            if (::send(fd, rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep)) break;
    });
    char req[16] = {}, rep[12];
    for (auto _ : state) {
        ::send(sv[0], req, sizeof(req), MSG_NOSIGNAL);
        ::recv(sv[0], rep, sizeof(rep), MSG_WAITALL);
    }
    ::shutdown(sv[0], SHUT_RDWR);
    echo.join();
    ::close(sv[0]);
    ::close(sv[1]);
}

void BM_TaskUnix(benchmark::State& state) {
    coyote::cConn conn(services().local->getSocketPath());
    for (auto _ : state) benchmark::DoNotOptimize(conn.task<int32_t, int32_t>(k_empty, 1));
}

void BM_TaskTcp(benchmark::State& state) {
    coyote::cConn conn("127.0.0.1", k_port, services().key);
    for (auto _ : state) benchmark::DoNotOptimize(conn.task<int32_t, int32_t>(k_empty, 1));
}

BENCHMARK(BM_EchoUnix)->UseRealTime();
BENCHMARK(BM_TaskUnix)->UseRealTime();
BENCHMARK(BM_TaskTcp)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
