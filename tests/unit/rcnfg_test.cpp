// cRcnfg on the sim backend: bitstream file checks, sim bitstream format, model swaps, the loader lock.
#include <coyote/cRcnfg.hpp>
#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "rcnfg/bitstream_file.hpp"
#include "test_support.hpp"

namespace {

namespace rc = coyote::detail::rcnfg;
using coyote_test::error_of;

std::string temp_dir() { return coyote_test::scratch_dir("coyote-rcnfg-test"); }

std::string write_file(const std::string& name, const std::vector<char>& bytes) {
    return coyote_test::write_scratch_file("coyote-rcnfg-test", name, bytes);
}

std::string sim_bitstream(const std::string& name, rc::SimBitstream::Kind kind, const std::string& model,
                          const std::string& shell = "") {
    return write_file(name, rc::encode_sim_bitstream({kind, model, shell}));
}

/// Runs two-input float addition through vFPGA 0 (dest 0 + dest 1 -> dest 0) and says whether c == a + b.
bool adds_vectors(coyote::cThread& t) {
    constexpr uint32_t n = 256;
    auto* a = static_cast<float*>(t.getMem({coyote::CoyoteAllocType::REG, n * 4}));
    auto* b = static_cast<float*>(t.getMem({coyote::CoyoteAllocType::REG, n * 4}));
    auto* c = static_cast<float*>(t.getMem({coyote::CoyoteAllocType::REG, n * 4}));
    for (uint32_t i = 0; i < n; ++i) {
        a[i] = static_cast<float>(i);
        b[i] = 2.0f * static_cast<float>(i);
        c[i] = -1.0f;
    }
    t.invoke(coyote::CoyoteOper::LOCAL_READ, coyote::localSg{.addr = a, .len = n * 4, .dest = 0});
    t.invoke(coyote::CoyoteOper::LOCAL_READ, coyote::localSg{.addr = b, .len = n * 4, .dest = 1});
    t.invoke(coyote::CoyoteOper::LOCAL_WRITE, coyote::localSg{.addr = c, .len = n * 4, .dest = 0});
    const bool done = coyote_test::wait_completed(t, coyote::CoyoteOper::LOCAL_WRITE, 1);
    t.clearCompleted();
    bool sums = done;
    for (uint32_t i = 0; i < n && sums; ++i) sums = c[i] == 3.0f * static_cast<float>(i);
    t.freeMem(a);
    t.freeMem(b);
    t.freeMem(c);
    return sums;
}

TEST(SimBitstream, RoundTrip) {
    const rc::SimBitstream in{rc::SimBitstream::Kind::shell, "vadd", "n_fpga_reg=2"};
    const auto bytes = rc::encode_sim_bitstream(in);
    const auto out = rc::decode_sim_bitstream(bytes, "mem");
    EXPECT_EQ(out.kind, in.kind);
    EXPECT_EQ(out.model, "vadd");
    EXPECT_EQ(out.shell_settings, "n_fpga_reg=2");
}

TEST(SimBitstream, DecodeErrorsNameTheProblem) {
    auto bytes = rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, "vadd", ""});
    auto fails_with = [](std::vector<char> b, const std::string& what) {
        auto [code, msg] = error_of([&] { rc::decode_sim_bitstream(b, "x.bin"); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << what;
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
    };
    fails_with({bytes.begin(), bytes.end() - 3}, "truncated");
    fails_with({bytes.begin(), bytes.begin() + 10}, "truncated");
    auto extra = bytes;
    extra.push_back('x');
    fails_with(extra, "unexpected bytes");
    auto corrupt = bytes;
    corrupt[21] ^= 0x20;
    fails_with(corrupt, "checksum");
    auto magic = bytes;
    magic[0] = 'X';
    fails_with(magic, "wrong magic");
    auto version = bytes;
    version[8] = 9;
    fails_with(version, "version 9");
    // An app bitstream carrying shell changes (only a crafted file can): refused, not silently ignored.
    fails_with(rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, "vadd", "rdma=0"}), "with shell changes");
    // A model name with control characters (a forged file: the writer refuses them) would garble every message
    // that quotes it: refused.
    auto forged = rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, "vadd", ""});
    forged[forged.size() - 4 - 2] = '\n'; // the 'd' of "vadd"
    const uint32_t crc = rc::crc32(std::span<const char>(forged.data(), forged.size() - 4));
    std::memcpy(forged.data() + forged.size() - 4, &crc, 4);
    fails_with(forged, "control characters");
    EXPECT_NE(error_of([] { rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, std::string("va\0dd", 5), ""}); })
                  .second.find("control characters"),
              std::string::npos);
}

