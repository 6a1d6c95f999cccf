// Tests of the stall doctor (src/diag): stalls set up between two forked processes on the sim backend must be
// diagnosed with the right cause (peer never posts, peer died, WRITE refused by the target's window, and not blamed
// for a stall on another queue pair, a full command FIFO); the diagnosis on demand (printDebug, SIGUSR1);
// COYOTE_STALL_WARN_MS=0 keeps it quiet. Waits that poll no counter (the out-of-band exchange, the vFPGA lock)
// are reported with what they wait for and why.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <coyote/cThread.hpp>

#include "diag/doctor.hpp"
#include "diag/status.hpp"
#include "diag/wait.hpp"
#include "unit/rdma_test_support.hpp"
#include "unit/test_support.hpp"

namespace {

using coyote::CoyoteOper;
using coyote::cThread;
using coyote_test::Child;

/// A file for a child's stderr, removed at the end of the test.
class Capture {
public:
    Capture() {
        char tmpl[] = "/tmp/coyote_stall_test_XXXXXX";
        const int fd = ::mkstemp(tmpl);
        if (fd >= 0) ::close(fd);
        path_ = tmpl;
    }
    ~Capture() { ::unlink(path_.c_str()); }
    /// In the child: sends stderr to the file.
    void redirect() const {
        const int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC);
        if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    }
    std::string text() const {
        std::ifstream in(path_);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    std::string path_;
};

/// Whether `text` holds `needle`.
bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

/// The sim backend with short doctor periods.
void stall_env(const char* warn_ms = "300") {
    coyote_test::child_env("shm");
    ::setenv("COYOTE_STALL_WARN_MS", warn_ms, 1);
}

/// Polls checkCompleted(oper) for `seconds` (errors a poll raises are swallowed: the doctor must still speak).
void poll_for(cThread& t, CoyoteOper oper, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        try {
            (void)t.checkCompleted(oper);
        } catch (const coyote::Error&) {
        }
        std::this_thread::yield();
    }
}

/// The server side of a pair: connects as server on `port`, polls LOCAL_WRITE for 2 s, then releases the client.
int waiting_server(const Capture& cap, uint16_t port, bool release_client = true, const char* warn_ms = "300") {
    cap.redirect();
    stall_env(warn_ms);
    cThread t(0, ::getpid(), 0);
    t.initRDMA(1 << 16, port);
    t.getOob()->sync();
    poll_for(t, CoyoteOper::LOCAL_WRITE, 2.0);
    if (release_client) t.getOob()->send_ack(1);
    return 0;
}

/// The client side: connects, then runs `then` (never posting).
int client_then(uint16_t port, const char* warn_ms, const std::function<void(cThread&)>& then) {
    stall_env(warn_ms);
    cThread t(0, ::getpid(), 1);
    t.initRDMA(1 << 16, port, "127.0.0.1");
    t.getOob()->sync();
    then(t);
    return 0;
}

/// The client side that connects and never posts, until the server releases it.
int silent_client(uint16_t port, const char* warn_ms = "300") {
    return client_then(port, warn_ms, [](cThread& t) { (void)t.getOob()->read_ack(); });
}

TEST(StallDoctor, PeerThatNeverPosts) {
    const uint16_t port = coyote_test::free_port();
    Capture cap;
    Child server([&] { return waiting_server(cap, port); });
    Child client([&] { return silent_client(port); });
    ASSERT_EQ(client.wait(), 0);
    ASSERT_EQ(server.wait(), 0);
    const std::string err = cap.text();
    EXPECT_TRUE(has(err, "polled counter LOCAL_WRITE = 0")) << err;
    EXPECT_TRUE(has(err, "peer process " + std::to_string(client.pid()) + ": alive")) << err;
    EXPECT_TRUE(has(err, "likeliest cause: peer never posted")) << err;
}

