// Source compatibility of the public headers, the error type and backend selection.
#include "test_support.hpp"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/interprocess/sync/named_mutex.hpp>
#include <coyote/cDefs.hpp>
#include <coyote/cOps.hpp>
#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.hpp"
#include "backend/registers.hpp"
#include "backend/sim/segments.hpp"
#include "support/child.hpp"
#include "support/helper_process.hpp"

using coyote_test::Child;
using coyote_test::EnvGuard;

namespace {


TEST(CoreApi, DesignatedInitializersInDeclarationOrder) {
    int buf[4] = {};
    coyote::localSg sg = {.addr = buf, .len = 16, .stream = coyote::STRM_CARD};
    EXPECT_EQ(sg.addr, buf);
    EXPECT_EQ(sg.len, 16u);
    EXPECT_EQ(sg.stream, coyote::STRM_CARD);
    EXPECT_EQ(sg.dest, 0u);

    coyote::localSg def;
    EXPECT_EQ(def.stream, coyote::STRM_HOST);

    coyote::rdmaSg r = {.local_offs = 8, .remote_offs = 16, .len = 64};
    EXPECT_EQ(r.local_stream, coyote::STRM_HOST);
    EXPECT_EQ(r.local_dest, 0u);
    EXPECT_EQ(r.remote_dest, 0u);
    EXPECT_EQ(r.remote_offs, 16u);

    coyote::CoyoteAlloc a = {.alloc = coyote::CoyoteAllocType::HPF, .size = 4096};
    EXPECT_FALSE(a.remote);
    EXPECT_EQ(a.gpu_dev_id, 3u);
    EXPECT_EQ(a.gpu_dmabuf_fd, 0);
    EXPECT_EQ(a.mem, nullptr);
    coyote::CoyoteAlloc b = {coyote::CoyoteAllocType::THP, 1024, true};
    EXPECT_TRUE(b.remote);

    coyote::syncSg s = {.addr = buf, .len = 16};
    EXPECT_EQ(s.len, 16u);
    coyote::tcpSg t;
    EXPECT_EQ(t.stream, coyote::STRM_TCP);
}

TEST(CoreApi, EnumValuesAndConstants) {
    using coyote::CoyoteOper;
    EXPECT_EQ(static_cast<int>(CoyoteOper::NOOP), 0);
    EXPECT_EQ(static_cast<int>(CoyoteOper::LOCAL_SYNC), 5);
    EXPECT_EQ(static_cast<int>(CoyoteOper::REMOTE_RDMA_READ), 6);
    EXPECT_EQ(static_cast<int>(CoyoteOper::REMOTE_TCP_SEND), 9);
    EXPECT_EQ(static_cast<int>(coyote::CoyoteAllocType::GPU), 4);
    EXPECT_EQ(coyote::DEF_PORT, 18488u);
    EXPECT_EQ(coyote::MAX_TRANSFER_SIZE, 128ul * 1024 * 1024);
    EXPECT_EQ(coyote::PAGE_SIZE, 4096ull);
    EXPECT_EQ(coyote::HUGE_PAGE_SIZE, 2ull * 1024 * 1024);
    EXPECT_EQ(coyote::N_CTID_MAX, 64);
    EXPECT_EQ(coyote::CMD_FIFO_DEPTH - coyote::CMD_FIFO_THR, 22);
    EXPECT_EQ(coyote::WBACK_REGION_SIZE, 4u * 64u * 4u);
    EXPECT_EQ(static_cast<uint32_t>(coyote::CnfgLegRegs::RDMA_CONN_REG_2), 46u);
    EXPECT_EQ(static_cast<uint32_t>(coyote::CnfgAvxRegs::RDMA_CONN_REG), 11u);
    EXPECT_EQ(IOCTL_REGISTER_CTID, 0x40084601ul);
    EXPECT_EQ(IOCTL_READ_SHELL_CONFIG, 0x8008460Ful);
    EXPECT_EQ(IOCTL_RECONFIGURE_APP, 0x40085003ul);
}

/// The operation predicates `op` satisfies, space separated.
std::string predicates(coyote::CoyoteOper op) {
    const std::pair<bool, const char*> all[] = {
        {coyote::isLocalRead(op), "localRead"},       {coyote::isLocalWrite(op), "localWrite"},
        {coyote::isLocalSync(op), "localSync"},       {coyote::isRemoteRdma(op), "remoteRdma"},
        {coyote::isRemoteRead(op), "remoteRead"},     {coyote::isRemoteWrite(op), "remoteWrite"},
        {coyote::isRemoteSend(op), "remoteSend"},     {coyote::isRemoteWriteOrSend(op), "remoteWriteOrSend"},
        {coyote::isRemoteTcp(op), "remoteTcp"}};
    std::string s;
    for (const auto& [holds, name] : all)
        if (holds) s += (s.empty() ? "" : " ") + std::string(name);
    return s;
}

// Every predicate for every operation, as Coyote defines them.
TEST(CoreApi, Predicates) {
    using coyote::CoyoteOper;
    EXPECT_EQ(predicates(CoyoteOper::NOOP), "");
    EXPECT_EQ(predicates(CoyoteOper::LOCAL_READ), "localRead");
    EXPECT_EQ(predicates(CoyoteOper::LOCAL_WRITE), "localWrite");
    EXPECT_EQ(predicates(CoyoteOper::LOCAL_TRANSFER), "localRead localWrite");
    EXPECT_EQ(predicates(CoyoteOper::LOCAL_OFFLOAD), "localSync");
    EXPECT_EQ(predicates(CoyoteOper::LOCAL_SYNC), "localSync");
    EXPECT_EQ(predicates(CoyoteOper::REMOTE_RDMA_READ), "remoteRdma remoteRead");
    EXPECT_EQ(predicates(CoyoteOper::REMOTE_RDMA_WRITE), "remoteRdma remoteWrite remoteWriteOrSend");
    EXPECT_EQ(predicates(CoyoteOper::REMOTE_RDMA_SEND), "remoteRdma remoteSend remoteWriteOrSend");
    EXPECT_EQ(predicates(CoyoteOper::REMOTE_TCP_SEND), "remoteSend remoteTcp");
}

TEST(CoreApi, IbvQLayoutAndGid) {
    EXPECT_EQ(sizeof(coyote::ibvQ), 64u);
    EXPECT_EQ(offsetof(coyote::ibvQ, vaddr), 16u);
    EXPECT_EQ(offsetof(coyote::ibvQ, size), 24u);
    EXPECT_EQ(offsetof(coyote::ibvQ, gid), 28u);
    coyote::ibvQ q{};
    coyote::detail::fill_gid(q, 0x0A000102u);
    EXPECT_STREQ(q.gid, "0a0001020a0001020a0001020a000102");
    EXPECT_EQ(q.gidToUint(0), 0x0201000Au); // byte-swapped to network order
    EXPECT_EQ(q.gidToUint(24), 0x0201000Au);
    q.uintToGid(8, 0xC0A80001u);
    EXPECT_EQ(std::string(q.gid + 8, 8), "c0a80001");
}

TEST(CoreApi, ShellWordParsing) {
    coyote::fpgaCnfg c;
    c.parseCnfg((1ull << 0) | (1ull << 3) | (1ull << 16) | (4ull << 32) | (2ull << 48));
    EXPECT_EQ(coyote_test::features(c), "avx mem rdma net");
    EXPECT_EQ(c.n_xdma_chan, 4);
    EXPECT_EQ(c.n_fpga_reg, 2);
    c.parseCtrlReg((0x3ull << 4) | (12ull << 20) | (21ull << 26));
    EXPECT_EQ(c.ctrl_reg.tlb_s_order, 3u);
    EXPECT_EQ(c.ctrl_reg.pg_s_bits, 12u);
    EXPECT_EQ(c.ctrl_reg.pg_l_bits, 21u);
}

TEST(CoreApi, CommandWordCodec) {
    coyote::detail::CtrlWord w{.opcode = 1, .stream = 1, .ctid = 5, .dest = 3, .last = true, .start = true,
                               .clr_stat = false, .len = 4096};
    const uint64_t enc = w.encode();
    EXPECT_EQ(enc, (1ull) | (1ull << 8) | (5ull << 10) | (3ull << 16) | (1ull << 20) | (1ull << 21) |
                       (4096ull << 32));
    const auto d = coyote::detail::CtrlWord::decode(enc);
    EXPECT_EQ(d.ctid, 5u);
    EXPECT_EQ(d.dest, 3u);
    EXPECT_EQ(d.len, 4096u);
    EXPECT_TRUE(d.last);
    EXPECT_FALSE(d.clr_stat);
    EXPECT_EQ(coyote::detail::make_qpn(2, 7), (2u << 6) | 7u);
}

TEST(CoreApi, ErrorCarriesCallContextAndCode) {
    try {
        coyote::throw_error(coyote::Errc::invalid_argument, "getMem", "allocation size is 0");
        FAIL() << "no throw";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.call(), "getMem");
        EXPECT_EQ(e.context(), "allocation size is 0");
        EXPECT_EQ(e.code(), coyote::Errc::invalid_argument);
        EXPECT_NE(std::string(e.what()).find("getMem: allocation size is 0"), std::string::npos);
    }
    errno = ENOENT;
    try {
        coyote::throw_errno("open", "/dev/x");
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENOENT);
    }
}

