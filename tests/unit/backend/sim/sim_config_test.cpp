// Sim backend configuration: shell word and overrides, network identity, the shared state segment,
// reclaiming the segments of crashed processes.
#include "unit/test_support.hpp"
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "backend/device.hpp"
#include "backend/sim/identity.hpp"
#include "backend/sim/segments.hpp"
#include "backend/sim/shared_state.hpp"
#include "backend/sim/shell_config.hpp"
#include "detail/handles.hpp"
#include "detail/settings.hpp"

using coyote::cThread;
using coyote::Errc;
namespace sim = coyote::detail::sim;

using coyote_test::EnvGuard;
using coyote_test::error_of;

namespace {

class SimConfig : public coyote_test::SimTest {};

TEST_F(SimConfig, DefaultShellWord) {
    cThread t(0, getpid(), 20);
    const coyote::fpgaCnfg& c = t.getShellConfig();
    EXPECT_EQ(coyote_test::features(c), "avx wb strm mem pr rdma net");
    EXPECT_EQ(c.n_xdma_chan, 4);
    EXPECT_EQ(c.n_fpga_reg, 1);
    EXPECT_EQ(c.ctrl_reg.pg_s_bits, 12u);
    EXPECT_EQ(c.ctrl_reg.pg_l_bits, 21u);
    EXPECT_EQ(c.ctrl_reg.avx_flow, 1u);
    EXPECT_EQ(c.ctrl_reg.wb_flow, 1u);
    EXPECT_GT(c.ctrl_reg.tlb_s_order, 0u);
    EXPECT_GT(c.ctrl_reg.n_s_assoc, 0u);
}

TEST_F(SimConfig, EnvOverridesAndVfidRange) {
    EnvGuard s("COYOTE_SIM_SHELL", "avx=0,wb=0,tcp=1,n_xdma_chan=2,n_fpga_reg=3");
    cThread t(2, getpid(), 21);
    const coyote::fpgaCnfg& c = t.getShellConfig();
    EXPECT_EQ(coyote_test::features(c), "strm mem pr rdma tcp net"); // avx, wb off; tcp on
    EXPECT_EQ(c.n_xdma_chan, 2);
    EXPECT_EQ(c.n_fpga_reg, 3);
    EXPECT_EQ(c.ctrl_reg.avx_flow, 0u);
    auto [code, what] = error_of([] { cThread u(3, getpid(), 21); });
    EXPECT_EQ(code, static_cast<int>(Errc::no_device));
    EXPECT_NE(what.find("vFPGA 3"), std::string::npos) << what;
}

TEST_F(SimConfig, ConfigFileThenEnv) {
    char path[] = "/tmp/coyote_sim_cfg_XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string text = "# a shell without RDMA\nrdma = 0\nmem=0  # no card memory\n\nn_fpga_reg=2\n";
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    {
        EnvGuard f("COYOTE_SIM_CONFIG", path);
        EnvGuard s("COYOTE_SIM_SHELL", "mem=1");
        const sim::ShellConfig cfg = sim::load_shell_config();
        EXPECT_FALSE(cfg.en_rdma);
        EXPECT_TRUE(cfg.en_mem); // the environment wins over the file
        EXPECT_EQ(cfg.n_fpga_reg, 2u);
        EXPECT_EQ(cfg.shell_word() & (1ULL << 16), 0u);
        EXPECT_EQ((cfg.shell_word() >> 48) & 0xff, 2u);
    }
    ::unlink(path);
    EnvGuard f("COYOTE_SIM_CONFIG", "/nonexistent/coyote.cfg");
    auto [code, what] = error_of([] { sim::load_shell_config(); });
    EXPECT_NE(code, 0);
    EXPECT_NE(what.find("/nonexistent/coyote.cfg"), std::string::npos) << what;
}

TEST_F(SimConfig, AConfigFileThatIsNoTextFileIsAClearError) {
    // Before: a directory or an unreadable file counted as an empty configuration, and a binary file's bytes
    // reached the messages as they were.
    struct Case {
        const char* path;
        const char* mention;
    } cases[] = {{"/tmp", "is not a regular file (a directory)"},
                 {"/proc/self/mem", "cannot read"},
                 {"/bin/sh", "is not text (control byte"},
                 {"/dev/zero", "larger than 1 MiB"}};
    for (const auto& c : cases) {
        EnvGuard f("COYOTE_SIM_CONFIG", c.path);
        auto [code, what] = error_of([] { sim::load_shell_config(); });
        EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument)) << c.path << ": " << what;
        EXPECT_NE(what.find(c.mention), std::string::npos) << c.path << ": " << what;
    }
    EnvGuard f("COYOTE_SIM_CONFIG", "/dev/null"); // an empty configuration, as before
    EXPECT_NO_THROW(sim::load_shell_config());
}