TEST(StallDoctor, PeerThatDied) {
    const uint16_t port = coyote_test::free_port();
    Capture cap;
    Child server([&] { return waiting_server(cap, port, false); });
    Child client([&] { return client_then(port, "300", [](cThread&) { ::raise(SIGKILL); }); }); // dies silently
    EXPECT_EQ(client.wait(), 128 + SIGKILL);
    ASSERT_EQ(server.wait(), 0);
    const std::string err = cap.text();
    EXPECT_TRUE(has(err, "GONE")) << err;
    EXPECT_TRUE(has(err, "likeliest cause: peer gone: process " + std::to_string(client.pid()))) << err;
}

TEST(StallDoctor, PeerThatIsStopped) {
    const uint16_t port = coyote_test::free_port();
    Capture cap;
    Child server([&] { return waiting_server(cap, port, false); });
    Child client([&] { return client_then(port, "300", [](cThread&) { ::raise(SIGSTOP); }); }); // until killed
    ASSERT_EQ(server.wait(), 0);
    const std::string err = cap.text();
    EXPECT_TRUE(has(err, "alive but STOPPED")) << err;
    EXPECT_TRUE(has(err, "likeliest cause: peer stopped: process " + std::to_string(client.pid()))) << err;
}

TEST(StallDoctor, WriteRefusedByTheTargetsWindow) {
    const uint16_t port = coyote_test::free_port();
    Capture target_err, initiator_err;
    Child server([&] { return waiting_server(target_err, port); });
    Child client([&] {
        initiator_err.redirect();
        stall_env();
        cThread t(0, ::getpid(), 1);
        void* buf = t.initRDMA(1 << 16, port, "127.0.0.1");
        t.getOob()->sync(); // both queue pairs are connected
        // 1 MiB past the target's 64 KiB buffer: no window covers it.
        const auto outside = reinterpret_cast<uint64_t>(t.getQpair()->remote.vaddr) + (1 << 20);
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, buf, outside, 64);
        const coyote::Error e = coyote_test::wait_error(t);
        std::fprintf(stderr, "initiator got: %s\n", e.what());
        poll_for(t, CoyoteOper::REMOTE_RDMA_WRITE, 1.5); // the program keeps waiting for its WRITE
        (void)t.getOob()->read_ack();
        return 0;
    });
    ASSERT_EQ(client.wait(), 0);
    ASSERT_EQ(server.wait(), 0);
    const std::string target = target_err.text(), initiator = initiator_err.text();
    EXPECT_TRUE(has(target, "likeliest cause: window or rkey refused: this vFPGA's NIC refused 1 request(s) of the "
                          "peer (bounds x 1)")) << target;
    EXPECT_TRUE(has(initiator, "likeliest cause: window or rkey refused: the peer's NIC refused 1 request(s) "
                             "(bounds x 1), the latest to this queue pair (bounds) ")) << initiator;
    EXPECT_TRUE(has(target, "refused by this NIC: 1 (the latest to this queue pair ")) << target;
    EXPECT_TRUE(has(initiator, "RDMA_WRITE 1/0")) << initiator;
}

