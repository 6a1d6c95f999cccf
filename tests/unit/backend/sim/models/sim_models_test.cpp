// User-logic models of the sim backend: built-ins (passthrough, perf_local, vadd), a model loaded from a
// shared object, selection errors, interrupts raised by a model.
#include "unit/test_support.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <filesystem>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.hpp"
#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/models.hpp"
#include "detail/settings.hpp"

using coyote::CoyoteAllocType;
using coyote::CoyoteOper;
using coyote::cThread;
using coyote::Errc;
using coyote::localSg;

using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::wait_completed;

namespace {

class SimModels : public ::testing::Test {
protected:
    coyote_test::SimDefaults sim_defaults;

    /// `n` elements of type T in memory of `t` (pages of `type`).
    template <typename T>
    static T* alloc(cThread& t, uint32_t n, CoyoteAllocType type = CoyoteAllocType::REG) {
        return static_cast<T*>(t.getMem({type, n * static_cast<uint32_t>(sizeof(T))}));
    }
};

TEST_F(SimModels, PerfLocalAddsOneToEveryWord) {
    EnvGuard m("COYOTE_SIM_MODEL", "perf_local");
    cThread t(0, getpid(), 10);
    const uint32_t n = 1024;
    auto* in = alloc<uint32_t>(t, n);
    auto* out = alloc<uint32_t>(t, n);
    for (uint32_t i = 0; i < n; ++i) in[i] = i * 3 + 0xfffffff0u; // includes wrap-around
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = in, .len = n * 4}, localSg{.addr = out, .len = n * 4});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(out[i], in[i] + 1u) << i;

    // Output words split across writes (a write ends inside a word); a command with a 2-byte tail.
    std::memset(out, 0, n * 4);
    auto* inb = reinterpret_cast<char*>(in);
    auto* outb = reinterpret_cast<char*>(out);
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = outb, .len = 6, .dest = 1});
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = outb + 6, .len = 36, .dest = 1});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = inb, .len = 12, .dest = 1});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = inb + 12, .len = 30, .dest = 1});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 3));
    for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(out[i], in[i] + 1u) << i;
    EXPECT_EQ(std::memcmp(outb + 40, inb + 40, 2), 0); // trailing partial word passes unchanged
}

TEST_F(SimModels, VaddAddsTwoFloatStreams) {
    EnvGuard m("COYOTE_SIM_MODEL", "vadd");
    cThread t(0, getpid(), 11);
    const uint32_t n = 4096;
    auto* a = alloc<float>(t, n, CoyoteAllocType::HPF);
    auto* b = alloc<float>(t, n, CoyoteAllocType::HPF);
    auto* c = alloc<float>(t, n, CoyoteAllocType::HPF);
    for (uint32_t i = 0; i < n; ++i) {
        a[i] = static_cast<float>(i) * 0.5f;
        b[i] = 1000.0f - static_cast<float>(i);
    }
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = c, .len = n * 4, .dest = 0});
    // a in two parts, b in one: the model buffers until both sides have data.
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a, .len = n * 2, .dest = 0});
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b, .len = n * 4, .dest = 1});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a + n / 2, .len = n * 2, .dest = 0});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 3u);
    for (uint32_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(c[i], a[i] + b[i]) << i;
}

