// Example: a background service with two functions on two sim bitstreams (vector add, checksum) and a client
// submitting interleaved tasks; prints how many reconfigurations each scheduling policy costs.
// Run: COYOTE_BACKEND=sim ./service_policies [tasks]   (tasks: 1 .. 100000, default 200; writes app_vadd.bin and
// app_sum.bin in the current folder with coyote-sim-bitstream, from PATH or the build tree beside this example).
// Exits 1 when a task returns a wrong result.
#include <coyote/cConn.hpp>
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int32_t k_vadd = 0, k_sum = 1;

constexpr const char* k_usage = "usage: service_policies [tasks]   (tasks: 1 .. 100000, default 200)\n";

/// The task count of the command line; nullopt (after printing why) for anything but one whole number in range.
std::optional<int> parse_tasks(int argc, char** argv) {
    if (argc == 1) return 200;
    const std::string a = argv[1];
    int v = 0;
    bool ok = argc == 2 && !a.empty() && a.size() <= 6;
    for (const char c : a) {
        ok = ok && c >= '0' && c <= '9';
        if (ok) v = v * 10 + (c - '0');
    }
    if (ok && v >= 1 && v <= 100000) return v;
    if (argc > 2)
        std::cerr << "service_policies: one argument at most, got " << argc - 1 << "\n";
    else
        std::cerr << "service_policies: tasks must be a whole number in 1..100000, got '" << a << "'\n";
    return std::nullopt;
}

/// coyote-sim-bitstream: beside this example in the build tree (build/tools/), else from PATH.
std::string bitstream_tool() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    const auto built = exe.parent_path().parent_path() / "tools" / "coyote-sim-bitstream";
    if (!ec && std::filesystem::exists(built, ec)) return "'" + built.string() + "'";
    return "coyote-sim-bitstream";
}

/// Writes a sim app bitstream for `model` (what `coyote-sim-bitstream --model <model> -o <path>` does).
void write_bitstream(const std::string& path, const std::string& model) {
    const std::string cmd = bitstream_tool() + " --model " + model + " -o " + path;
    if (std::system(cmd.c_str()) != 0) {
        std::cerr << "cannot run '" << cmd << "' (is coyote-sim-bitstream on PATH?)\n";
        std::exit(1);
    }
}

/// Adds two 8-element float vectors through the vFPGA of the service's cThread.
float vadd_first(coyote::cThread* t, float a, float b) {
    auto* in0 = static_cast<float*>(t->getMem({coyote::CoyoteAllocType::REG, 32}));
    auto* in1 = static_cast<float*>(t->getMem({coyote::CoyoteAllocType::REG, 32}));
    auto* out = static_cast<float*>(t->getMem({coyote::CoyoteAllocType::REG, 32}));
    for (int i = 0; i < 8; ++i) in0[i] = a, in1[i] = b, out[i] = 0;
    t->invoke(coyote::CoyoteOper::LOCAL_READ, coyote::localSg{.addr = in0, .len = 32, .dest = 0});
    t->invoke(coyote::CoyoteOper::LOCAL_READ, coyote::localSg{.addr = in1, .len = 32, .dest = 1});
    t->invoke(coyote::CoyoteOper::LOCAL_WRITE, coyote::localSg{.addr = out, .len = 32, .dest = 0});
    while (t->checkCompleted(coyote::CoyoteOper::LOCAL_WRITE) != 1) std::this_thread::yield();
    t->clearCompleted();
    const float r = out[0];
    t->freeMem(in0), t->freeMem(in1), t->freeMem(out);
    return r;
}

/// Runs `tasks` interleaved tasks under each policy; returns how many results were wrong.
int compare_policies(int tasks) {
    int wrong = 0;
    write_bitstream("app_vadd.bin", "vadd");
    write_bitstream("app_sum.bin", "passthrough");
    ::setenv("COYOTE_SIM_RECONFIG_MS", "1", 0); // make each reconfiguration cost something
    for (coyote::SchedPolicy policy : {coyote::SchedPolicy::fcfs, coyote::SchedPolicy::reorder}) {
        coyote::cService* svc = coyote::cService::getInstance("policies", false, 0);
        svc->addFunction(std::make_unique<coyote::cFunc<float, float, float>>(k_vadd, "app_vadd.bin", vadd_first));
        svc->addFunction(std::make_unique<coyote::cFunc<uint64_t, uint64_t>>(
            k_sum, "app_sum.bin", [](coyote::cThread*, uint64_t n) { return n * (n + 1) / 2; }));
        svc->getScheduler()->setPolicy(policy);
        const uint64_t before = svc->getScheduler()->getAppReconfigurations();
        std::thread server([svc] { svc->run(); });
        while (!svc->isRunning()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const auto t0 = std::chrono::steady_clock::now();
        {
            coyote::cConn conn(svc->getSocketPath());
            std::vector<int32_t> tids;
            for (int i = 0; i < tasks; ++i)
                tids.push_back(i % 2 ? conn.iTask<uint64_t, uint64_t>(k_sum, uint64_t(i))
                                     : conn.iTask<float, float, float>(k_vadd, float(i), 0.5f));
            for (int i = 0; i < tasks; ++i) {
                const std::vector<char> r = conn.wait_result(tids[size_t(i)]);
                bool ok;
                if (i % 2) {
                    uint64_t v;
                    std::memcpy(&v, r.data(), sizeof(v));
                    ok = v == uint64_t(i) * uint64_t(i + 1) / 2;
                } else {
                    float v;
                    std::memcpy(&v, r.data(), sizeof(v));
                    ok = v == float(i) + 0.5f;
                }
                if (!ok) {
                    std::cerr << "wrong result for task " << i << "\n";
                    ++wrong;
                }
            }
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::cout << (policy == coyote::SchedPolicy::fcfs ? "fcfs   " : "reorder") << ": " << tasks << " tasks, "
                  << svc->getScheduler()->getAppReconfigurations() - before << " reconfigurations, " << ms << " ms\n";
        svc->stop();
        server.join();
        coyote::cService::releaseInstance(0);
    }
    return wrong;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
        std::cout << k_usage;
        return 0;
    }
    const std::optional<int> tasks = parse_tasks(argc, argv);
    if (!tasks) {
        std::cerr << k_usage;
        return 2;
    }
    try {
        const int wrong = compare_policies(*tasks);
        if (wrong > 0) {
            std::cerr << "service_policies: " << wrong << " task(s) returned a wrong result\n";
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "service_policies: " << e.what() << "\n";
        return 1;
    }
}
