// Helpers shared by the unit tests: scoped environment variables (EnvGuard, the sim defaults), error capture,
// bounded waits.
#pragma once

#include "support/env_guard.hpp"

#include <coyote/cThread.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

/// One LOCAL_TRANSFER of `n` bytes (pattern from `seed`) through `t`'s user logic, as passthrough: true when it
/// completes in time with the data intact. Counts on `t` having completed no transfer before.
inline bool first_transfer_passes_through(coyote::cThread& t, uint32_t n, uint8_t seed) {
    auto* src = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::REG, n}));
    auto* dst = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::REG, n}));
    for (uint32_t i = 0; i < n; ++i) src[i] = static_cast<uint8_t>(seed + i * 13);
    t.invoke(coyote::CoyoteOper::LOCAL_TRANSFER, coyote::localSg{.addr = src, .len = n},
             coyote::localSg{.addr = dst, .len = n});
    const bool done = wait_completed(t, coyote::CoyoteOper::LOCAL_WRITE, 1);
    const bool same = done && std::equal(src, src + n, dst);
    t.freeMem(src);
    t.freeMem(dst);
    return same;
}

/// LOCAL_TRANSFERs of `n` bytes through `t`, one at a time, on a thread of their own until destroyed: keeps the
/// device's threads and locks busy (for a fork in the middle of it). `t` must not be used meanwhile.
class BusyTransfers {
public:
    BusyTransfers(coyote::cThread& t, uint32_t n) : t_(t), n_(n) {
        src_ = t.getMem({coyote::CoyoteAllocType::REG, n});
        dst_ = t.getMem({coyote::CoyoteAllocType::REG, n});
        worker_ = std::thread([this] { run(); });
    }
    BusyTransfers(const BusyTransfers&) = delete;
    BusyTransfers& operator=(const BusyTransfers&) = delete;
    ~BusyTransfers() {
        stop_ = true;
        worker_.join();
        t_.freeMem(src_);
        t_.freeMem(dst_);
    }
    /// Transfers completed so far; the thread gives up (and stops counting) if one takes longer than the deadline.
    uint32_t done() const { return done_.load(); }

private:
    void run() {
        const uint32_t base = t_.checkCompleted(coyote::CoyoteOper::LOCAL_WRITE);
        for (uint32_t i = 1; !stop_; ++i) {
            t_.invoke(coyote::CoyoteOper::LOCAL_TRANSFER, coyote::localSg{.addr = src_, .len = n_},
                      coyote::localSg{.addr = dst_, .len = n_});
            if (!wait_completed(t_, coyote::CoyoteOper::LOCAL_WRITE, base + i)) return;
            done_ = i;
        }
    }
    coyote::cThread& t_;
    uint32_t n_;
    void* src_ = nullptr;
    void* dst_ = nullptr;
    std::atomic<bool> stop_{false};
    std::atomic<uint32_t> done_{0};
    std::thread worker_;
};

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

/// The sim's shm segments process `pid` of this user still has in /dev/shm ("coyote-sim.<uid>.<pid>.*").
inline std::vector<std::string> sim_segments_of(pid_t pid) {
    const std::string prefix = "coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + ".";
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec))
        if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
    return found;
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
