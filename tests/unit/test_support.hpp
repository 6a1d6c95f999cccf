// Helpers shared by the unit tests: scoped environment variables (EnvGuard, the sim defaults), error capture,
// bounded waits.
#pragma once

#include "support/env_guard.hpp"

#include <coyote/cThread.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace coyote_test {

/// The sim backend with its built-in shell for the scope: COYOTE_BACKEND=sim, COYOTE_SIM_SHELL and
/// COYOTE_SIM_CONFIG unset (the first member of the sim test fixtures).
struct SimDefaults {
    EnvGuard backend{"COYOTE_BACKEND", "sim"};
    EnvGuard shell{"COYOTE_SIM_SHELL", nullptr};
    EnvGuard config{"COYOTE_SIM_CONFIG", nullptr};
};

/// Fixture of the sim tests on the default (passthrough) model: SimDefaults and COYOTE_SIM_MODEL unset.
class SimTest : public ::testing::Test {
protected:
    SimDefaults sim_defaults;
    EnvGuard model{"COYOTE_SIM_MODEL", nullptr};
};

/// Runs `fn`; returns the code value and message of the coyote::Error it throws, or {0, "no error"}.
template <typename Fn>
std::pair<int, std::string> error_of(Fn&& fn) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        return {e.code().value(), e.what()};
    }
    return {0, "no error"};
}

/// Waits (at most 20 s) until `pred` holds.
template <typename Pred>
bool eventually(Pred&& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
}

/// Waits (bounded) until `t` has completed `n` operations of the class of `op`.
inline bool wait_completed(coyote::cThread& t, coyote::CoyoteOper op, uint32_t n) {
    return eventually([&] { return t.checkCompleted(op) >= n; });
}

/// The scratch directories this process created; the process that created one removes it when it exits
/// normally (a forked child that exits leaves its parent's in place).
class ScratchDirs {
public:
    void add(const std::filesystem::path& d) {
        std::lock_guard lk(mtx_);
        dirs_.emplace_back(::getpid(), d);
    }
    ~ScratchDirs() {
        for (const auto& [pid, d] : dirs_) {
            std::error_code ec;
            if (pid == ::getpid()) std::filesystem::remove_all(d, ec);
        }
    }

private:
    std::mutex mtx_;
    std::vector<std::pair<pid_t, std::filesystem::path>> dirs_;
};

/// A scratch directory of this test process, `<tmp>/<prefix>-<pid>`, private to the user (0700), removed when
/// the process exits.
inline std::string scratch_dir(const std::string& prefix) {
    static ScratchDirs dirs;
    const auto d = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()));
    if (::mkdir(d.c_str(), 0700) == 0) dirs.add(d); // else it exists (made by an earlier call of this process)
    std::filesystem::permissions(d, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
    return d.string();
}

/// Writes `bytes` to the file `name` of scratch_dir(prefix), replacing it; returns its path.
inline std::string write_scratch_file(const std::string& prefix, const std::string& name,
                                      const std::vector<char>& bytes) {
    const std::string path = scratch_dir(prefix) + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

/// Records the user interrupts a cThread's handler receives: pass callback() as the cThread's `uisr`.
class InterruptLog {
public:
    /// The handler: records the value and the thread it runs on.
    std::function<void(int)> callback() {
        return [this](int v) {
            std::lock_guard lk(mtx_);
            got_.push_back(v);
            thread_ = std::this_thread::get_id();
            cv_.notify_all();
        };
    }
    /// Waits (at most `timeout`) until exactly `n` values have arrived; false if that did not happen.
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        std::unique_lock lk(mtx_);
        return cv_.wait_for(lk, timeout, [&] { return got_.size() == n; });
    }
    /// Whether more than `n` values arrive within `timeout`.
    bool more_than(std::size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock lk(mtx_);
        return cv_.wait_for(lk, timeout, [&] { return got_.size() > n; });
    }
    /// The values so far, in arrival order.
    std::vector<int> values() {
        std::lock_guard lk(mtx_);
        return got_;
    }
    /// The thread the handler last ran on.
    std::thread::id thread() {
        std::lock_guard lk(mtx_);
        return thread_;
    }

private:
    std::mutex mtx_;
    std::condition_variable cv_;
    std::vector<int> got_;
    std::thread::id thread_;
};

/// The features a shell configuration enables, space separated in the shell word's order (e.g. "avx mem rdma net").
inline std::string features(const coyote::fpgaCnfg& c) {
    const std::pair<bool, const char*> all[] = {{c.en_avx, "avx"}, {c.en_wb, "wb"},     {c.en_strm, "strm"},
                                                {c.en_mem, "mem"}, {c.en_pr, "pr"},     {c.en_rdma, "rdma"},
                                                {c.en_tcp, "tcp"}, {c.en_net, "net"}};
    std::string s;
    for (const auto& [on, name] : all)
        if (on) s += (s.empty() ? "" : " ") + std::string(name);
    return s;
}

}  // namespace coyote_test