TEST(BackendSelection, EnvironmentOverrideAndDefault) {
    {
        EnvGuard g("COYOTE_BACKEND", nullptr);
        // No /dev/coyote_fpga_* on this machine: sim is the default.
        if (::access("/dev/coyote_fpga_0_v0", F_OK) != 0) {
            EXPECT_EQ(coyote::detail::selected_backend(0, 0), "sim");
        }
    }
    {
        EnvGuard g("COYOTE_BACKEND", "hw");
        EXPECT_EQ(coyote::detail::selected_backend(0, 0), "hw");
    }
    {
        EnvGuard g("COYOTE_BACKEND", "fpga9000");
        EXPECT_THROW(coyote::detail::selected_backend(0, 0), coyote::Error);
    }
}

TEST(BackendSelection, HwWithoutDeviceFailsClearly) {
    EnvGuard g("COYOTE_BACKEND", "hw");
    if (::access("/dev/coyote_fpga_7_v0", F_OK) == 0) GTEST_SKIP() << "a real device 7 exists";
    try {
        coyote::cThread t(0, getpid(), 7);
        FAIL() << "constructing a cThread on hw without a device must fail";
    } catch (const coyote::Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("no Coyote device found"), std::string::npos) << what;
        EXPECT_NE(what.find("/dev/coyote_fpga_7_v0"), std::string::npos) << what;
    }
}