TEST(StallDoctor, RefusalOnAnotherQueuePairIsNotTheCause) {
    // Two queue pairs between the same two vFPGAs: a WRITE on the first is refused, then both sides wait on the
    // second, where nobody posts. The NICs counted the refusal, but not on the stalled queue pair.
    const uint16_t port_a = coyote_test::free_port(), port_b = coyote_test::free_port();
    Capture target_err, initiator_err;
    Child server([&] {
        target_err.redirect();
        stall_env();
        cThread a(0, ::getpid(), 0), b(0, ::getpid(), 0);
        a.initRDMA(1 << 16, port_a);
        a.getOob()->sync();
        b.initRDMA(1 << 16, port_b);
        b.getOob()->sync();
        poll_for(b, CoyoteOper::LOCAL_WRITE, 2.0);
        b.getOob()->send_ack(1);
        return 0;
    });
    Child client([&] {
        initiator_err.redirect();
        stall_env();
        cThread a(0, ::getpid(), 1), b(0, ::getpid(), 1);
        void* buf = a.initRDMA(1 << 16, port_a, "127.0.0.1");
        a.getOob()->sync();
        b.initRDMA(1 << 16, port_b, "127.0.0.1");
        b.getOob()->sync();
        const auto outside = reinterpret_cast<uint64_t>(a.getQpair()->remote.vaddr) + (1 << 20);
        a.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, buf, outside, 64);
        (void)coyote_test::wait_error(a);
        poll_for(b, CoyoteOper::LOCAL_WRITE, 1.5); // waits on the other queue pair, where the peer never writes
        (void)b.getOob()->read_ack();
        return 0;
    });
    ASSERT_EQ(client.wait(), 0);
    ASSERT_EQ(server.wait(), 0);
    const std::string target = target_err.text(), initiator = initiator_err.text();
    EXPECT_TRUE(has(target, "refused by this NIC: 1,")) << target; // counted, on the other queue pair
    EXPECT_TRUE(has(initiator, "by the peer's NIC: 1\n")) << initiator;
    for (const auto* text : {&target, &initiator}) {
        EXPECT_TRUE(has(*text, "likeliest cause: peer never posted")) << *text;
        EXPECT_FALSE(has(*text, "likeliest cause: window or rkey refused")) << *text;
    }
}

TEST(StallDoctor, CommandFifoThatStaysFull) {
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env();
        ::setenv("COYOTE_POST_TIMEOUT_MS", "2000", 1);
        cThread t(0, ::getpid(), 0);
        void* buf = t.getMem({coyote::CoyoteAllocType::REG, 4096});
        // LOCAL_WRITEs wait for user-logic output that never comes (nothing is read in): the FIFO fills up.
        try {
            for (int i = 0; i < coyote::CMD_FIFO_DEPTH; ++i)
                t.invoke(CoyoteOper::LOCAL_WRITE, coyote::localSg{.addr = buf, .len = 64});
        } catch (const coyote::Error& e) {
            std::fprintf(stderr, "invoke gave up: %s\n", e.what());
            return e.code() == coyote::make_error_code(coyote::Errc::timeout) ? 0 : 3;
        }
        return 4;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
    const std::string err = cap.text();
    EXPECT_TRUE(has(err, "likeliest cause: back-pressure: the command FIFO of ctid 0 stays full (22 LOCAL_WRITE "
                       "outstanding)")) << err;
    EXPECT_TRUE(has(err, "LOCAL_WRITE 22/0")) << err;
}

