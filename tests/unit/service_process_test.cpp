// cService across processes on the sim backend: a function moving a client's own buffers through the vFPGA,
// addresses the client does not own, SIGTERM with tasks in flight, group access to the socket, idle clients.
// Client and server processes are this binary re-run on one of its DISABLED_ helper tests.
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>

#include "service_test_support.hpp"
#include "support/helper_process.hpp"
#include "unit/rdma_test_support.hpp"

namespace {

using namespace service_test; // NOLINT: the helpers of every service test
using coyote_test::error_of;

constexpr int32_t k_vadd = 20;
// Service names carry the pid of the test process (a helper's parent): runs of other checkouts on the machine
// do not meet at the same socket.
std::string mem_service(pid_t test_process) { return "client-mem-" + std::to_string(test_process); }
std::string socket_of(const std::string& service) { return "/tmp/coyote-daemon-dev-0-vfid-0-" + service; }
/// The socket of the memory tests' service, for a helper (a child of the test process).
std::string mem_path() { return socket_of(mem_service(::getppid())); }

/// A range no mapping covers and none will: probed with MAP_FIXED_NOREPLACE far below where the kernel places
/// mappings (top-down from the stack), then unmapped. The first candidates lie in ThreadSanitizer's low
/// application range (AddressSanitizer's shadow gap refuses them), the second outside AddressSanitizer's shadow and
/// allocator ranges (ThreadSanitizer's metadata: it would drop the hint, so they must come second).
/// An address merely unmapped after use is not enough: an allocator (ASan's among them) may map into the hole.
void* unmapped_range(size_t bytes) {
    for (const auto& [from, to] : {std::pair<uintptr_t, uintptr_t>{0x004000000000, 0x005000000000},
                                   std::pair<uintptr_t, uintptr_t>{0x3f0000000000, 0x400000000000}}) {
        for (uintptr_t a = from; a < to; a += 0x10000000) {
            void* p = ::mmap(reinterpret_cast<void*>(a), bytes, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (p == MAP_FAILED) continue;
            ::munmap(p, bytes);
            if (p == reinterpret_cast<void*>(a)) return p;
        }
    }
    return nullptr;
}

/// A function like Coyote's example 10: float vectors a + b into c, all three the client's buffers, by address.
void add_vadd(coyote::cService* svc) {
    svc->addFunction(std::make_unique<coyote::cFunc<int32_t, uint64_t, uint64_t, uint64_t, uint64_t>>(
        k_vadd, app_bitstream("app_vadd.bin", "vadd"),
        [](coyote::cThread* t, uint64_t a, uint64_t b, uint64_t c, uint64_t n) -> int32_t {
            const auto len = static_cast<uint32_t>(n * sizeof(float));
            coyote::localSg sa{.addr = reinterpret_cast<void*>(a), .len = len, .dest = 0};
            coyote::localSg sb{.addr = reinterpret_cast<void*>(b), .len = len, .dest = 1};
            coyote::localSg sc{.addr = reinterpret_cast<void*>(c), .len = len, .dest = 0};
            for (const auto* sg : {&sa, &sb, &sc}) t->userMap(sg->addr, sg->len); // every address checked first
            t->invoke(coyote::CoyoteOper::LOCAL_WRITE, sc);
            t->invoke(coyote::CoyoteOper::LOCAL_READ, sa);
            t->invoke(coyote::CoyoteOper::LOCAL_READ, sb);
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (t->checkCompleted(coyote::CoyoteOper::LOCAL_WRITE) < 1 ||
                   t->checkCompleted(coyote::CoyoteOper::LOCAL_READ) < 2)
                if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("vadd did not complete");
            t->clearCompleted();
            return 0;
        }));
}

/// This binary re-run on helper test ServiceHelper.DISABLED_`name`; the child's pid (output to `out_fd` when >= 0,
/// else discarded).
pid_t spawn_helper(const std::string& name, int out_fd = -1) {
    return coyote_test::spawn_helper("ServiceHelper.DISABLED_" + name, -1, out_fd);
}

using coyote_test::wait_exit;

/// Runs helper test `name` to its end (60 s at most): its exit status and output.
std::pair<int, std::string> run_helper(const std::string& name) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
    const pid_t child = spawn_helper(name, p[1]);
    ::close(p[1]);
    const std::string out = coyote_test::read_output(p[0], "", std::chrono::seconds(60));
    ::close(p[0]);
    return {wait_exit(child, std::chrono::seconds(5)), out};
}

/// Runs helper test `name` and expects it to pass (its output shown when it does not).
void expect_helper_passes(const std::string& name) {
    const auto [status, out] = run_helper(name);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

/// Random floats in [-512, 512).
std::vector<float> random_floats(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dis(-512.0f, 512.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dis(gen);
    return v;
}

// ---- helpers run in a child process ----

TEST(ServiceHelper, DISABLED_VaddClient) {
    coyote::cConn conn(mem_path());
    for (const size_t n : {size_t{1024}, size_t{700000}}) { // the second spans several 1 MiB staging buffers
        const auto a = random_floats(n, 1), b = random_floats(n, 2);
        std::vector<float> c(n, -1.0f);
        const int32_t rc = conn.task<int32_t, uint64_t, uint64_t, uint64_t, uint64_t>(
            k_vadd, reinterpret_cast<uint64_t>(a.data()), reinterpret_cast<uint64_t>(b.data()),
            reinterpret_cast<uint64_t>(c.data()), n);
        EXPECT_EQ(rc, 0);
        size_t bad = 0;
        for (size_t i = 0; i < n; ++i) bad += c[i] != a[i] + b[i];
        EXPECT_EQ(bad, 0u) << "of " << n << " elements";
    }
}

TEST(ServiceHelper, DISABLED_BadAddressClient) {
    coyote::cConn conn(mem_path());
    const size_t n = 4096;
    const auto a = random_floats(n, 3), b = random_floats(n, 4);
    std::vector<float> c(n, 0.0f);
    const size_t bytes = n * sizeof(float);
    void* ro = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* none = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* gone = unmapped_range(bytes); // an address this process does not own
    ASSERT_NE(ro, MAP_FAILED);
    ASSERT_NE(none, MAP_FAILED);
    ASSERT_NE(gone, nullptr);
    auto vadd = [&](const void* x, const void* y, const void* z) {
        return error_of([&] {
            conn.task<int32_t, uint64_t, uint64_t, uint64_t, uint64_t>(
                k_vadd, reinterpret_cast<uint64_t>(x), reinterpret_cast<uint64_t>(y), reinterpret_cast<uint64_t>(z), n);
        });
    };
    const int rejected = static_cast<int>(coyote::Errc::remote_rejected);
    EXPECT_EQ(vadd(gone, b.data(), c.data()).first, rejected);          // unmapped input
    EXPECT_EQ(vadd(a.data(), none, c.data()).first, rejected);          // input the process may not read
    EXPECT_EQ(vadd(a.data(), b.data(), ro).first, rejected);            // read-only output
    EXPECT_EQ(vadd(a.data(), b.data(), reinterpret_cast<void*>(8)).first, rejected); // the zero page
    EXPECT_EQ(vadd(a.data(), b.data(), c.data()).first, 0); // the next task of the same client works
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(c[i], a[i] + b[i]) << i;
    ::munmap(ro, bytes);
    ::munmap(none, bytes);
}

TEST(ServiceHelper, DISABLED_DyingVaddClient) {
    coyote::cConn conn(mem_path());
    const size_t n = 700000;
    std::vector<float> a(n, 1.0f), b(n, 2.0f), c(n, 0.0f);
    conn.iTask<int32_t, uint64_t, uint64_t, uint64_t, uint64_t>(k_vadd, reinterpret_cast<uint64_t>(a.data()),
                                                                 reinterpret_cast<uint64_t>(b.data()),
                                                                 reinterpret_cast<uint64_t>(c.data()), n);
    ::_exit(0); // gone while the service works on its buffers
}

TEST(ServiceHelper, DISABLED_ForkedClient) {
    auto conn = std::make_unique<coyote::cConn>(mem_path());
    EXPECT_EQ((conn->task<int32_t, int32_t, int32_t>(k_add, 1, 2)), 3);
    const pid_t child = ::fork();
    if (child == 0) { // the inherited connection is refused with the reason; dropping it leaves the parent's
        const auto [code, msg] = error_of([&] { conn->task<int32_t, int32_t, int32_t>(k_add, 1, 2); });
        const bool clear = code == static_cast<int>(coyote::Errc::invalid_argument) &&
                           msg.find("fork") != std::string::npos;
        conn.reset();
        ::_exit(clear ? 0 : 1);
    }
    EXPECT_EQ(wait_exit(child, std::chrono::seconds(20)), 0) << "the child did not get a clear error";
    EXPECT_EQ((conn->task<int32_t, int32_t, int32_t>(k_add, 20, 22)), 42);
}

/// Serves "sigterm-<pid>" (vFPGA 0) with start() and "bystander-<pid>" (vFPGA 1) with run(): SIGTERM ends start() only.
TEST(ServiceHelper, DISABLED_SigtermServer) {
    coyote_test::EnvGuard fg("COYOTE_SERVICE_FOREGROUND", "1");
    coyote_test::EnvGuard shell("COYOTE_SIM_SHELL", "n_fpga_reg=2");
    Running bystander("bystander-" + std::to_string(::getpid()), 1);
    const std::string name = "sigterm-" + std::to_string(::getpid());
    coyote::cService* svc = coyote::cService::getInstance(name, false, 0);
    svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t>>(
        k_slow, app_bitstream("app_a.bin", "passthrough"), [started = socket_of(name) + ".started"](coyote::cThread*, int32_t ms) {
            std::ofstream{started}; // tells the test a task runs
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return ms;
        }));
    svc->start(); // returns after SIGTERM, the tasks in flight finished or failed
    EXPECT_TRUE(bystander.svc->isRunning());
    coyote::cConn conn(bystander.svc->getSocketPath());
    EXPECT_EQ((conn.task<int32_t, int32_t, int32_t>(k_add, 2, 3)), 5);
    coyote::cService::releaseInstance(0);
}

// ---- tests ----

TEST(ServiceMemory, AFunctionAddsTheClientsVectorsIntoItsBuffer) {
    Running r(mem_service(::getpid()), 0, add_vadd);
    expect_helper_passes("VaddClient");
}

TEST(ServiceMemory, AnAddressTheClientDoesNotOwnIsAnErrorReply) {
    Running r(mem_service(::getpid()), 0, add_vadd);
    expect_helper_passes("BadAddressClient");
    coyote::cConn conn(r.svc->getSocketPath()); // and the service keeps serving
    EXPECT_EQ((conn.task<int32_t, int32_t, int32_t>(k_add, 20, 22)), 42);
}

TEST(ServiceMemory, AClientDyingWhileItsBuffersAreUsedDoesNotHurtTheService) {
    Running r(mem_service(::getpid()), 0, add_vadd);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(run_helper("DyingVaddClient").first, 0);
    expect_helper_passes("VaddClient"); // others' buffers still move correctly
}

TEST(ServiceMemory, AForkedChildCannotUseItsParentsConnection) {
    Running r(mem_service(::getpid()), 0, add_vadd);
    expect_helper_passes("ForkedClient");
}

TEST(ServiceSignals, SigtermWithTasksInFlightAnswersEveryTaskAndSparesTheOtherService) {
    const pid_t server = spawn_helper("SigtermServer");
    const std::string path = socket_of("sigterm-" + std::to_string(server));
    auto give_up = [&](const char* why) {
        ::kill(server, SIGKILL);
        ::waitpid(server, nullptr, 0);
        FAIL() << why;
    };
    if (!coyote_test::eventually([&] { return ::access(path.c_str(), F_OK) == 0; })) return give_up("no socket");
    std::vector<int32_t> tids;
    {
        coyote::cConn conn(path);
        for (int i = 0; i < 4; ++i) tids.push_back(conn.iTask<int32_t, int32_t>(k_slow, 300));
        const std::string started = path + ".started";
        if (!coyote_test::eventually([&] { return ::access(started.c_str(), F_OK) == 0; })) return give_up("no task ran");
        ::unlink(started.c_str());
        ASSERT_EQ(::kill(server, SIGTERM), 0);
        const auto t0 = std::chrono::steady_clock::now();
        int ok = 0, failed = 0;
        for (int32_t tid : tids) {
            const auto [code, msg] = error_of([&] { EXPECT_EQ(conn.wait_result(tid).size(), sizeof(int32_t)); });
            (code == 0 ? ok : failed)++;
            if (code != 0) {
                EXPECT_EQ(code, static_cast<int>(coyote::Errc::peer_gone)) << msg;
            }
        }
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)); // no hang
        EXPECT_GE(ok, 1);     // the running task finished and its result was sent
        EXPECT_GE(failed, 1); // the queued tasks were failed, not run after the signal
    }
    EXPECT_EQ(wait_exit(server, std::chrono::seconds(20)), 0) << "the server with start() did not end cleanly";
}