/// The vFPGA lock's name: private to the user (their uid in it).
std::string vfpga_lock(uint32_t device) {
    return "coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(device) + "_v0";
}

TEST(CThreadLock, CrossProcessNamedMutex) {
    EnvGuard g("COYOTE_BACKEND", "sim");
    // Child and parent each open their own cThread on the same (device, vFPGA): the lock excludes across processes.
    int to_child[2], to_parent[2];
    ASSERT_EQ(::pipe(to_child), 0);
    ASSERT_EQ(::pipe(to_parent), 0);
    Child child([&] {
        coyote::cThread t(0, getpid(), 0);
        char c = 0;
        if (::read(to_child[0], &c, 1) != 1) return 2; // parent holds the lock now
        boost::interprocess::named_mutex m(boost::interprocess::open_only, vfpga_lock(0).c_str());
        const bool got_while_held = m.try_lock();
        if (got_while_held) m.unlock();
        c = got_while_held ? 'B' : 'A';
        if (::write(to_parent[1], &c, 1) != 1) return 3;
        if (::read(to_child[0], &c, 1) != 1) return 4; // parent released
        t.lock();
        t.unlock();
        return got_while_held ? 5 : 0;
    }, 60);
    // Close the child's ends here, so that a child that exits early ends the reads below instead of hanging them.
    ::close(to_child[0]);
    ::close(to_parent[1]);
    coyote::cThread t(0, getpid(), 0);
    t.lock();
    char c = 'x';
    ASSERT_EQ(::write(to_child[1], &c, 1), 1);
    ASSERT_EQ(::read(to_parent[0], &c, 1), 1);
    EXPECT_EQ(c, 'A') << "the child acquired the vFPGA lock while the parent held it";
    t.unlock();
    ASSERT_EQ(::write(to_child[1], &c, 1), 1);
    EXPECT_EQ(child.wait(), 0);
    for (int fd : {to_child[1], to_parent[0]}) ::close(fd);
}

TEST(CThreadLock, LockIsPrivateToItsUser) {
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 5);
    t.lock();
    struct stat st {};
    const std::string file = "/dev/shm/sem." + vfpga_lock(5);
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::getuid());
    t.unlock();
}