TEST_F(SimConfig, ShellNumbersAreDecimalAndControlCharactersAreEscapedInMessages) {
    // strtoull's base 0 read n_fpga_reg=010 as 8 vFPGAs (octal) and accepted 0x10, neither documented.
    {
        EnvGuard s("COYOTE_SIM_SHELL", "n_fpga_reg=010,card_capacity=0064M");
        const auto cfg = sim::load_shell_config();
        EXPECT_EQ(cfg.n_fpga_reg, 10u);
        EXPECT_EQ(cfg.card_capacity, 64ull << 20);
    }
    for (const char* bad : {"n_fpga_reg=0x10", "card_capacity=0x1000000", "n_fpga_reg=+2", "n_fpga_reg=-1"}) {
        EnvGuard s("COYOTE_SIM_SHELL", bad);
        auto [code, what] = error_of([] { sim::load_shell_config(); });
        EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument)) << bad << ": " << what;
    }
    // A value with an escape sequence or a newline is quoted escaped, here and in the settings check.
    EnvGuard s("COYOTE_SIM_SHELL", "avx=\x1b[2J,wb=1\nfake: line");
    auto [code, what] = error_of([] { sim::load_shell_config(); });
    EXPECT_NE(what.find("bad value '\\x1b[2J' for shell key 'avx'"), std::string::npos) << what;
    what = error_of([] { coyote::detail::settings::check_all(); }).second;
    EXPECT_NE(what.find("COYOTE_SIM_SHELL='avx=\\x1b[2J,wb=1\\nfake: line'"), std::string::npos) << what;
    EXPECT_EQ(what.find_first_of("\x1b\n"), std::string::npos) << what;
}

TEST_F(SimConfig, BadSettingsAreClearErrors) {
    const auto inval = static_cast<int>(Errc::invalid_argument);
    struct Case {
        const char* settings;
        const char* mention;
    } cases[] = {
        {"avx=2", "avx"},           {"bogus=1", "bogus"},         {"n_fpga_reg=0", "n_fpga_reg"},
        {"n_fpga_reg=17", "17"},    {"n_xdma_chan=x", "n_xdma_chan"}, {"rdma", "rdma"},
        {"card_capacity=1Q", "card_capacity"}, {"rdma=0, rdma=1", "key 'rdma' is given twice"},
    };
    for (const auto& c : cases) {
        EnvGuard s("COYOTE_SIM_SHELL", c.settings);
        auto [code, what] = error_of([] { sim::load_shell_config(); });
        EXPECT_EQ(code, inval) << c.settings;
        EXPECT_NE(what.find(c.mention), std::string::npos) << c.settings << ": " << what;
        EXPECT_NE(what.find("COYOTE_SIM_SHELL"), std::string::npos) << what;
    }
    // Through cThread as well.
    EnvGuard s("COYOTE_SIM_SHELL", "wb=maybe");
    EXPECT_EQ(error_of([] { cThread t(0, getpid(), 22); }).first, inval);
}