/// Operands large enough to queue: a two-operand model holds the first one in place until its partner comes, and
/// the read completes then. A read with nothing queued behind it completes at once (the model copies it), so the
/// program may reuse its buffer before it posts the partner. T: the model's element type.
template <typename T>
void check_queued_operands(const char* model, uint32_t device) {
    EnvGuard m("COYOTE_SIM_MODEL", model);
    cThread t(0, getpid(), device);
    const uint32_t n = 256 * 1024; // 1 MiB per operand
    auto* a = static_cast<T*>(t.getMem({CoyoteAllocType::HPF, n * 4}));
    auto* b = static_cast<T*>(t.getMem({CoyoteAllocType::HPF, n * 4}));
    auto* c = static_cast<T*>(t.getMem({CoyoteAllocType::HPF, n * 4}));
    for (uint32_t i = 0; i < n; ++i) {
        a[i] = static_cast<T>(static_cast<T>(i % 1000) * static_cast<T>(3));
        b[i] = static_cast<T>(static_cast<T>(7) + static_cast<T>(i % 77));
    }
    const localSg sa{.addr = a, .len = n * 4, .dest = 0};
    const localSg sb{.addr = b, .len = n * 4, .dest = 1};
    const localSg sc{.addr = c, .len = n * 4, .dest = 0};
    t.clearCompleted();
    for (int k = 0; k < 4; ++k) {
        t.invoke(CoyoteOper::LOCAL_READ, sb);
        t.invoke(CoyoteOper::LOCAL_TRANSFER, sa, sc);
    }
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 4)) << model;
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 8)) << model;
    for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(c[i], static_cast<T>(a[i] + b[i])) << model << " " << i;

    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_READ, sb);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1)) << model; // no partner queued: it must not wait
    std::vector<T> old_b(b, b + n);
    for (uint32_t i = 0; i < n; ++i) b[i] = static_cast<T>(-100000); // the completed read's buffer is free again
    std::memset(c, 0, n * 4);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, sa, sc);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1)) << model;
    for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(c[i], static_cast<T>(a[i] + old_b[i])) << model << " " << i;
}

TEST_F(SimModels, TwoOperandModelsHoldQueuedOperandsAndCopyOnlyWhenNothingFollows) {
    check_queued_operands<float>("vadd", 12);
    check_queued_operands<int32_t>("vadd_int32", 13);
}

/// Coyote's sweep pattern past the command FIFO's depth: 32 pairs (a read of b on dest 1, a transfer of a on dest
/// 0) posted back to back, each large enough to queue. The held reads fill the FIFO, so posts find it full and run
/// queued commands until a pair completes. Each pair has its own b and its own destination: a result paired with
/// the wrong operand or written out of order fails.
template <typename T>
void check_sweep_past_fifo_depth(const char* model, uint32_t device) {
    EnvGuard m("COYOTE_SIM_MODEL", model);
    cThread t(0, getpid(), device);
    constexpr uint32_t pairs = 32;
    constexpr uint32_t n = 32 * 1024; // 128 KiB per operand: above the inline limit, so commands queue
    auto* a = static_cast<T*>(t.getMem({CoyoteAllocType::HPF, n * 4}));
    auto* b = static_cast<T*>(t.getMem({CoyoteAllocType::HPF, pairs * n * 4}));
    auto* c = static_cast<T*>(t.getMem({CoyoteAllocType::REG, pairs * n * 4}));
    for (uint32_t i = 0; i < n; ++i) a[i] = static_cast<T>(static_cast<T>(i % 513) * static_cast<T>(2));
    for (uint32_t i = 0; i < pairs * n; ++i) b[i] = static_cast<T>(static_cast<T>(i / n + 1) * static_cast<T>(1000) + static_cast<T>(i % 7));
    t.clearCompleted();
    for (uint32_t k = 0; k < pairs; ++k) {
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b + k * n, .len = n * 4, .dest = 1});
        t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = n * 4, .dest = 0},
                 localSg{.addr = c + k * n, .len = n * 4, .dest = 0});
    }
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, pairs)) << model;
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 2 * pairs)) << model;
    for (uint32_t k = 0; k < pairs; ++k)
        for (uint32_t i = 0; i < n; ++i)
            ASSERT_EQ(c[k * n + i], static_cast<T>(a[i] + b[k * n + i])) << model << " pair " << k << " " << i;
}

TEST_F(SimModels, TwoOperandModelsRunCoyotesSweepPastTheCommandFifoDepth) {
    check_sweep_past_fifo_depth<float>("vadd", 17);
    check_sweep_past_fifo_depth<int32_t>("vadd_int32", 18);
}