TEST(CThreadLock, SecondHolderTimesOutNamingTheLock) {
    EnvGuard b("COYOTE_BACKEND", "sim"), timeout("COYOTE_LOCK_TIMEOUT_MS", "50");
    coyote::cThread a(0, ::getpid(), 5);
    coyote::cThread c(0, ::getpid(), 5);
    a.lock();
    try {
        c.lock();
        FAIL() << "a second cThread took the vFPGA lock while the first held it";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.code(), coyote::Errc::timeout);
        EXPECT_NE(std::string(e.what()).find(vfpga_lock(5)), std::string::npos) << e.what();
    }
    a.unlock();
    c.lock();  // free again
    c.unlock();
}

// A signal handled while lock() waits (a program's SIGUSR1, Ctrl-C under Python) does not end the wait: it
// raised "Interrupted system call" (std::system_error of boost's sem_timedwait) after the first signal.
TEST(CThreadLock, ASignalDuringTheWaitDoesNotEndIt) {
    EnvGuard b("COYOTE_BACKEND", "sim"), timeout("COYOTE_LOCK_TIMEOUT_MS", "20000");
    struct sigaction sa {}, old {};
    sa.sa_handler = [](int) {};
    ::sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: the wait sees EINTR
    ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
    coyote::cThread a(0, ::getpid(), 7);
    coyote::cThread c(0, ::getpid(), 7);
    a.lock();
    std::atomic<pthread_t> waiter{};
    std::atomic<bool> got{false};
    std::string failed;
    std::thread w([&] {
        waiter = ::pthread_self();
        try {
            c.lock();
            got = true;
            c.unlock();
        } catch (const std::exception& e) {
            failed = e.what();
        }
    });
    while (waiter.load() == pthread_t{}) std::this_thread::yield();
    for (int i = 0; i < 5; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ::pthread_kill(waiter.load(), SIGUSR1);
    }
    EXPECT_FALSE(got.load());
    a.unlock();
    w.join();
    EXPECT_TRUE(got.load()) << failed;
    ::sigaction(SIGUSR1, &old, nullptr);
}

/// MalformedSettingFailsTheFirstCThread's process: opens a cThread and says so.
TEST(CThreadSettingsHelper, DISABLED_OpensACThread) {
    coyote::cThread t(0, ::getpid(), 0);
    std::printf("opened\n");
}

// A malformed value of a variable that only a later call reads (the lock timeout, read when a lock is contended)
// fails the process's first cThread, naming it; before, it passed unnoticed until that call.
TEST(CThreadSettings, MalformedSettingFailsTheFirstCThread) {
    EnvGuard b("COYOTE_BACKEND", "sim");
    for (const char* value : {"abc", "300000"}) {
        SCOPED_TRACE(value);
        EnvGuard g("COYOTE_LOCK_TIMEOUT_MS", value);
        int out[2];
        ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
        const pid_t pid = coyote_test::spawn_helper("CThreadSettingsHelper.DISABLED_OpensACThread", -1, out[1]);
        ASSERT_GT(pid, 0);
        ::close(out[1]);
        const std::string said = coyote_test::read_output(out[0], "", std::chrono::seconds(60));
        ::close(out[0]);
        const int status = coyote_test::wait_exit(pid, std::chrono::seconds(60));
        if (std::string(value) == "abc") {
            EXPECT_NE(status, 0) << said;
            EXPECT_NE(said.find("COYOTE_LOCK_TIMEOUT_MS='abc'"), std::string::npos) << said;
            EXPECT_EQ(said.find("opened"), std::string::npos) << said;
        } else {
            EXPECT_EQ(status, 0) << said;
            EXPECT_NE(said.find("opened"), std::string::npos) << said;
        }
    }
}

/// LastHolderRemovesTheLock's other process: holds a cThread on sim device 6 until its stdin closes.
TEST(CThreadLockHelper, DISABLED_HoldsDevice6UntilStdinCloses) {
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 6);
    std::printf("holding\n");
    std::fflush(stdout);
    char ch = 0;
    while (::read(STDIN_FILENO, &ch, 1) > 0) {
    }
}