TEST(StallDoctor, AnIdleCThreadOfAProcessThatProgressesIsNotReported) {
    // As the collectives engine probes the queue pairs a schedule does not use: one cThread moves data, another is
    // polled now and then with nothing outstanding. Commands without `last` complete nothing and are not counted.
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env();
        cThread busy(0, ::getpid(), 0), idle(0, ::getpid(), 0);
        auto* src = static_cast<uint8_t*>(busy.getMem({coyote::CoyoteAllocType::REG, 4096}));
        auto* dst = static_cast<uint8_t*>(busy.getMem({coyote::CoyoteAllocType::REG, 4096}));
        coyote::localSg s{.addr = src, .len = 4096}, d{.addr = dst, .len = 4096};
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        uint32_t signalled = 0;
        while (std::chrono::steady_clock::now() < end) {
            busy.invoke(CoyoteOper::LOCAL_TRANSFER, s, d, false); // unsignalled
            busy.invoke(CoyoteOper::LOCAL_TRANSFER, s, d);
            ++signalled;
            coyote_test::check(coyote_test::wait_completed(busy, CoyoteOper::LOCAL_TRANSFER, signalled),
                               "transfer " + std::to_string(signalled) + " did not complete");
            (void)idle.checkCompleted(CoyoteOper::LOCAL_WRITE);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        testing::internal::CaptureStdout();
        busy.printDebug();
        const std::string out = testing::internal::GetCapturedStdout();
        coyote_test::check(!has(out, "not completed") && !has(out, "outstanding"), "busy cThread: " + out);
        return 0;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
    EXPECT_EQ(cap.text().find("coyote stall doctor"), std::string::npos) << cap.text();
}

TEST(StallDoctor, QuietWhenOff) {
    const uint16_t port = coyote_test::free_port();
    Capture cap;
    Child server([&] { return waiting_server(cap, port, true, "0"); });
    Child client([&] { return silent_client(port, "0"); });
    ASSERT_EQ(client.wait(), 0);
    ASSERT_EQ(server.wait(), 0);
    EXPECT_EQ(cap.text().find("coyote stall doctor"), std::string::npos) << cap.text();
}

TEST(StallDoctor, OnDemandThroughPrintDebugAndSigusr1) {
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env();
        ::setenv("COYOTE_STALL_SIGNAL", "1", 1);
        cThread t(0, ::getpid(), 0);
        testing::internal::CaptureStdout();
        t.printDebug();
        const std::string out = testing::internal::GetCapturedStdout();
        coyote_test::check(has(out, "on demand; last progress") && has(out, "likeliest cause: progressing"),
                           "printDebug: " + out);
        std::this_thread::sleep_for(std::chrono::milliseconds(1200)); // now nothing moved for over a second
        ::raise(SIGUSR1);
        for (int i = 0; i < 200 && cap.text().find("likeliest cause") == std::string::npos; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return 0;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
    const std::string err = cap.text();
    const std::string tag = "coyote stall doctor [pid " + std::to_string(child.pid()) + " device 0 vFPGA 0 ctid 0 sim]";
    EXPECT_TRUE(has(err, tag)) << err;
    EXPECT_TRUE(has(err, "likeliest cause: no progress")) << err;
}

TEST(StallDoctor, SleepingPollsAreCheckedEveryFewMilliseconds) {
    // Past its spin budget a poll sleeps up to 200 us: the doctor must not wait for as many of them as fast polls
    // raised its period to (4096: a second and more) before it looks again, or its warning comes seconds late.
    // A 20 ms spin budget makes sure fast polls raised it that far.
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env();
        ::setenv("COYOTE_SIM_POLL_SPIN_US", "20000", 1);
        cThread t(0, ::getpid(), 0);
        poll_for(t, CoyoteOper::LOCAL_WRITE, 1.0);
        auto st = coyote::detail::diag::open_process(::getpid());
        coyote_test::check(st.has_value(), "this process's status segment");
        uint64_t checks = 0;
        for (const auto& [index, slot] : st->slots)
            if (slot->ctid == t.getCtid()) checks = slot->checks.load();
        // One per tick of the doctor's coarse clock (1 - 4 ms); without the sleeps bringing checks forward, none
        // in the first second of sleeping polls.
        coyote_test::check(checks >= 50, "slow-path checks in 1 s of polls: " + std::to_string(checks));
        return 0;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
    EXPECT_TRUE(has(cap.text(), "likeliest cause: no progress")) << cap.text();
}

TEST(StallDoctor, ATransferCountsAsPostedInBothLocalClasses) {
    // It bumps the LOCAL_READ and the LOCAL_WRITE counter: posted must say so, or the report shows more reads
    // completed than posted.
    Child child([&] {
        stall_env();
        cThread t(0, ::getpid(), 0);
        std::vector<std::byte> src(4096, std::byte{7}), dst(4096);
        t.invoke(CoyoteOper::LOCAL_TRANSFER, coyote::localSg{.addr = src.data(), .len = 4096},
                 coyote::localSg{.addr = dst.data(), .len = 4096});
        coyote_test::check(coyote_test::wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1), "the transfer completes");
        testing::internal::CaptureStdout();
        t.printDebug();
        const std::string out = testing::internal::GetCapturedStdout();
        coyote_test::check(has(out, "LOCAL_READ 1/1, LOCAL_WRITE 1/1"), "printDebug: " + out);
        return 0;
    });
    ASSERT_EQ(child.wait(), 0);
}

/// A child that sets up stall_env, sends stderr to `cap`, runs `body` and expects it to throw a timeout.
int expect_timeout(const Capture& cap, const std::function<void()>& body) {
    cap.redirect();
    stall_env();
    try {
        body();
    } catch (const coyote::Error& e) {
        std::fprintf(stderr, "gave up: %s\n", e.what());
        return e.code() == coyote::make_error_code(coyote::Errc::timeout) ? 0 : 3;
    }
    return 4;
}

/// What a child whose initRDMA on `port` (client of `server` when given) gives up after `timeout_var` = 1.5 s
/// printed: its exit code (0: it timed out as it should), its pid, its stderr.
struct OobRun {
    int rc;
    pid_t pid;
    std::string err;
};
OobRun oob_gives_up(const char* timeout_var, uint16_t port, const char* server = nullptr) {
    Capture cap;
    Child child([&] {
        return expect_timeout(cap, [&] {
            ::setenv(timeout_var, "1500", 1);
            cThread t(0, ::getpid(), 0);
            t.initRDMA(1 << 16, port, server);
        });
    });
    const int rc = child.wait();
    return {rc, child.pid(), cap.text()};
}

TEST(StallDoctorWaits, OobServerWithoutClient) {
    const uint16_t port = coyote_test::free_port();
    const OobRun r = oob_gives_up("COYOTE_OOB_ACCEPT_TIMEOUT_MS", port);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(has(r.err, "coyote stall doctor [pid " + std::to_string(r.pid) + " wait]: waiting 0.")) << r.err;
    EXPECT_TRUE(has(r.err, "in initRDMA (out-of-band server) for a client on port " + std::to_string(port))) << r.err;
    EXPECT_TRUE(has(r.err, "likeliest cause: no client has connected to port " + std::to_string(port))) << r.err;
}

TEST(StallDoctorWaits, OobClientWithoutServer) {
    const uint16_t port = coyote_test::free_port();
    const OobRun r = oob_gives_up("COYOTE_OOB_CONNECT_TIMEOUT_MS", port, "127.0.0.1");
    ASSERT_EQ(r.rc, 0) << r.err;
    const std::string target = "127.0.0.1:" + std::to_string(port);
    EXPECT_TRUE(has(r.err, "for the out-of-band server " + target)) << r.err;
    EXPECT_TRUE(has(r.err, "likeliest cause: the server at " + target + " has not accepted the connection")) << r.err;
    EXPECT_TRUE(has(r.err, "last error: Connection refused")) << r.err;
}

TEST(StallDoctorWaits, OobPeerThatNeverAnswers) {
    // A listener that accepts (the kernel does) but never answers the exchange.
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(ls, 4), 0);
    ASSERT_EQ(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const uint16_t port = ntohs(a.sin_port);
    const OobRun r = oob_gives_up("COYOTE_OOB_IO_TIMEOUT_MS", port, "127.0.0.1");
    ::close(ls);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(has(r.err, "in exchange (out-of-band) for reading ")) << r.err;
    EXPECT_TRUE(has(r.err, " bytes from the peer at 127.0.0.1:" + std::to_string(port))) << r.err;
    EXPECT_TRUE(has(r.err, "likeliest cause: the peer at 127.0.0.1:" + std::to_string(port) + " has not sent them"))
        << r.err;
}

/// A device number of the lock tests' own (the vFPGA lock is per user and device: other tests of this user on
/// this machine use the low ones, and another run of this program at the same time most likely another one).
const uint32_t k_lock_device = 200 + static_cast<uint32_t>(::getpid() % 56);

/// The lock() of a second process while a first one holds the lock of k_lock_device: the waiter gives up after
/// 1.5 s; or, when the holder exited without unlocking first (`dies`), takes the lock over. A holder that lives
/// closes its cThread normally once released. Returns the waiter's stderr; `holder_pid` the holder's pid, `ok`
/// whether the waiter timed out (took the lock over) as it should.
std::string waiter_report(bool dies, pid_t& holder_pid, bool& ok) {
    int ready[2], release[2];
    if (::pipe(ready) != 0 || ::pipe(release) != 0) return "pipe failed";
    Child holder([&] {
        stall_env();
        cThread t(0, ::getpid(), k_lock_device);
        t.lock();
        (void)!::write(ready[1], "x", 1);
        if (dies) ::_exit(0); // no unlock, no cThread teardown
        char c = 0;
        (void)!::read(release[0], &c, 1);
        return 0; // ~cThread unlocks
    });
    holder_pid = holder.pid();
    ::close(ready[1]); // a holder that fails before taking the lock ends the read below
    char c = 0;
    if (::read(ready[0], &c, 1) != 1) {
        for (int fd : {ready[0], release[0], release[1]}) ::close(fd);
        return "the holder did not take the lock (exit status " + std::to_string(holder.wait()) + ")";
    }
    if (dies) (void)holder.wait(); // exited and reaped
    Capture cap;
    Child waiter([&] {
        if (dies) { // the waiter finds the holder gone and takes the lock over
            ::setenv("COYOTE_LOCK_TIMEOUT_MS", "1500", 1);
            try {
                cThread t(0, ::getpid(), k_lock_device);
                t.lock();
                t.unlock();
                return 0;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "lock() failed: %s\n", e.what());
                return 1;
            }
        }
        return expect_timeout(cap, [] {
            ::setenv("COYOTE_LOCK_TIMEOUT_MS", "1500", 1);
            cThread t(0, ::getpid(), k_lock_device);
            t.lock();
        });
    });
    ok = waiter.wait() == 0;
    (void)!::write(release[1], "x", 1);
    if (!dies) ok = holder.wait() == 0 && ok;
    for (int fd : {ready[0], release[0], release[1]}) ::close(fd);
    return cap.text();
}

