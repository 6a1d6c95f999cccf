// coyote-mpi: cTask, one request to run a service function, and the task return codes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <coyote/cThread.hpp>

namespace coyote {

/// Return codes of a task (0 is success; stock Coyote sends 1 for every failure, these refine it).
enum class TaskError : int32_t {
    none = 0,
    unknown_function = 1, ///< no function with that id
    bad_arguments = 2,    ///< arguments missing, late, too large or of the wrong size
    failed = 3,           ///< the function threw
    refused = 4,          ///< the service refused the client or the request (limit, peer check, bad opcode)
    timeout = 5,          ///< a deadline passed
    stopped = 6           ///< the service stopped before the task ran
};

/// One line saying what a task return code means.
const char* task_error_text(int32_t code) noexcept;

/// A request to run function `fid`; thread-safe (the scheduler completes it while others poll it).
class cTask {
public:
    cTask(int32_t tid, int32_t fid, size_t ret_val_size, cThread* cthread = nullptr,
          std::vector<std::vector<char>> fn_args = {});

    int32_t getTid() const;
    int32_t getFid() const;
    bool isCompleted() const;
    void setCompleted(bool val);
    cThread* getCThread() const;
    std::vector<std::vector<char>> getArgs() const;
    std::vector<char> getRetVal() const;
    void setRetVal(const std::vector<char> retval);
    size_t getRetValSize() const;
    int32_t getRetCode() const;
    void setRetCode(int32_t retcode);

    /// coyote-mpi: scheduling priority (higher runs first under the priority policy).
    int32_t getPriority() const { return priority_; }
    void setPriority(int32_t p) { priority_ = p; }
    /// coyote-mpi: called once by setCompleted(true), on the completing thread (set it before queueing the task).
    void setCompletionCallback(std::function<void(cTask*)> cb) { on_complete_ = std::move(cb); }

private:
    int32_t tid_;
    int32_t fid_;
    std::atomic<bool> completed_{false};
    cThread* cthread_;
    std::vector<std::vector<char>> args_;
    mutable std::mutex ret_mtx_;
    std::vector<char> ret_val_;
    size_t ret_val_size_;
    std::atomic<int32_t> ret_code_{0};
    int32_t priority_ = 0;
    std::function<void(cTask*)> on_complete_;
};

}  // namespace coyote