TEST(CThreadLock, LastHolderRemovesTheLock) {
    EnvGuard b("COYOTE_BACKEND", "sim");
    constexpr uint32_t device = 6; // a lock no other test uses
    const std::string sem = "/dev/shm/sem." + vfpga_lock(device);
    const std::string holders = "/dev/shm/" + vfpga_lock(device) + ".holders";
    struct stat st {};
    {
        coyote::cThread a(0, ::getpid(), device);
        {
            coyote::cThread c(0, ::getpid(), device);
            c.lock();
            c.unlock();
        }
        EXPECT_EQ(::stat(sem.c_str(), &st), 0) << "removed while another cThread still holds it";
        // Another process holding it keeps it too (a helper process: see HoldsDevice6UntilStdinCloses).
        int to_child[2], from_child[2];
        ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
        ASSERT_EQ(::pipe2(from_child, O_CLOEXEC), 0);
        const pid_t pid = coyote_test::spawn_helper("CThreadLockHelper.DISABLED_HoldsDevice6UntilStdinCloses",
                                                    to_child[0], from_child[1]);
        ASSERT_GT(pid, 0);
        ::close(to_child[0]);
        ::close(from_child[1]);
        const std::string said = coyote_test::read_output(from_child[0], "holding\n", std::chrono::seconds(30));
        ASSERT_NE(said.find("holding\n"), std::string::npos) << "the helper did not open the lock: " << said;
        {
            coyote::cThread parent_gone(0, ::getpid(), device);
        }
        EXPECT_EQ(::stat(sem.c_str(), &st), 0);
        ::close(to_child[1]); // the helper closes its cThread and exits
        EXPECT_EQ(coyote_test::wait_exit(pid, std::chrono::seconds(60)), 0);
        ::close(from_child[0]);
        EXPECT_EQ(::stat(sem.c_str(), &st), 0) << "removed while this process still holds it";
    }
    EXPECT_NE(::stat(sem.c_str(), &st), 0) << sem << " stays after its last holder";
    EXPECT_NE(::stat(holders.c_str(), &st), 0) << holders << " stays after its last holder";
}

// A child forked while its parent has a cThread open (the device's worker threads running, maybe holding its locks)
// opens its own cThread on the same vFPGA: it gets a device of its own and its transfers complete; the parent's
// device is unaffected.
TEST(ForkedChild, OpensItsOwnDeviceOnTheParentsVfpga) {
    if (coyote_test::k_thread_sanitizer) GTEST_SKIP() << coyote_test::k_fork_threads_under_tsan;
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread parent(0, ::getpid());
    ASSERT_TRUE(coyote_test::first_transfer_passes_through(parent, 256 * 1024, 1));
    for (int round = 0; round < 5; ++round) {
        coyote_test::BusyTransfers busy(parent, 64 * 1024); // the fork lands while the parent's device works
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        Child child([] {
            coyote::cThread t(0, ::getpid());
            return coyote_test::first_transfer_passes_through(t, 256 * 1024, 2) ? 0 : 1;
        }, 60);
        EXPECT_EQ(child.wait(std::chrono::seconds(60)), 0)
            << "round " << round << ": the child's transfer failed or hung (-1: killed at the deadline)";
        EXPECT_GT(busy.done(), 0u) << "the parent's transfers stopped";
    }
    coyote::cThread again(0, ::getpid());
    EXPECT_TRUE(coyote_test::first_transfer_passes_through(again, 4096, 3));
}

TEST(ForkedChild, AnInheritedCThreadRefusesCallsAndLeavesTheParentsStateAlone) {
    if (coyote_test::k_thread_sanitizer) GTEST_SKIP() << coyote_test::k_fork_threads_under_tsan;
    EnvGuard b("COYOTE_BACKEND", "sim");
    auto parent = std::make_unique<coyote::cThread>(0, ::getpid());
    void* buf = parent->getMem({.alloc = coyote::CoyoteAllocType::REG, .size = 4096});
    parent->lock();
    ASSERT_TRUE(coyote_test::first_transfer_passes_through(*parent, 64 * 1024, 1));
    Child child([&] {
        int bad = 0;
        const auto refused = [&](const char* what, auto&& call) {
            try {
                call();
                std::fprintf(stderr, "%s: the inherited cThread took the call\n", what);
                ++bad;
            } catch (const coyote::Error& e) {
                if (e.code() != coyote::Errc::invalid_argument ||
                    std::string(e.what()).find("belongs to process") == std::string::npos) {
                    std::fprintf(stderr, "%s: %s\n", what, e.what());
                    ++bad;
                }
            }
        };
        refused("getCSR", [&] { (void)parent->getCSR(0); });
        refused("checkCompleted", [&] { (void)parent->checkCompleted(coyote::CoyoteOper::LOCAL_WRITE); });
        refused("invoke", [&] {
            parent->invoke(coyote::CoyoteOper::LOCAL_TRANSFER, coyote::localSg{.addr = buf, .len = 64},
                           coyote::localSg{.addr = buf, .len = 64});
        });
        refused("unlock", [&] { parent->unlock(); });
        parent.reset(); // returns at once, frees nothing of the parent's
        coyote::cThread own(0, ::getpid());
        return bad == 0 && coyote_test::first_transfer_passes_through(own, 64 * 1024, 2) ? 0 : 1;
    }, 30);
    EXPECT_EQ(child.wait(std::chrono::seconds(30)), 0) << "(-1: the child hung and was killed at the deadline)";
    // The child released neither the parent's lock nor its buffer.
    coyote::cThread other(0, ::getpid());
    {
        EnvGuard timeout("COYOTE_LOCK_TIMEOUT_MS", "200");
        EXPECT_THROW(other.lock(), coyote::Error) << "the child's teardown released the parent's lock";
    }
    static_cast<volatile char*>(buf)[0] = 1; // still mapped
    EXPECT_TRUE(coyote_test::first_transfer_passes_through(*parent, 4096, 3));
    parent->unlock();
}