TEST_F(SimConfig, NetworkIdentity) {
    {
        const sim::NetIdentity d0 = sim::load_net_identity(0);
        const sim::NetIdentity d1 = sim::load_net_identity(1);
        EXPECT_EQ(d0.ip >> 24, 10u);
        EXPECT_EQ(d0.ip & 0xff, 1u);
        EXPECT_EQ(d1.ip & 0xff, 2u);
        EXPECT_EQ(d0.ip >> 8, d1.ip >> 8);
        EXPECT_NE(d0.ip, d1.ip);
        EXPECT_EQ(d0.mac >> 40, 0x02u); // locally administered
        EXPECT_EQ(d0.mac & 0xffffffffu, d0.ip);
        // Every device number a program may open has an address of its own (254 and 255 aliased 0 and 1).
        std::set<uint32_t> ips;
        for (uint32_t d = 0; d < 256; ++d) ips.insert(sim::load_net_identity(d).ip);
        EXPECT_EQ(ips.size(), 256u);
        EXPECT_EQ(sim::load_net_identity(254).ip & 0xff, 1u);
    }
    {
        EnvGuard ip("COYOTE_SIM_IP", "255.255.255.254"); // device 1 is the last address; device 2 would wrap
        EXPECT_EQ(sim::ip_to_string(sim::load_net_identity(1).ip), "255.255.255.255");
        auto [code, what] = error_of([] { sim::load_net_identity(2); });
        EXPECT_NE(what.find("past 255.255.255.255"), std::string::npos) << what;
    }
    {
        EnvGuard ip("COYOTE_SIM_IP", "192.168.7.10");
        EnvGuard ip3("COYOTE_SIM_IP_3", "172.16.0.9");
        EnvGuard mac("COYOTE_SIM_MAC_3", "02:aa:bb:cc:dd:ee");
        EXPECT_EQ(sim::ip_to_string(sim::load_net_identity(0).ip), "192.168.7.10");
        EXPECT_EQ(sim::ip_to_string(sim::load_net_identity(2).ip), "192.168.7.12");
        EXPECT_EQ(sim::ip_to_string(sim::load_net_identity(3).ip), "172.16.0.9");
        EXPECT_EQ(sim::mac_to_string(sim::load_net_identity(3).mac), "02:aa:bb:cc:dd:ee");
    }
    {
        EnvGuard ip("COYOTE_SIM_IP_0", "10.1.2");
        auto [code, what] = error_of([] { sim::load_net_identity(0); });
        EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument));
        EXPECT_NE(what.find("COYOTE_SIM_IP_0"), std::string::npos) << what;
        EnvGuard mac("COYOTE_SIM_MAC_1", "02:zz:00:00:00:00");
        EXPECT_EQ(error_of([] { sim::load_net_identity(1); }).first, static_cast<int>(Errc::invalid_argument));
    }
    // The device reports it and stores it in the shared state header.
    EnvGuard ip("COYOTE_SIM_IP_23", "10.9.8.7");
    cThread t(0, getpid(), 23);
    auto dev = coyote::detail::open_device(23, 0);
    EXPECT_EQ(dev->ip_address(), 0x0a090807u);
    EXPECT_EQ(t.getQpair()->local.ip_addr, 0x0a090807u);
    auto seg = coyote::detail::ShmSegment::open(sim::state_segment_name(23, 0));
    const auto* st = static_cast<const sim::SharedState*>(seg.get());
    EXPECT_EQ(st->magic, sim::k_state_magic);
    EXPECT_EQ(st->ip_addr, 0x0a090807u);
    EXPECT_EQ(st->mac_addr, dev->mac_address());
}

TEST_F(SimConfig, StateSegmentLifecycle) {
    const std::string name = sim::state_segment_name(24, 0);
    const std::string path = "/dev/shm" + name;
    {
        cThread t(0, getpid(), 24);
        struct stat sb {};
        ASSERT_EQ(::stat(path.c_str(), &sb), 0) << path;
        EXPECT_EQ(sb.st_mode & 0777, 0600u);
        auto seg = coyote::detail::ShmSegment::open(name);
        const auto* st = static_cast<const sim::SharedState*>(seg.get());
        EXPECT_EQ(st->owner_pid, getpid());
        EXPECT_EQ(st->owner_start_time, sim::process_start_time(getpid()));
        EXPECT_EQ(st->device, 24u);
        EXPECT_EQ(st->vfid, 0);
        EXPECT_GE(st->net_offset, sizeof(sim::SharedState));
        EXPECT_GE(seg.size(), st->net_offset + st->net_size);
        // Completions are counted in the segment.
        auto* a = t.getMem({coyote::CoyoteAllocType::REG, 4096});
        t.clearCompleted();
        t.invoke(coyote::CoyoteOper::LOCAL_READ, coyote::localSg{.addr = a, .len = 64, .dest = 15});
        EXPECT_EQ(st->wback[coyote::RD_WBACK * coyote::N_CTID_MAX + static_cast<uint32_t>(t.getCtid())].load(), 1u);
    }
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << path << " survived the device";
}

std::string make_fake_segment(pid_t pid, const std::string& rest, uint64_t start_time) {
    const std::string name = "coyote-sim." + std::to_string(getuid()) + "." + std::to_string(pid) + "." + rest;
    const std::string path = "/dev/shm/" + name;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return {};
    if (rest.size() > 6 && rest.compare(rest.size() - 6, 6, ".state") == 0) {
        sim::SharedState st;
        st.magic = sim::k_state_magic;
        st.version = sim::k_state_version;
        st.owner_pid = pid;
        st.owner_start_time = start_time;
        [[maybe_unused]] auto n = ::write(fd, &st, sizeof(st));
    } else {
        [[maybe_unused]] auto n = ::write(fd, "x", 1);
    }
    ::close(fd);
    return path;
}