TEST(StallDoctorWaits, LockHeldByAnotherProcess) {
    pid_t holder = 0;
    bool ok = false;
    const std::string err = waiter_report(false, holder, ok);
    ASSERT_TRUE(ok) << err;
    EXPECT_TRUE(has(err, "in lock for the vFPGA lock /dev/shm/sem.coyote_vlock_u" + std::to_string(::getuid()) +
                             "_d" + std::to_string(k_lock_device) + "_v0")) << err;
    EXPECT_TRUE(has(err, "likeliest cause: the lock is held by pid " + std::to_string(holder) + " (alive)")) << err;
}

TEST(StallDoctorWaits, LockLeftByADeadHolderIsTakenOver) {
    pid_t holder = 0;
    bool ok = false;
    const std::string err = waiter_report(true, holder, ok);
    EXPECT_TRUE(ok) << "the waiter did not take over the lock of dead pid " << holder << ": " << err;
    const std::string name = "coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(k_lock_device) + "_v0";
    (void)::unlink(("/dev/shm/sem." + name).c_str());
    (void)::unlink(("/dev/shm/" + name + ".holders").c_str());
}

TEST(StallDoctor, HwSaysWhatItCannotTell) {
    // A WRITE of this side outstanding on hw, peer on another host: the hw NIC counts no refused request.
    coyote::detail::diag::Snapshot s;
    s.backend = "hw";
    s.has_qp = true;
    s.peer = coyote::detail::diag::Snapshot::Peer::unknown;
    s.posted[3] = 1;
    s.stalled_s = 6.0;
    const std::string cause = coyote::detail::diag::likeliest_cause(s);
    EXPECT_TRUE(has(cause, "peer idle: 1 RDMA_WRITE request(s) of this side not completed")) << cause;
    EXPECT_TRUE(has(cause, "hw: the NIC reports no refused request, so a window or rkey refusal at the peer cannot "
                           "be told apart from a lost request")) << cause;
    const std::string text = coyote::detail::diag::report(s);
    EXPECT_TRUE(has(text, "refused requests: not reported by the hw NIC")) << text;
    s.backend = "sim"; // the sim's NICs count refusals: no such caveat
    EXPECT_FALSE(has(coyote::detail::diag::likeliest_cause(s), "hw:"));
}

}  // namespace