TEST(CThreadLock, LockLeftByADeadProcessIsReleasedByTheNextWaiter) {
    EnvGuard g("COYOTE_BACKEND", "sim");
    constexpr uint32_t device = 9; // a lock no other test uses
    const std::string name = vfpga_lock(device);
    boost::interprocess::named_mutex::remove(name.c_str());
    Child child([&] {
        coyote::cThread t(0, getpid(), device);
        t.lock();
        ::_exit(0); // dies holding the lock (no destructor runs)
        return 1;
    }, 60);
    ASSERT_EQ(child.wait(), 0);
    // Reclaimed here, or already by another sim process of this user (tests run side by side).
    (void)coyote::detail::sim::reclaim_stale_segments();
    EXPECT_TRUE(coyote_test::sim_segments_of(child.pid()).empty()) << "the dead child's sim segments were not reclaimed";
    EnvGuard timeout("COYOTE_LOCK_TIMEOUT_MS", "30000");
    coyote::cThread t(0, getpid(), device), other(0, getpid(), device);
    const auto t0 = std::chrono::steady_clock::now();
    t.lock(); // the dead holder's lock is released by this waiter
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    // Released once: the lock excludes again.
    {
        EnvGuard short_timeout("COYOTE_LOCK_TIMEOUT_MS", "300");
        EXPECT_THROW(other.lock(), coyote::Error) << "a second cThread took the lock the first one recovered";
    }
    t.unlock();
    other.lock();
    other.unlock();
}

TEST(CThreadLock, LockLeftWithoutAHolderRecordTimesOutWithAClearError) {
    EnvGuard g("COYOTE_BACKEND", "sim");
    constexpr uint32_t device = 9;
    const std::string name = vfpga_lock(device);
    boost::interprocess::named_mutex::remove(name.c_str());
    Child child([&] {
        // A holder that records no pid (stock Coyote takes the named mutex directly) and dies holding it.
        boost::interprocess::named_mutex m(boost::interprocess::open_or_create, name.c_str(),
                                           boost::interprocess::permissions(0600));
        m.lock();
        ::_exit(0);
        return 1;
    }, 60);
    ASSERT_EQ(child.wait(), 0);
    {
        EnvGuard timeout("COYOTE_LOCK_TIMEOUT_MS", "300");
        coyote::cThread t(0, getpid(), device);
        try {
            t.lock();
            FAIL() << "lock() returned although a process that recorded no pid holds the lock";
        } catch (const coyote::Error& e) {
            EXPECT_EQ(e.code(), coyote::Errc::timeout);
            EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        }
    }
    boost::interprocess::named_mutex::remove(name.c_str());
}

