// coyote-mpi: cTask, one request to run a service function; the meaning of task return codes.
#include <coyote/cTask.hpp>

#include <utility>

namespace coyote {

const char* task_error_text(int32_t code) noexcept {
    switch (static_cast<TaskError>(code)) {
    case TaskError::none: return "success";
    case TaskError::unknown_function: return "no function with this id is registered with the service";
    case TaskError::bad_arguments: return "the arguments do not match the function (missing, late or too large)";
    case TaskError::failed: return "the function failed on the service (see the service log)";
    case TaskError::refused: return "the service refused the client or the request";
    case TaskError::timeout: return "a deadline passed";
    case TaskError::stopped: return "the service stopped before the task completed";
    }
    return "unknown error code";
}

cTask::cTask(int32_t tid, int32_t fid, size_t ret_val_size, cThread* cthread, std::vector<std::vector<char>> fn_args)
    : tid_(tid), fid_(fid), cthread_(cthread), args_(std::move(fn_args)), ret_val_size_(ret_val_size) {}

int32_t cTask::getTid() const { return tid_; }
int32_t cTask::getFid() const { return fid_; }
bool cTask::isCompleted() const { return completed_.load(std::memory_order_acquire); }
void cTask::setCompleted(bool val) {
    const bool was = completed_.exchange(val, std::memory_order_acq_rel);
    if (val && !was && on_complete_) on_complete_(this);
}
cThread* cTask::getCThread() const { return cthread_; }
std::vector<std::vector<char>> cTask::getArgs() const { return args_; }

std::vector<char> cTask::getRetVal() const {
    std::lock_guard lk(ret_mtx_);
    return ret_val_;
}

void cTask::setRetVal(const std::vector<char> retval) {
    std::lock_guard lk(ret_mtx_);
    ret_val_ = retval;
}

size_t cTask::getRetValSize() const { return ret_val_size_; }
int32_t cTask::getRetCode() const { return ret_code_.load(std::memory_order_acquire); }
void cTask::setRetCode(int32_t retcode) { ret_code_.store(retcode, std::memory_order_release); }

}  // namespace coyote