TEST(BitstreamFile, MissingEmptyOversizedAndWrongFormat) {
    coyote::cRcnfg rcnfg(0);
    auto fails_with = [&](const std::string& path, const std::string& what) {
        auto [code, msg] = error_of([&] { rcnfg.reconfigureApp(path, 0); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << what;
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
    };
    fails_with(temp_dir() + "/does-not-exist.bin", "no such file");
    fails_with(write_file("empty.bin", {}), "empty");
    fails_with(write_file("huge.bin", std::vector<char>(rc::k_max_sim_bitstream + 1, 'a')), "limit");
    fails_with(write_file("text.bin", std::vector<char>(100, 'a')), "wrong magic");
    fails_with(temp_dir(), "not a regular file");
    auto bytes = rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, "vadd", ""});
    fails_with(write_file("cut.bin", {bytes.begin(), bytes.end() - 1}), "truncated");
    fails_with(sim_bitstream("shell_as_app.bin", rc::SimBitstream::Kind::shell, "vadd"), "shell bitstream");
    fails_with(sim_bitstream("unknown_model.bin", rc::SimBitstream::Kind::app, "no_such_model"), "no_such_model");
    // The reason is quoted once: no second error code, and no environment variable the user did not set.
    const std::string msg =
        error_of([&] { rcnfg.reconfigureApp(sim_bitstream("unknown.bin", rc::SimBitstream::Kind::app, "nope"), 0); })
            .second;
    EXPECT_EQ(msg.find("invalid argument: invalid argument"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("COYOTE_SIM_MODEL"), std::string::npos) << msg;
    // A vFPGA the shell does not have, as opening a cThread there says.
    auto [code, beyond] = error_of(
        [&] { rcnfg.reconfigureApp(sim_bitstream("app_beyond.bin", rc::SimBitstream::Kind::app, "vadd"), 99); });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::no_device));
    EXPECT_NE(beyond.find("vFPGA 99 does not exist"), std::string::npos) << beyond;
    EXPECT_EQ(rcnfg.getReconfigurationCount(), 0u);
}

TEST(BitstreamFile, HwFormatChecks) {
    std::vector<char> words(64, 0);
    EXPECT_NE(error_of([&] { rc::check_hw_bitstream(words, "a.bin"); }).second.find("sync word"), std::string::npos);
    const char sync[4] = {char(0xAA), char(0x99), char(0x55), char(0x66)};
    std::copy(sync, sync + 4, words.begin() + 16);
    EXPECT_EQ(error_of([&] { rc::check_hw_bitstream(words, "a.bin"); }).first, 0);
    words.pop_back();
    EXPECT_NE(error_of([&] { rc::check_hw_bitstream(words, "a.bin"); }).second.find("truncated"), std::string::npos);
    auto sim = rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, "vadd", ""});
    EXPECT_NE(error_of([&] { rc::check_hw_bitstream(sim, "s.bin"); }).second.find("sim bitstream"), std::string::npos);
}

TEST(Reconfigure, AppSwapsTheModelOfAnOpenVfpga) {
    coyote_test::EnvGuard model("COYOTE_SIM_MODEL", "passthrough");
    coyote::cThread t(0, ::getpid());
    EXPECT_FALSE(adds_vectors(t));
    coyote::cRcnfg rcnfg(0);
    rcnfg.reconfigureApp(sim_bitstream("app_vadd.bin", rc::SimBitstream::Kind::app, "vadd"), 0);
    EXPECT_TRUE(adds_vectors(t));
    rcnfg.reconfigureApp(sim_bitstream("app_pass.bin", rc::SimBitstream::Kind::app, "passthrough"), 0);
    EXPECT_FALSE(adds_vectors(t));
    EXPECT_EQ(rcnfg.getReconfigurationCount(), 2u);
}

TEST(Reconfigure, ShellLoadAppliesToVfpgasOpenedLater) {
    coyote_test::EnvGuard model("COYOTE_SIM_MODEL", "passthrough");
    coyote::cRcnfg rcnfg(0);
    rcnfg.reconfigureShell(sim_bitstream("shell_vadd.bin", rc::SimBitstream::Kind::shell, "vadd", "n_fpga_reg=2"));
    coyote::cThread t(1, ::getpid()); // vFPGA 1 exists only with the new shell
    EXPECT_TRUE(adds_vectors(t));
    auto [code, msg] = error_of([&] {
        rcnfg.reconfigureShell(sim_bitstream("shell_bad.bin", rc::SimBitstream::Kind::shell, "", "no_such_key=1"));
    });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << msg;
}