TEST(StallDoctorWaits, Sigusr1ListsTheWaitInProgress) {
    // The doctor's own reports come only after 60 s here: what stderr shows is SIGUSR1's on-demand listing, sent
    // by a thread of the child while its main thread waits for an out-of-band client that never comes.
    const uint16_t port = coyote_test::free_port();
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env("60000");
        ::setenv("COYOTE_STALL_SIGNAL", "1", 1);
        ::setenv("COYOTE_OOB_ACCEPT_TIMEOUT_MS", "1500", 1);
        cThread t(0, ::getpid(), 0);
        std::thread poke([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            ::kill(::getpid(), SIGUSR1);
        });
        int rc = 4;
        try {
            t.initRDMA(1 << 16, port);
        } catch (const coyote::Error& e) {
            rc = e.code() == coyote::make_error_code(coyote::Errc::timeout) ? 0 : 3;
        }
        poke.join();
        return rc;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
    const std::string err = cap.text();
    EXPECT_TRUE(has(err, "coyote stall doctor [pid " + std::to_string(child.pid()) + " wait]: on demand; waiting 0."))
        << err;
    EXPECT_TRUE(has(err, "in initRDMA (out-of-band server) for a client on port " + std::to_string(port))) << err;
}

namespace {
/// voluntary_ctxt_switches of this process's thread named `name` (-1 when there is none).
long voluntary_switches_of(const std::string& name) {
    const std::string dir = "/proc/self/task/";
    for (const auto& t : std::filesystem::directory_iterator(dir)) {
        std::ifstream comm(t.path() / "comm");
        std::string c;
        if (!std::getline(comm, c) || c != name) continue;
        std::ifstream status(t.path() / "status");
        for (std::string line; std::getline(status, line);)
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
    }
    return -1;
}
}  // namespace

