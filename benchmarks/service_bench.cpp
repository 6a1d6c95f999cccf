// service_bench: task round trip of an empty function through cService / cConn over the Unix socket and TCP,
// each against a plain Unix-socket echo of the same sizes timed in the same loop (one process, sim backend).
#include <benchmark/benchmark.h>

#include <coyote/cConn.hpp>
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "rcnfg/bitstream_file.hpp"
#include "support/bench_args.hpp"
#include "support/free_port.hpp"

namespace {

constexpr int32_t k_empty = 1;
int g_failures = 0; ///< benchmarks that failed their check (the exit status is then 1)

double median(std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

/// The run's scratch directory (key and bitstream files): private to this user, removed by ~Services.
std::string make_scratch() {
    std::string dir = (std::filesystem::temp_directory_path() / "coyote-service-bench.XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) coyote::throw_errno("mkdtemp", "creating " + dir);
    return dir;
}

/// Services on vFPGA 0 (Unix socket) and 1 (TCP, on a free port), each with one empty function; started once.
struct Services {
    std::string dir = make_scratch();
    std::string key = dir + "/key";
    uint16_t port = coyote::bench::free_tcp_port();
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
        const std::string app = dir + "/app.bin";
        std::ofstream(app, std::ios::binary).write(bits.data(), static_cast<std::streamsize>(bits.size()));
        local = start(coyote::cService::getInstance("bench", false, 0), app, t_local);
        remote = start(coyote::cService::getInstance("bench-tcp", true, 1, 0, true, port), app, t_remote);
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
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

Services& services() {
    static Services s;
    return s;
}

/// A plain Unix-socket echo of a task's sizes (16-byte request, 12-byte reply) served by its own thread.
class Echo {
public:
    Echo() {
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_);
        thread_ = std::thread([fd = sv_[1]] {
            char req[16], rep[12] = {};
            while (::recv(fd, req, sizeof(req), MSG_WAITALL) == sizeof(req))
                if (::send(fd, rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep)) break;
        });
    }
    ~Echo() {
        ::shutdown(sv_[0], SHUT_RDWR);
        thread_.join();
        ::close(sv_[0]);
        ::close(sv_[1]);
    }
    void round_trip() {
        char req[16] = {}, rep[12];
        ::send(sv_[0], req, sizeof(req), MSG_NOSIGNAL);
        ::recv(sv_[0], rep, sizeof(rep), MSG_WAITALL);
    }

private:
    int sv_[2] = {-1, -1};
    std::thread thread_;
};

/// CPU time of the whole process (client, service and echo threads alike).
std::chrono::nanoseconds process_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

/// Empty-task round trips on `conn`, each right after an echo round trip: both see the same machine load.
/// Reports the task's time; counters echo_us, task_us and x_echo (task / echo of the means, the target is <= 2),
/// ratio_vs_echo (median echo / median task, as every suite's ratio: above 1 the task is faster), and the CPU time
/// of all threads per round trip, cpu_echo_us and cpu_task_us (less sensitive to a loaded machine).
void task_round_trips(benchmark::State& state, coyote::cConn& conn) {
    Echo echo;
    using Clock = std::chrono::steady_clock;
    Clock::duration echo_total{}, task_total{};
    std::chrono::nanoseconds echo_cpu{}, task_cpu{};
    std::vector<double> echo_samples, task_samples;
    int32_t i = 0;
    for (auto _ : state) {
        const auto c0 = process_cpu();
        const auto t0 = Clock::now();
        echo.round_trip();
        const auto t1 = Clock::now();
        const auto c1 = process_cpu();
        const int32_t got = conn.task<int32_t, int32_t>(k_empty, ++i);
        const auto t2 = Clock::now();
        const auto c2 = process_cpu();
        if (got != i) {
            ++g_failures;
            state.SkipWithError(("verification failed: task " + std::to_string(i) + " returned " +
                                 std::to_string(got)).c_str());
            break;
        }
        echo_samples.push_back(std::chrono::duration<double>(t1 - t0).count());
        task_samples.push_back(std::chrono::duration<double>(t2 - t1).count());
        echo_total += t1 - t0;
        task_total += t2 - t1;
        echo_cpu += c1 - c0;
        task_cpu += c2 - c1;
        state.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
    }
    const double n = static_cast<double>(state.iterations());
    auto per_trip_us = [n](auto d) { return std::chrono::duration<double, std::micro>(d).count() / n; };
    state.counters["echo_us"] = per_trip_us(echo_total);
    state.counters["task_us"] = per_trip_us(task_total);
    state.counters["x_echo"] = per_trip_us(task_total) / per_trip_us(echo_total);
    if (!task_samples.empty())
        state.counters["ratio_vs_echo"] = median(std::move(echo_samples)) / median(std::move(task_samples));
    state.counters["cpu_echo_us"] = per_trip_us(echo_cpu);
    state.counters["cpu_task_us"] = per_trip_us(task_cpu);
}

void BM_TaskUnix(benchmark::State& state) {
    coyote::cConn conn(services().local->getSocketPath());
    task_round_trips(state, conn);
}

void BM_TaskTcp(benchmark::State& state) {
    coyote::cConn conn("127.0.0.1", services().port, services().key);
    task_round_trips(state, conn);
}

BENCHMARK(BM_TaskUnix)->UseManualTime();
BENCHMARK(BM_TaskTcp)->UseManualTime();

}  // namespace

/// Google Benchmark's main with the suites' checks: bad flag values are exit 2, a failed check or a report that
/// could not be written exit 1.
int main(int argc, char** argv) {
    namespace cb = coyote::bench;
    const cb::ArgCheck check = cb::check_args(argc, argv);
    if (check.help) {
        cb::print_usage(stdout, argv[0], "");
        return 0;
    }
    if (!check.error.empty()) {
        std::fprintf(stderr, "service_bench: %s\n", check.error.c_str());
        return 2;
    }
    std::vector<std::string> storage{argv[0]};
    for (auto& a : cb::with_default_color(argc, argv)) storage.push_back(std::move(a));
    std::vector<char*> args;
    for (auto& a : storage) args.push_back(a.data());
    args.push_back(nullptr);
    int n = static_cast<int>(storage.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
    std::string failure;
    try {
        const std::size_t ran = cb::run_checked(storage, failure);
        benchmark::Shutdown();
        if (ran == 0 && !cb::listing_only(storage)) failure = "no benchmark ran";
    } catch (const std::exception& e) {
        failure = e.what();
    }
    if (!failure.empty()) std::fprintf(stderr, "service_bench: %s\n", failure.c_str());
    if (g_failures > 0) std::fprintf(stderr, "service_bench: %d benchmark(s) failed (see above)\n", g_failures);
    return failure.empty() && g_failures == 0 ? 0 : 1;
}