TEST(ServiceAccess, MembersOfTheConfiguredGroupMayConnect) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run clients under a second uid and other groups";
    constexpr gid_t group = 65533, other = 65534;
    coyote_test::EnvGuard env("COYOTE_SERVICE_GROUP", std::to_string(group).c_str());
    Running r("group-" + std::to_string(::getpid()));
    const std::string path = r.svc->getSocketPath();
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_gid, group);
    for (const auto& [gid, groups] : {std::pair{group, std::vector<gid_t>{}}, std::pair{other, std::vector{group}}}) {
        const OtherUserReply reply = other_user_task(path, gid, groups); // primary group, then supplementary
        EXPECT_EQ(reply.code, 0) << "gid " << gid;
        EXPECT_EQ(reply.tid, 7);
        EXPECT_EQ(reply.value, 42);
    }
    EXPECT_EQ(other_user_task(path, other, {}).code, -100); // outside the group: the socket's mode keeps it out
    ::chmod(path.c_str(), 0666);                            // and past the mode, the peer check does
    const OtherUserReply refused = other_user_task(path, other, {});
    EXPECT_EQ(refused.code, 4);
    EXPECT_EQ(refused.tid, -1);
}

TEST(ServiceAccess, AnUnknownGroupIsAClearError) {
    coyote_test::EnvGuard env("COYOTE_SERVICE_GROUP", "no-such-group-coyote");
    coyote::cService* svc = coyote::cService::getInstance("bad-group-" + std::to_string(::getpid()), false, 0);
    const auto [code, msg] = error_of([&] { svc->run(); });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument));
    EXPECT_NE(msg.find("no-such-group-coyote"), std::string::npos) << msg;
    coyote::cService::releaseInstance(0);
}