// Shell bitstreams loaded one after the other: a key set again replaces the earlier value (before: their texts were
// joined, and "key 'n_fpga_reg' is given twice" then failed every later cThread of the device).
TEST(Reconfigure, ALaterShellLoadReplacesTheKeysItSetsAgain) {
    constexpr uint32_t device = 5; // no other test reconfigures it
    coyote::cRcnfg rcnfg(device);
    const std::string two = sim_bitstream("shell_two.bin", rc::SimBitstream::Kind::shell, "", "n_fpga_reg=2");
    rcnfg.reconfigureShell(two);
    rcnfg.reconfigureShell(sim_bitstream("shell_three.bin", rc::SimBitstream::Kind::shell, "", "n_fpga_reg=3"));
    { coyote::cThread t(2, ::getpid(), device); } // vFPGA 2 exists with the second shell only
    rcnfg.reconfigureShell(two);
    rcnfg.reconfigureShell(two); // the same file twice
    { coyote::cThread t(1, ::getpid(), device); }
    auto [code, msg] = error_of([&] { coyote::cThread t(2, ::getpid(), device); });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::no_device)) << msg;
}

TEST(Reconfigure, OneLoaderAtATimePerDevice) {
    coyote_test::EnvGuard slow("COYOTE_SIM_RECONFIG_MS", "150");
    const std::string path = sim_bitstream("app_lock.bin", rc::SimBitstream::Kind::app, "passthrough");
    const auto t0 = std::chrono::steady_clock::now();
    std::thread other([&] { coyote::cRcnfg(0).reconfigureApp(path, 0); });
    coyote::cRcnfg(0).reconfigureApp(path, 0);
    other.join();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
}

// A load that waits for another longer than COYOTE_RCNFG_TIMEOUT_MS gives up naming the holder (before: it waited
// without a deadline); the lock file is this user's own.
TEST(Reconfigure, AWaitForAnotherLoaderHasADeadline) {
    coyote_test::EnvGuard slow("COYOTE_SIM_RECONFIG_MS", "1500");
    const std::string path = sim_bitstream("app_deadline.bin", rc::SimBitstream::Kind::app, "passthrough");
    std::atomic<bool> started{false};
    std::thread holder([&] {
        started = true;
        coyote::cRcnfg(0).reconfigureApp(path, 0);
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the holder has the lock by now
    {
        coyote_test::EnvGuard quick("COYOTE_RCNFG_TIMEOUT_MS", "100");
        auto [code, msg] = error_of([&] { coyote::cRcnfg(0).reconfigureApp(path, 0); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::timeout)) << msg;
        EXPECT_NE(msg.find("held by pid " + std::to_string(::getpid())), std::string::npos) << msg;
    }
    holder.join();
    struct stat st {};
    const std::string lock = "/tmp/coyote-rcnfg-u" + std::to_string(::geteuid()) + "-dev-0.lock";
    ASSERT_EQ(::stat(lock.c_str(), &st), 0) << lock;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace

namespace {

// Another user's file at the loader lock's name (he could hold its flock and stall every reconfiguration of ours
// until COYOTE_RCNFG_TIMEOUT_MS): refused at once, naming its owner, and left alone. Device 217: no other test's.
TEST(LoaderLock, RefusesAnotherUsersLockFile) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
    const std::string lock = "/tmp/coyote-rcnfg-u" + std::to_string(::geteuid()) + "-dev-217.lock";
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
    ASSERT_GE(fd, 0) << lock;
    ASSERT_EQ(::fchmod(fd, 0666), 0);
    ASSERT_EQ(::fchown(fd, 65534, static_cast<gid_t>(-1)), 0);
    ::close(fd);
    const std::string path = sim_bitstream("app_foreign_lock.bin", rc::SimBitstream::Kind::app, "passthrough");
    coyote_test::EnvGuard quick("COYOTE_RCNFG_TIMEOUT_MS", "2000");
    const auto t0 = std::chrono::steady_clock::now();
    auto [code, msg] = error_of([&] { coyote::cRcnfg(217).reconfigureApp(path, 0); });
    const auto took = std::chrono::steady_clock::now() - t0;
    struct stat st {};
    const bool kept = ::stat(lock.c_str(), &st) == 0 && st.st_uid == 65534;
    (void)::unlink(lock.c_str());
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << msg;
    EXPECT_NE(msg.find("belongs to uid 65534"), std::string::npos) << msg;
    EXPECT_LT(took, std::chrono::seconds(1)) << "waited on the other user's file";
    EXPECT_TRUE(kept);
}

}  // namespace
