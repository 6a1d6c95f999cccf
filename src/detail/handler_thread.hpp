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
    bool abandoned = false; ///< the owner stopped waiting: the thread must not touch the owner again
    /// Called by the thread as its last step.
    void mark_finished() noexcept;
    /// Called by the thread after the handler returned: false when the owner is gone (return at once).
    bool owner_alive() noexcept;
};

/// How long an owner waits for a handler to return (COYOTE_HANDLER_WAIT_MS).
std::chrono::milliseconds handler_wait();

/// Joins `t` once `exit` says it finished, waiting at most handler_wait(); past that detaches it, marks `exit`
/// abandoned and prints a warning naming `what`. Detaches without waiting when called from `t` itself.
void join_or_abandon(std::thread& t, HandlerExit& exit, const std::string& what) noexcept;

}  // namespace coyote::detail