TEST_F(SimModels, ModelFromSharedObject) {
    EnvGuard m("COYOTE_SIM_MODEL", SIM_MODEL_PLUGIN);
    cThread t(0, getpid(), 12);
    t.setCSR(0x5a, 0);
    std::vector<uint8_t> in(10000), out(10000);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = in.data(), .len = 10000, .dest = 2},
             localSg{.addr = out.data(), .len = 10000, .dest = 2});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] ^ 0x5a) << i;
    // The model writes CSRs the host reads.
    t.setCSR(21, 3);
    EXPECT_EQ(t.getCSR(4), 42u);
    // printDebug names the plug-in by its path and the name it gives itself.
    testing::internal::CaptureStdout();
    t.printDebug();
    const std::string debug = testing::internal::GetCapturedStdout();
    EXPECT_NE(debug.find(std::string(SIM_MODEL_PLUGIN) + " (xor_plugin)"), std::string::npos) << debug;
}

TEST_F(SimModels, AModelsExceptionsNameTheModelAndReachTheThreadOnce) {
    EnvGuard m("COYOTE_SIM_MODEL", SIM_MODEL_PLUGIN);
    cThread t(0, getpid(), 18);
    std::vector<uint8_t> in(4096, 1), out(4096);
    for (const auto& [mode, says] : {std::pair<uint64_t, std::string>{1, "xor_plugin: asked to fail"},
                                     {2, "Shell::push: output dest 99 is out of range (0..15)"}}) {
        t.setCSR(mode, 5);
        t.clearCompleted();
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = in.data(), .len = 4096, .dest = 0});
        std::string error;
        for (int i = 0; i < 100000 && error.empty(); ++i) {
            try {
                (void)t.checkCompleted(CoyoteOper::LOCAL_READ);
            } catch (const coyote::Error& e) {
                error = e.what();
            }
        }
        EXPECT_NE(error.find("user-logic model '" + std::string(SIM_MODEL_PLUGIN) + "' on input dest 0"),
                  std::string::npos) << error;
        EXPECT_NE(error.find(says), std::string::npos) << error;
        EXPECT_NO_THROW((void)t.checkCompleted(CoyoteOper::LOCAL_READ)); // reported once
    }
    // The model works again once asked to.
    t.setCSR(0, 5);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = in.data(), .len = 4096}, localSg{.addr = out.data(), .len = 4096});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(out[0], 1u ^ static_cast<uint8_t>(t.getCSR(0) & 0xff));
}

TEST_F(SimModels, ABareSoNameIsAFileOfTheCurrentDirectory) {
    // "name.so" without a '/' is a path, as the docs say: found in the working directory, not only on the library
    // search path. A copy under a name of its own, in a directory no search path holds.
    const std::filesystem::path dir = coyote_test::scratch_dir("coyote-bare-model");
    std::filesystem::copy_file(SIM_MODEL_PLUGIN, dir / "my_model.so");
    const auto before = std::filesystem::current_path();
    std::filesystem::current_path(dir);
    EnvGuard m("COYOTE_SIM_MODEL", "my_model.so");
    std::string error;
    try {
        cThread t(0, getpid(), 17);
        t.setCSR(21, 3);
        EXPECT_EQ(t.getCSR(4), 42u);
    } catch (const coyote::Error& e) {
        error = e.what();
    }
    std::filesystem::current_path(before);
    std::filesystem::remove_all(dir);
    EXPECT_EQ(error, "");
}

TEST_F(SimModels, InterruptRaisedByModelRunsHandlerOnItsOwnThread) {
    EnvGuard m("COYOTE_SIM_MODEL", SIM_MODEL_PLUGIN);
    coyote_test::InterruptLog log;
    {
        cThread t(0, getpid(), 13, log.callback());
        t.setCSR(static_cast<uint64_t>(t.getCtid()), 2);
        t.setCSR(77, 1);
        t.setCSR(78, 1);
        ASSERT_TRUE(log.wait_for(2));
        EXPECT_EQ(log.values(), (std::vector<int>{77, 78}));
        EXPECT_NE(log.thread(), std::this_thread::get_id());
        auto dev = coyote::detail::open_device(13, 0);
        const std::string dbg = dev->debug_string(t.getCtid());
        EXPECT_NE(dbg.find("Notifications received:"), std::string::npos);
        // A ctid without a handler: the interrupt is counted, nothing runs.
        cThread other(0, getpid(), 13);
        t.setCSR(static_cast<uint64_t>(other.getCtid()), 2);
        t.setCSR(5, 1);
        const std::string dbg2 = dev->debug_string(other.getCtid());
        EXPECT_NE(dbg2.find("Notifications without handler:"), std::string::npos) << dbg2;
    }  // destruction stops and joins the interrupt thread
    EXPECT_EQ(log.values().size(), 2u);
}

