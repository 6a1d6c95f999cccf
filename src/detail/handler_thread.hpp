// coyote-mpi: the end of a thread that runs a user's handler (user interrupts): its owner waits for the handler to
// return up to COYOTE_HANDLER_WAIT_MS, then lets the thread go instead of hanging in its destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace coyote::detail {

/// Shared by a handler thread and its owner (the thread holds it by shared_ptr, so it outlives an abandoned owner).
struct HandlerExit {
    std::mutex mtx;
    std::condition_variable cv;
    bool finished = false;  ///< the thread left its loop (set by mark_finished)
    bool busy = false;      ///< the thread is inside the user's handler
    bool abandoned = false; ///< the owner stopped waiting: the thread must not touch the owner again
    /// Called by the thread as its last step.
    void mark_finished() noexcept;
    /// Called by the thread right before the handler.
    void enter_handler() noexcept;
    /// Called by the thread right after the handler: false when the owner gave up on it meanwhile (it may be gone:
    /// return without touching it).
    bool leave_handler() noexcept;
};

/// Joins `t` once `exit` says it finished. Past COYOTE_HANDLER_WAIT_MS a thread still inside the handler is detached and
/// `exit` marked abandoned, with a warning naming `what`; one outside it (delivering, or about to see the stop) is
/// waited for until it finishes or enters a handler again. Detaches without waiting when called from `t` itself.
void join_or_abandon(std::thread& t, HandlerExit& exit, const std::string& what) noexcept;

}  // namespace coyote::detail
