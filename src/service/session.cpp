// coyote-mpi: a service client session: requests through a table of handlers, results as tasks complete.
#include "service/session.hpp"

#include <pthread.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <array>

#include "service/service_log.hpp"

namespace coyote::detail::service {

namespace {

constexpr int32_t code_of(TaskError e) { return static_cast<int32_t>(e); }

}  // namespace

Session::Session(Fd fd, pid_t pid, std::unique_ptr<cThread> thread, const SessionEnv& env)
    : fd_(std::move(fd)), pid_(pid), thread_(std::move(thread)), env_(env) {
    reader_ = std::thread([this] { reader_loop(); });
    (void)::pthread_setname_np(reader_.native_handle(), "coyote-sreader");
    responder_ = std::thread([this] { responder_loop(); });
    (void)::pthread_setname_np(responder_.native_handle(), "coyote-sreply");
}

Session::~Session() {
    shutdown();
    if (reader_.joinable()) reader_.join();
    if (responder_.joinable()) responder_.join();
}

void Session::shutdown() noexcept {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RD);
}

bool Session::reply(int32_t code, int32_t tid, const std::vector<char>& value) {
    std::vector<char> msg(sizeof(Reply) + (code == 0 ? value.size() : 0));
    const Reply r{code, tid};
    std::memcpy(msg.data(), &r, sizeof(r));
    if (code == 0 && !value.empty()) std::memcpy(msg.data() + sizeof(r), value.data(), value.size());
    std::lock_guard lk(write_mtx_);
    const Io io = write_full(fd_.get(), msg.data(), msg.size(), Clock::now() + env_.request_timeout);
    if (io != Io::ok) log(LOG_WARNING, "client %d: reply for task %d not sent (%s)", pid_, tid, io_text(io).c_str());
    return io == Io::ok;
}

bool Session::send_result(int32_t client_tid, cTask* t) {
    std::vector<char> value = t->getRetVal();
    value.resize(t->getRetValSize());
    const bool sent = reply(t->getRetCode(), client_tid, value); // after a disconnect this fails quietly
    env_.sched->releaseTask(t->getTid());
    return sent;
}

bool Session::on_close(const Request&) {
    log(LOG_NOTICE, "client %d closes its connection", pid_);
    return false;
}

bool Session::on_unknown(const Request& r) {
    log(LOG_WARNING, "client %d: unknown opcode %d; closing the connection", pid_, r.opcode);
    reply(code_of(TaskError::refused), r.tid);
    return false;
}

bool Session::on_submit(const Request& r) {
    bFunc* fn = env_.sched->getFunction(r.fid);
    if (fn == nullptr) {
        log(LOG_WARNING, "client %d: task %d asks for unknown function %d", pid_, r.tid, r.fid);
        in_.drain(fd_.get()); // its arguments, whose sizes nobody knows
        return reply(code_of(TaskError::unknown_function), r.tid);
    }
    const std::vector<size_t> sizes = fn->getArgumentSizes();
    uint64_t total = 0;
    for (size_t s : sizes) total += s;
    if (total > env_.max_request) {
        log(LOG_WARNING, "client %d: function %d takes %llu bytes of arguments, over the request limit", pid_, r.fid,
            static_cast<unsigned long long>(total));
        reply(code_of(TaskError::bad_arguments), r.tid);
        return false; // cannot skip the arguments safely
    }
    std::vector<std::vector<char>> args;
    const auto deadline = Clock::now() + env_.request_timeout;
    for (size_t s : sizes) {
        std::vector<char> a(s);
        const Io io = in_.read(fd_.get(), a.data(), s, deadline);
        if (io != Io::ok) {
            log(LOG_WARNING, "client %d: arguments of task %d (function %d): %s; closing the connection", pid_, r.tid,
                r.fid, io_text(io).c_str());
            if (io == Io::timeout) reply(code_of(TaskError::bad_arguments), r.tid);
            return false;
        }
        args.push_back(std::move(a));
    }
    const int32_t server_tid = (*env_.task_counter)++;
    auto task = std::make_unique<cTask>(server_tid, r.fid, fn->getReturnSize(), thread_.get(), std::move(args));
    const int32_t client_tid = r.tid;
    if (env_.sched->runIfIdle(task)) { // nothing else waits: run it here, no hand-off to other threads
        if (cTask* t = env_.sched->getTask(server_tid)) send_result(client_tid, t);
        return true; // a client gone meanwhile shows as the end of its requests
    }
    // Runs on the scheduler's thread; notifies under the lock so the session outlives the call.
    task->setCompletionCallback([this, client_tid](cTask* t) {
        std::lock_guard lk(pending_mtx_);
        ready_.emplace_back(client_tid, t);
        ready_cv_.notify_one();
    });
    {
        std::lock_guard lk(pending_mtx_);
        ++pending_;
    }
    if (!env_.sched->addTask(std::move(task))) {
        {
            std::lock_guard lk(pending_mtx_);
            --pending_;
        }
        return reply(code_of(TaskError::stopped), r.tid);
    }
    return true;
}