TEST_F(SimModels, SelectionErrorsNameTheModel) {
    const auto inval = static_cast<int>(Errc::invalid_argument);
    {
        EnvGuard m("COYOTE_SIM_MODEL", "no_such_model");
        auto [code, what] = error_of([] { cThread t(0, getpid(), 14); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("no_such_model"), std::string::npos) << what;
        EXPECT_NE(what.find("passthrough"), std::string::npos) << what;
    }
    {
        EnvGuard m("COYOTE_SIM_MODEL", "/nonexistent/dir/model.so");
        auto [code, what] = error_of([] { cThread t(0, getpid(), 15); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("/nonexistent/dir/model.so"), std::string::npos) << what;
        EXPECT_NE(what.find("No such file"), std::string::npos) << what; // dlerror text
    }
    {
        // A real shared object without the factory.
        EnvGuard m("COYOTE_SIM_MODEL", COYOTE_RUNTIME_LIB);
        auto [code, what] = error_of([] { cThread t(0, getpid(), 16); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("coyote_sim_create_model"), std::string::npos) << what;
        EXPECT_NE(what.find(COYOTE_RUNTIME_LIB), std::string::npos) << what;
    }
    // After the failures, the device opens fine with the default model.
    EnvGuard m("COYOTE_SIM_MODEL", nullptr);
    EXPECT_NO_THROW({ cThread t(0, getpid(), 14); });
}

TEST_F(SimModels, ExceptionsOfAnyTypeFromTheFactoryOrACsrWriteBecomeErrorsNamingTheModel) {
    // An int thrown by the factory or by on_csr_write went through the runtime as is: the program got no
    // coyote::Error (std::terminate in a program catching std::exception).
    const auto inval = static_cast<int>(Errc::invalid_argument);
    EnvGuard m("COYOTE_SIM_MODEL", SIM_MODEL_PLUGIN);
    {
        EnvGuard ctor("SIM_MODEL_PLUGIN_CTOR", "int");
        auto [code, what] = error_of([] { cThread t(0, getpid(), 19); });
        EXPECT_EQ(code, inval) << what;
        EXPECT_NE(what.find("the factory of user-logic model '" + std::string(SIM_MODEL_PLUGIN) + "' threw"),
                  std::string::npos) << what;
        EXPECT_NE(what.find("not std::exception"), std::string::npos) << what;
    }
    cThread t(0, getpid(), 19);
    auto [code, what] = error_of([&] { t.setCSR(1, 6); });
    EXPECT_EQ(code, inval) << what;
    EXPECT_NE(what.find("failed on the write of CSR 6"), std::string::npos) << what;
    t.setCSR(21, 3); // the model goes on
    EXPECT_EQ(t.getCSR(4), 42u);
}

TEST_F(SimModels, AHugeReserveWithNoWritePendingGetsABoundedShellBuffer) {
    // The shell buffer was allocated at the size asked: reserve(dest, 2^60) failed with bad_alloc.
    EnvGuard m("COYOTE_SIM_MODEL", SIM_MODEL_PLUGIN);
    cThread t(0, getpid(), 24);
    std::vector<uint8_t> in(4096, 1);
    t.setCSR(3, 5);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = in.data(), .len = 4096});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    EXPECT_EQ(t.getCSR(7), 2u << 20);
}

/// The message of the cThread constructor's error with COYOTE_SIM_MODEL=`spec` ("" when it opens).
std::string open_error(const std::string& spec, uint32_t device) {
    EnvGuard m("COYOTE_SIM_MODEL", spec.c_str());
    auto open = std::async(std::launch::async, [device] {
        try {
            cThread t(0, getpid(), device);
        } catch (const coyote::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    });
    if (open.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
        // dlopen waits in open(2) for a writer of a FIFO: be one, so that the test ends.
        const int fd = ::open(spec.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) ::close(fd);
        (void)open.get();
        return "hung";
    }
    return open.get();
}

TEST_F(SimModels, APluginOtherUsersCouldChangeOrThatIsNoFileIsRefusedBeforeItLoads) {
    namespace fs = std::filesystem;
    const fs::path dir = coyote_test::scratch_dir("coyote-model-perms");
    const fs::path so = dir / "model.so";
    fs::copy_file(SIM_MODEL_PLUGIN, so, fs::copy_options::overwrite_existing);
    ::chmod(so.c_str(), 0755);
    EXPECT_EQ(open_error(so.string(), 23), "");

    ::chmod(so.c_str(), 0757); // the file writable by every user
    std::string what = open_error(so.string(), 23);
    EXPECT_NE(what.find("COYOTE_SIM_MODEL"), std::string::npos) << what;
    EXPECT_NE(what.find("'" + so.string() + "' is writable by every user (mode 0757)"), std::string::npos) << what;
    // coyote-settings --check (and the check at the first cThread) says so without loading it.
    EXPECT_TRUE(coyote::detail::sim::ModelHandle::spec_problem(so.string()).has_value());
    ::chmod(so.c_str(), 0755);

    ::chmod(dir.c_str(), 0777); // the directory: anyone could replace the file
    what = open_error(so.string(), 23);
    EXPECT_NE(what.find("its directory '" + dir.string() + "' is writable by every user"), std::string::npos) << what;
    ::chmod(dir.c_str(), 01777); // sticky, as /tmp: our own file cannot be replaced
    EXPECT_EQ(open_error(so.string(), 23), "");
    if (::geteuid() == 0 && ::chown(so.c_str(), 65534, 65534) == 0) { // another user's file there: refused
        what = open_error(so.string(), 23);
        EXPECT_NE(what.find("belongs to user 65534"), std::string::npos) << what;
    }
    ::chmod(dir.c_str(), 0700);

    // A FIFO blocked dlopen for ever; a directory and a missing file are named as such.
    const fs::path fifo = dir / "fifo.so";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    what = open_error(fifo.string(), 23);
    EXPECT_NE(what.find("'" + fifo.string() + "' is not a regular file"), std::string::npos) << what;
    what = open_error(dir.string() + "/", 23);
    EXPECT_NE(what.find("is not a regular file (a directory)"), std::string::npos) << what;
    EXPECT_TRUE(coyote::detail::sim::ModelHandle::spec_problem("/nonexistent/dir/model.so").has_value());
    fs::remove(fifo);
    fs::remove(so);
}

TEST_F(SimModels, ControlCharactersOfAModelNameAreEscapedInTheMessage) {
    const std::string what = open_error("bad\x1b[2Jname\nsecond line", 23);
    EXPECT_NE(what.find("'bad\\x1b[2Jname\\nsecond line'"), std::string::npos) << what;
    EXPECT_EQ(what.find('\x1b'), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
}

TEST_F(SimModels, EveryExampleModelIsListedInTheSettingsHelpAndOpens) {
    // coyote-settings (and docs/settings.md, generated from it) is where users look up the model names.
    std::string help;
    for (const auto* info : coyote::detail::settings::all())
        if (info->name == "COYOTE_SIM_MODEL") help = info->help;
    ASSERT_FALSE(help.empty());
    std::string names = coyote::detail::sim::examples::names();
    int listed = 0;
    for (size_t at = 0; at < names.size();) {
        size_t end = names.find(',', at);
        if (end == std::string::npos) end = names.size();
        const std::string name = names.substr(at, end - at);
        at = names.find_first_not_of(", ", end);
        if (at == std::string::npos) at = names.size();
        ++listed;
        EXPECT_NE(help.find(name), std::string::npos) << name << " is missing from: " << help;
        EnvGuard m("COYOTE_SIM_MODEL", name.c_str());
        EXPECT_NO_THROW({ cThread t(0, getpid(), 14); }) << name;
    }
    EXPECT_EQ(listed, 8);
}

}  // namespace