TEST_F(SimConfig, StaleSegmentsOfDeadProcessesAreReclaimed) {
    // A live segment of a live process is left alone. The device is opened before the stale segments exist:
    // opening the first device of a process reclaims stale segments itself, which would leave nothing for the
    // explicit call below when this test runs alone.
    cThread t(0, getpid(), 25);
    const std::string live = "/dev/shm" + sim::state_segment_name(25, 0);
    ASSERT_EQ(::access(live.c_str(), F_OK), 0);
    // A pid that surely is dead: a child that exited and was reaped.
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    ASSERT_GT(child, 0);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);

    const std::string dead_state = make_fake_segment(child, "d0v0.state", 12345);
    const std::string dead_buf = make_fake_segment(child, "d0v0.buf0", 0);
    // Our own pid, but an older incarnation (different start time): pid reuse.
    const std::string reused = make_fake_segment(getpid(), "d9v9.state", sim::process_start_time(getpid()) + 1);
    ASSERT_FALSE(dead_state.empty());
    ASSERT_FALSE(dead_buf.empty());
    ASSERT_FALSE(reused.empty());
    // Names that are not ours (no numeric pid) are ignored too.
    const std::string other = "/dev/shm/coyote-sim." + std::to_string(getuid()) + ".lock.test";
    {
        const int fd = ::open(other.c_str(), O_RDWR | O_CREAT, 0600);
        ASSERT_GE(fd, 0);
        ::close(fd);
    }

    // Another sim process of this user (a test running beside this one) may reclaim the dead child's segments first:
    // what counts is that they are gone and the others stay.
    (void)sim::reclaim_stale_segments();
    EXPECT_NE(::access(dead_state.c_str(), F_OK), 0) << dead_state;
    EXPECT_NE(::access(dead_buf.c_str(), F_OK), 0) << dead_buf;
    EXPECT_EQ(::access(live.c_str(), F_OK), 0) << live;
    EXPECT_EQ(::access(other.c_str(), F_OK), 0) << other;
    ::unlink(other.c_str());
    // The pid-reuse case removes our own stale-looking state segment; the live one of device 25 stays.
    EXPECT_NE(::access(reused.c_str(), F_OK), 0) << reused;
}

TEST_F(SimConfig, ProcessLiveness) {
    EXPECT_TRUE(sim::process_alive(getpid(), sim::process_start_time(getpid())));
    EXPECT_TRUE(sim::process_alive(getpid(), 0));
    EXPECT_FALSE(sim::process_alive(getpid(), sim::process_start_time(getpid()) + 7));
    EXPECT_FALSE(sim::process_alive(0, 0));
    EXPECT_GT(sim::process_start_time(getpid()), 0u);
}

TEST_F(SimConfig, ProcessFdSeesTheExitOfThatProcessOnly) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    const uint64_t started = sim::process_start_time(child);
    ASSERT_GT(started, 0u);
    // A start time that is not the child's names another process: no pidfd.
    EXPECT_FALSE(static_cast<bool>(sim::open_process_fd(child, started + 3)));
    EXPECT_FALSE(static_cast<bool>(sim::open_process_fd(0, 0)));
    coyote::detail::Fd fd = sim::open_process_fd(child, started);
    if (!fd) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
        GTEST_SKIP() << "pidfd_open is not available here (the NIC falls back to kill + /proc)";
    }
    EXPECT_FALSE(sim::process_exited(fd));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    bool exited = false;
    for (int i = 0; i < 500 && !exited; ++i) {
        exited = sim::process_exited(fd);
        if (!exited) ::usleep(2000);
    }
    EXPECT_TRUE(exited) << "the pidfd did not report the exit of the killed child within 1 s";
    ::waitpid(child, nullptr, 0);
}

}  // namespace

namespace {

TEST(SimSegments, ExitUnlinksSegmentsOfDevicesNeverDestroyed) {
    ::setenv("COYOTE_BACKEND", "sim", 1);
    const pid_t child = ::fork();
    if (child == 0) {
        // A device and a remote buffer still alive when exit() runs (no stack unwinding). Held by a static, so that
        // LeakSanitizer sees it reachable: never destroying it is the point of the test.
        static cThread* t = nullptr;
        t = new cThread(0, getpid(), 26);
        void* p = t->getMem({.alloc = coyote::CoyoteAllocType::REG, .size = 4096, .remote = true});
        const bool ok = p != nullptr && ::access(("/dev/shm" + sim::state_segment_name(26, 0)).c_str(), F_OK) == 0;
        std::exit(ok ? 0 : 3);
    }
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    const std::string prefix = "coyote-sim." + std::to_string(getuid()) + "." + std::to_string(child) + ".";
    EXPECT_NE(::access(("/dev/shm/" + prefix + "d26v0.state").c_str(), F_OK), 0);
    EXPECT_NE(::access(("/dev/shm/" + prefix + "d26v0.buf0").c_str(), F_OK), 0);
}

}  // namespace