void Session::reader_loop() {
    static constexpr std::array<Handler, 2> k_handlers = {&Session::on_close, &Session::on_submit};
    auto active = Clock::now(); // the last request, or a task of this client still pending
    while (!stop_) {
        if (in_.buffered() == 0 && !wait_readable(fd_.get(), std::chrono::milliseconds(200))) {
            if (idle_too_long(active)) break;
            continue;
        }
        active = Clock::now();
        Request r;
        const Io io = in_.read(fd_.get(), &r, sizeof(r), Clock::now() + env_.request_timeout);
        if (io != Io::ok) {
            if (io != Io::eof) {
                log(LOG_WARNING, "client %d: request header %s; closing the connection", pid_, io_text(io).c_str());
                if (io == Io::timeout) reply(code_of(TaskError::timeout), -1);
            }
            break;
        }
        const bool known = r.opcode >= 0 && static_cast<size_t>(r.opcode) < k_handlers.size();
        if (!(known ? (this->*k_handlers[static_cast<size_t>(r.opcode)])(r) : on_unknown(r))) break;
    }
    {
        std::lock_guard lk(pending_mtx_); // the responder sees it with its predicate, never between
        reading_done_ = true;
    }
    ready_cv_.notify_one(); // with nothing pending it ends now, and the session's slot is free for the next client
    thread_ended();
}

void Session::thread_ended() noexcept {
    if (done_.fetch_add(1) + 1 != 2 || env_.ended_fd < 0) return;
    const uint64_t one = 1;
    (void)!::write(env_.ended_fd, &one, sizeof(one));
}

bool Session::idle_too_long(Clock::time_point& active) {
    {
        std::lock_guard lk(pending_mtx_);
        if (pending_ != 0) active = Clock::now();
    }
    if (Clock::now() - active < env_.idle_timeout) return false;
    log(LOG_NOTICE, "client %d: idle for %lld ms (COYOTE_SERVICE_IDLE_TIMEOUT_MS); closing the connection", pid_,
        static_cast<long long>(env_.idle_timeout.count()));
    reply(code_of(TaskError::timeout), -1);
    return true;
}

void Session::responder_loop() {
    std::vector<std::pair<int32_t, cTask*>> ready;
    while (true) {
        {
            std::unique_lock lk(pending_mtx_);
            ready_cv_.wait(lk, [&] { return !ready_.empty() || (reading_done_ && pending_ == 0); });
            ready.swap(ready_);
            pending_ -= ready.size();
            if (ready.empty() && pending_ == 0 && reading_done_) break;
        }
        for (auto& [client_tid, t] : ready) send_result(client_tid, t); // outside the lock: the scheduler's calls take it
        ready.clear();
    }
    thread_ended();
}

}  // namespace coyote::detail::service