TEST(CThreadArgs, RemoteOffsetsBeyond48BitsAreRefusedBeforeTheWire) {
    using coyote::CoyoteOper;
    // The wire carries 48-bit addresses: a larger one would be cut to its low bits and land elsewhere in the peer.
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 5);
    (void)t.getMem({.alloc = coyote::CoyoteAllocType::REG, .size = 1 << 20, .remote = true});
    for (const uint64_t offs : {(uint64_t{1} << 48) + 4096, ~uint64_t{0} - 10}) {
        try {
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, coyote::rdmaSg{.remote_offs = offs, .len = 64});
            ADD_FAILURE() << "remote_offs " << offs << " was posted";
        } catch (const coyote::Error& e) {
            EXPECT_EQ(e.code(), coyote::Errc::invalid_argument) << e.what();
            EXPECT_NE(std::string(e.what()).find("48-bit"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("remote_offs " + std::to_string(offs)), std::string::npos)
                << e.what();
        }
    }
    EXPECT_THROW(t.invokeRdma(CoyoteOper::REMOTE_RDMA_READ, nullptr, (uint64_t{1} << 48) - 32, 64), coyote::Error);
    // Streams and dests are checked as a localSg's are.
    for (const coyote::rdmaSg sg : {coyote::rdmaSg{.local_stream = 9, .len = 64}, coyote::rdmaSg{.local_dest = 99, .len = 64},
                                    coyote::rdmaSg{.remote_dest = 16, .len = 64}}) {
        auto [code, what] = coyote_test::error_of([&] { t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, sg); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << what;
        EXPECT_TRUE(what.find("local_stream 9") != std::string::npos || what.find("out of range") != std::string::npos)
            << what;
    }
}

TEST(CThreadArgs, APeersQueuePairMessageIsCheckedOnBothSides) {
    // The server checks its client's ibvQ; the client now checks the server's answer the same way (connectQp).
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 5);
    coyote::ibvQ good;
    std::memset(static_cast<void*>(&good), 0, sizeof(good));
    good.ip_addr = 0x0A010203;
    good.qpn = 0x21;
    std::memcpy(good.gid, "0a0102030a0102030a0102030a010203", 33);
    struct Case {
        void (*spoil)(coyote::ibvQ&);
        const char* mention;
    } cases[] = {{[](coyote::ibvQ& q) { q.ip_addr = 0; }, "no IP address"},
                 {[](coyote::ibvQ& q) { q.qpn = 0xffffffffu; }, "does not fit 24 bits"},
                 {[](coyote::ibvQ& q) { q.gid[3] = 'z'; }, "gid is not 32 hex digits"}};
    for (const Case& c : cases) {
        coyote::ibvQ q = good;
        c.spoil(q);
        std::vector<std::byte> blob(sizeof(q));
        std::memcpy(blob.data(), &q, sizeof(q));
        auto [code, what] = coyote_test::error_of([&] { t.connectQp(blob, 0); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::protocol)) << what;
        EXPECT_NE(what.find(c.mention), std::string::npos) << what;
    }
    // A buffer size initRDMA cannot register fails before the client connects (nothing listens on port 1).
    for (const uint64_t size : {uint64_t{0}, uint64_t{1} << 33}) {
        auto [code, what] = coyote_test::error_of([&] { (void)t.initRDMA(size, 1, "127.0.0.1"); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << what;
        EXPECT_NE(what.find("buffer size " + std::to_string(size)), std::string::npos) << what;
    }
}

TEST(CThreadArgs, CheckCompletedRefusesOperationsWithoutACounter) {
    using coyote::CoyoteOper;
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 5);
    for (const auto oper : {CoyoteOper::NOOP, CoyoteOper::REMOTE_TCP_SEND, static_cast<CoyoteOper>(42),
                            static_cast<CoyoteOper>(-1)}) {
        try {
            (void)t.checkCompleted(oper);
            ADD_FAILURE() << "checkCompleted(" << static_cast<int>(oper) << ") returned a count";
        } catch (const coyote::Error& e) {
            EXPECT_EQ(e.code(), coyote::Errc::invalid_argument) << e.what();
            EXPECT_NE(std::string(e.what()).find("has no completion counter"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_TRANSFER), 0u);
    EXPECT_EQ(t.checkCompleted(CoyoteOper::REMOTE_RDMA_SEND), 0u);
}

TEST(CThreadLock, ASecondLockOfTheHolderIsANoOp) {
    EnvGuard b("COYOTE_BACKEND", "sim"), timeout("COYOTE_LOCK_TIMEOUT_MS", "300");
    coyote::cThread t(0, ::getpid(), 5), other(0, ::getpid(), 5);
    t.lock();
    const auto t0 = std::chrono::steady_clock::now();
    t.lock(); // as in Coyote: the holder takes it once
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
    t.unlock(); // one unlock releases it
    other.lock();
    other.unlock();
}

}  // namespace