TEST(ServiceAccess, AnIdleClientIsDisconnectedButABusyOneIsNot) {
    coyote_test::EnvGuard env("COYOTE_SERVICE_IDLE_TIMEOUT_MS", "300");
    Running r("idle-" + std::to_string(::getpid()));
    coyote::cConn busy(r.svc->getSocketPath());
    EXPECT_EQ((busy.task<int32_t, int32_t>(k_slow, 800)), 800); // a task longer than the idle deadline is not idleness
    const int fd = raw_connect(r.svc->getSocketPath());
    ASSERT_GE(fd, 0);
    const pid_t me = ::getpid();
    ASSERT_EQ(::send(fd, &me, sizeof(me), 0), static_cast<ssize_t>(sizeof(me)));
    const auto t0 = std::chrono::steady_clock::now();
    const auto [code, tid] = raw_reply(fd);
    EXPECT_EQ(code, static_cast<int32_t>(coyote::TaskError::timeout));
    EXPECT_EQ(tid, -1);
    EXPECT_TRUE(closed_by_peer(fd));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    ::close(fd);
}

}  // namespace

/// The doctor test's client: waits in cConn for a 900 ms task with COYOTE_STALL_WARN_MS=200 (a helper re-run, not a
/// fork: the forked copy of a threaded test process cannot start threads under ThreadSanitizer).
TEST(ServiceHelper, DISABLED_SlowTaskClient) {
    ::setenv("COYOTE_STALL_WARN_MS", "200", 1);
    std::printf("helper pid %d\n", static_cast<int>(::getpid()));
    std::fflush(stdout);
    coyote::cConn conn(socket_of("doctor-" + std::to_string(::getppid())));
    EXPECT_EQ((conn.task<int32_t, int32_t>(k_slow, 900)), 900);
}

TEST(ServiceDoctor, AClientWaitingForASlowTaskIsReported) {
    // The client's task sleeps 900 ms in the service, so its wait in cConn is reported at least once before the
    // reply comes.
    Running r("doctor-" + std::to_string(::getpid()));
    const std::string path = r.svc->getSocketPath();
    const auto [rc, err] = run_helper("SlowTaskClient");
    EXPECT_EQ(rc, 0) << err;
    const auto at = err.find("helper pid ");
    ASSERT_NE(at, std::string::npos) << err;
    const std::string pid = err.substr(at + 11, err.find('\n', at) - at - 11);
    EXPECT_NE(err.find("coyote stall doctor [pid " + pid + " wait]: waiting 0."), std::string::npos) << err;
    EXPECT_NE(err.find("in cConn for the reply to task "), std::string::npos) << err;
    EXPECT_NE(err.find("from the service at " + path), std::string::npos) << err;
    EXPECT_NE(err.find("likeliest cause: the service has not answered"), std::string::npos) << err;
}
