// coyote-mpi: one client of a cService: its cThread, a reader thread for requests, a responder for results.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <coyote/cSched.hpp>
#include <coyote/cThread.hpp>

#include "detail/handles.hpp"
#include "service/wire.hpp"

namespace coyote::detail::service {

/// What a session needs from its service.
struct SessionEnv {
    cSched* sched = nullptr;
    std::atomic<int32_t>* task_counter = nullptr;
    std::chrono::milliseconds request_timeout{5000};
    uint64_t max_request = 0; ///< bytes of one request's arguments
    std::chrono::milliseconds idle_timeout{1800000}; ///< a client with no request and no task this long is closed
    int ended_fd = -1; ///< an eventfd the session adds 1 to when it has finished (-1: none)
};

class Session {
public:
    /// Serves connected `fd` of process `pid`; `thread` is the cThread created for that pid.
    Session(Fd fd, pid_t pid, std::unique_ptr<cThread> thread, const SessionEnv& env);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// Stops reading requests; results of tasks already queued are still sent.
    void shutdown() noexcept;
    /// Whether both threads have ended (the service then destroys the session).
    bool finished() const noexcept { return done_.load() == 2; }
    int fd() const noexcept { return fd_.get(); }

private:
    using Handler = bool (Session::*)(const Request&);
    bool on_close(const Request& r);
    bool on_submit(const Request& r);
    bool on_unknown(const Request& r);
    void reader_loop();
    /// Whether the client has been idle (no request, no pending task) past the idle deadline; says so to it.
    bool idle_too_long(Clock::time_point& active);
    void responder_loop();
    /// One of the two threads ends; the last one tells the service through env_.ended_fd.
    void thread_ended() noexcept;
    /// Sends a reply header (and `value` when code is 0); false when the client is gone.
    bool reply(int32_t code, int32_t tid, const std::vector<char>& value = {});
    /// Sends the result of completed task `t` as client task `client_tid` and forgets the task.
    bool send_result(int32_t client_tid, cTask* t);

    Fd fd_;
    Inbox in_; // requests (the reader thread's)
    pid_t pid_;
    std::unique_ptr<cThread> thread_;
    SessionEnv env_;
    std::mutex write_mtx_;
    std::mutex pending_mtx_;
    std::condition_variable ready_cv_;
    size_t pending_ = 0;                            // queued tasks whose result is not sent yet
    std::vector<std::pair<int32_t, cTask*>> ready_; // completed: client tid, task
    std::atomic<bool> stop_{false};
    std::atomic<bool> reading_done_{false};
    std::atomic<int> done_{0};
    std::thread reader_;
    std::thread responder_;
};

}  // namespace coyote::detail::service