TEST(StallDoctorWaits, WatchdogSleepsThroughShortWaits) {
    // Waits come and go at every connSync; the watchdog must not wake for each (it would take the waiting rank's
    // core): 300 short waits may wake it only a few times.
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env("60000");
        { coyote::detail::diag::WaitWatch first("test", "the first wait", "none"); } // starts the watchdog
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const long before = voluntary_switches_of("coyote-watchdog");
        if (before < 0) return 5;
        for (int i = 0; i < 300; ++i) { // waits as short as a connSync's, the watchdog asleep between them
            coyote::detail::diag::WaitWatch w("test", "a short wait", "none");
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const long woke = voluntary_switches_of("coyote-watchdog") - before;
        std::fprintf(stderr, "watchdog woke %ld times\n", woke);
        return woke <= 10 ? 0 : 6;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
}

TEST(StallDoctorWaits, TheIdleWatchdogNeverReadsTheEnvironment) {
    // The idle watchdog wakes every warning period, also while the process exits; it takes the period from the
    // waits it watched, never from the setting (destroyed at exit; a malformed value would throw in a detached
    // thread and end the process). The value turns malformed while the watchdog sleeps through five periods.
    Capture cap;
    Child child([&] {
        cap.redirect();
        stall_env("20");
        { coyote::detail::diag::WaitWatch first("test", "a short wait", "none"); } // starts the watchdog
        ::setenv("COYOTE_STALL_WARN_MS", "soon", 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return voluntary_switches_of("coyote-watchdog") > 0 ? 0 : 5;
    });
    ASSERT_EQ(child.wait(), 0) << cap.text();
}
