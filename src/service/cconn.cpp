// coyote-mpi: cConn: connect and register, send requests, a reader thread that files results, waits with deadlines.
#include <coyote/cConn.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <condition_variable>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <mutex>
#include <optional>
#include <thread>

#include "backend/sim/net/process_memory.hpp"
#include "detail/handles.hpp"
#include "detail/settings.hpp"
#include "diag/wait.hpp"
#include "service/listen_socket.hpp"
#include "service/wire.hpp"

namespace coyote {

namespace {

namespace settings = ::coyote::detail::settings;
namespace svc = ::coyote::detail::service;

const settings::Millis k_conn_timeout{"COYOTE_CONN_TIMEOUT_MS", "service", std::chrono::milliseconds(300000),
                                      "longest a cConn waits for the service: a task's result, a reply's bytes"};
/// How long a return value may trail its reply header (they come in one message).
constexpr auto k_value_grace = std::chrono::seconds(2);

/// The error a task return code becomes on the client.
Errc errc_of(int32_t code) {
    switch (static_cast<TaskError>(code)) {
    case TaskError::unknown_function:
    case TaskError::bad_arguments: return Errc::invalid_argument;
    case TaskError::timeout: return Errc::timeout;
    case TaskError::stopped: return Errc::peer_gone;
    default: return Errc::remote_rejected;
    }
}

struct Entry {
    size_t ret_size = 0;
    bool done = false;
    int32_t code = 0;
    std::vector<char> value;
};

}  // namespace

class cConn::Impl {
public:
    detail::Fd fd;
    std::string path;
    std::mutex write_mtx;
    std::mutex mtx;
    std::condition_variable cv;
    std::map<int32_t, Entry> tasks;
    int32_t next_tid = 0;
    std::string broken; // why the connection is unusable ("" while fine)
    Errc broken_code = Errc::peer_gone; // the error of the calls that find it so
    pid_t owner = 0;    // the process that registered: the service addresses its memory
    bool reading = false; // a thread is reading replies (the reader thread or a waiting task() that leads)
    svc::Inbox in;        // replies (read by the thread that holds `reading`)
    std::atomic<bool> stop{false};
    std::thread reader;

    void fail_all(const std::string& why, Errc code = Errc::peer_gone) {
        std::lock_guard lk(mtx);
        if (broken.empty()) broken = why, broken_code = code;
        cv.notify_all();
    }
    /// Reads one reply; false when the connection is finished. `rest`: bytes were left in the inbox after the
    /// previous reply, which a reply and its value arrive in one message with: a header still short after a grace
    /// period means that reply's value was longer than its return type.
    bool read_one(bool rest = false);
    int32_t last_tid = -1;    // the reply read last, for the message above
    size_t last_size = 0;
    /// Takes the reading token (mtx held); false when another thread reads.
    bool lead(std::unique_lock<std::mutex>& lk) {
        if (reading) return false;
        reading = true;
        lk.unlock();
        return true;
    }
    /// Reads the replies waiting on the socket with the token (taken by lead()), then gives the token back with
    /// nothing left in the inbox.
    bool read_led(std::unique_lock<std::mutex>& lk) {
        bool more = read_one();
        while (more && in.buffered() > 0) more = read_one(true);
        lk.lock();
        reading = false;
        cv.notify_all();
        return more;
    }
    /// Files replies no thread waits for (iTask); a waiting task() reads its own reply (no thread hop).
    void reader_loop() {
        while (!stop) {
            {
                std::unique_lock lk(mtx);
                cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !reading || stop; });
            }
            if (!svc::wait_readable(fd.get(), std::chrono::milliseconds(200))) continue;
            std::unique_lock lk(mtx);
            if (!svc::wait_readable(fd.get(), std::chrono::milliseconds(0)) || !lead(lk)) continue; // a waiter read it
            if (!read_led(lk)) return;
        }
    }
    [[noreturn]] void raise(int32_t tid, int32_t code) const {
        throw_error(errc_of(code), "cConn", "task " + std::to_string(tid) + " on " + path + " failed (code " +
                                                std::to_string(code) + "): " + task_error_text(code));
    }
};

bool cConn::Impl::read_one(bool rest) {
    svc::Reply r;
    const auto deadline = svc::Clock::now() + (rest ? std::min<svc::Clock::duration>(k_value_grace, k_conn_timeout.get())
                                                    : svc::Clock::duration(k_conn_timeout.get()));
    auto longer = [this] { // built on failure only: read_one runs for every reply
        return "the reply to task " + std::to_string(last_tid) + " carried more bytes than the " +
               std::to_string(last_size) +
               " of the return type it was submitted with (does the task's return type match the service function's?)";
    };
    svc::Io io = in.read(fd.get(), &r, sizeof(r), deadline);
    if (io != svc::Io::ok) {
        if (rest && io == svc::Io::timeout) fail_all("protocol error: " + longer(), Errc::protocol);
        else fail_all(io == svc::Io::eof ? "the service closed the connection" : "reading a reply: " + svc::io_text(io));
        return false;
    }
    std::unique_lock lk(mtx);
    auto it = tasks.find(r.tid);
    if (it == tasks.end()) {
        lk.unlock();
        if (rest) {
            fail_all("protocol error: " + longer(), Errc::protocol);
            return false;
        }
        if (r.code != 0) {
            fail_all(std::string("the service refused or dropped the connection: ") + task_error_text(r.code));
            return false;
        }
        fail_all("protocol error: a result for unknown task " + std::to_string(r.tid), Errc::protocol);
        return false;
    }
    Entry& e = it->second;
    std::vector<char> value(r.code == 0 ? e.ret_size : 0);
    lk.unlock();
    // The service sends a reply and its value in one message: a value still short after a grace period is a
    // return type larger than the function's, not a slow service.
    const auto value_deadline = std::min(deadline, svc::Clock::now() + k_value_grace);
    if (!value.empty() && (io = in.read(fd.get(), value.data(), value.size(), value_deadline)) != svc::Io::ok) {
        if (io == svc::Io::timeout)
            fail_all("protocol error: the reply to task " + std::to_string(r.tid) + " carries fewer bytes than the " +
                         std::to_string(value.size()) +
                         " of the return type it was submitted with (does the task's return type match the "
                         "service function's?)",
                     Errc::protocol);
        else
            fail_all("reading a return value: " + svc::io_text(io));
        return false;
    }
    last_tid = r.tid;
    last_size = value.size();
    lk.lock();
    e.value = std::move(value);
    e.code = r.code;
    e.done = true;
    cv.notify_all();
    return true;
}

cConn::cConn(std::string sock_name) : impl(std::make_unique<Impl>()) {
    impl->path = sock_name;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (sock_name.size() >= sizeof(a.sun_path))
        throw_error(Errc::invalid_argument, "cConn", "socket path too long: " + sock_name);
    std::memcpy(a.sun_path, sock_name.c_str(), sock_name.size() + 1);
    impl->fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!impl->fd) throw_error(Errc::resource_exhausted, "cConn", std::string("socket: ") + std::strerror(errno));
    if (::connect(impl->fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
        const int err = errno;
        struct stat st {};
        const bool other = err == ECONNREFUSED && ::stat(sock_name.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode);
        throw_error(Errc::peer_gone, "cConn",
                    "cannot connect to the service at " + sock_name + ": " +
                        (other ? std::string("the path is not a socket (no service made it)")
                               : std::string(std::strerror(err)) + " (is the service running?)"));
    }
    // The stock path is in /tmp under a name every user shares: another user's process listening there (while the
    // real service is down) is told nothing, not even our pid, unless it is what a group service looks like.
    svc::Peer peer;
    if (!svc::peer_of(impl->fd.get(), peer))
        throw_error(Errc::peer_gone, "cConn", "the service at " + sock_name + ": no peer credentials");
    if (const std::string why = svc::untrusted_service_reason(sock_name, peer); !why.empty())
        throw_error(Errc::invalid_argument, "cConn", "refusing " + why);
    // A service function reads and writes this process's buffers by address; on sim that is process_vm_*,
    // which Yama (ptrace_scope 1) allows only to processes we name: the service at the other end, no other.
    if (peer.pid > 0) detail::sim::net::allow_peer_access(peer.pid);
    register_with_service({});
}

cConn::cConn(std::string host, uint16_t port, std::string key_file) : impl(std::make_unique<Impl>()) {
    impl->path = host + ":" + std::to_string(port);
    std::ifstream in(key_file, std::ios::binary);
    if (!in) throw_error(Errc::invalid_argument, "cConn", "cannot read the key file " + key_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string key = ss.str();
    if (!key.empty() && key.back() == '\n') key.pop_back();
    if (key.empty() || key.size() > 4096) throw_error(Errc::invalid_argument, "cConn", "the key must have 1 to 4096 bytes");
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr)
        throw_error(Errc::invalid_argument, "cConn", "cannot resolve " + host);
    impl->fd.reset(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int rc = impl->fd ? ::connect(impl->fd.get(), res->ai_addr, res->ai_addrlen) : -1;
    ::freeaddrinfo(res);
    if (rc != 0)
        throw_error(Errc::peer_gone, "cConn", "cannot connect to the service at " + impl->path + ": " + std::strerror(errno));
    const uint32_t len = static_cast<uint32_t>(key.size());
    std::vector<char> hello(sizeof(len) + key.size());
    std::memcpy(hello.data(), &len, sizeof(len));
    std::memcpy(hello.data() + sizeof(len), key.data(), key.size());
    register_with_service(hello);
}

void cConn::register_with_service(const std::vector<char>& hello) {
    std::vector<char> msg = hello;
    const pid_t pid = ::getpid();
    impl->owner = pid;
    msg.insert(msg.end(), reinterpret_cast<const char*>(&pid), reinterpret_cast<const char*>(&pid) + sizeof(pid));
    if (svc::write_full(impl->fd.get(), msg.data(), msg.size(), svc::Clock::now() + k_conn_timeout.get()) != svc::Io::ok) {
        svc::Reply r{0, 0}; // a refusal may be waiting: say so
        const bool told = svc::read_full(impl->fd.get(), &r, sizeof(r), svc::Clock::now() + std::chrono::milliseconds(200)) ==
                          svc::Io::ok && r.code != 0;
        throw_error(Errc::peer_gone, "cConn",
                    "cannot register with the service at " + impl->path +
                        (told ? std::string(": the service refused: ") + task_error_text(r.code) : std::string()));
    }
    impl->reader = std::thread([this] { impl->reader_loop(); });
}

cConn::~cConn() {
    if (::getpid() != impl->owner) { // a forked child's copy: the connection and its reader are the parent's
        impl->fd.reset();             // our copy of the descriptor only
        (void)impl.release();         // its locks may be held by threads that do not exist here: never touched
        return;
    }
    const svc::Request close_req{static_cast<int32_t>(DEF_OP_CLOSE_CONN), 0, 0};
    {
        std::lock_guard lk(impl->write_mtx);
        svc::write_full(impl->fd.get(), &close_req, sizeof(close_req),
                        svc::Clock::now() + std::chrono::milliseconds(1000));
    }
    impl->stop = true;
    ::shutdown(impl->fd.get(), SHUT_RDWR);
    if (impl->reader.joinable()) impl->reader.join();
}

int32_t cConn::submit(int32_t fid, const std::vector<char>& payload, size_t ret_size) {
    if (::getpid() != impl->owner) // a forked child (its copy of our locks may be held): the service would read
        throw_error(Errc::invalid_argument, "cConn", // and write its parent's memory
                    impl->path + ": this connection belongs to process " + std::to_string(impl->owner) +
                        " (the child of a fork must open its own cConn)");
    int32_t tid;
    {
        std::lock_guard lk(impl->mtx);
        if (!impl->broken.empty()) throw_error(impl->broken_code, "cConn", impl->path + ": " + impl->broken);
        tid = impl->next_tid++;
        impl->tasks[tid].ret_size = ret_size;
    }
    std::vector<char> msg(sizeof(svc::Request) + payload.size());
    const svc::Request req{static_cast<int32_t>(DEF_OP_SUBMIT_TASK), fid, tid};
    std::memcpy(msg.data(), &req, sizeof(req));
    if (!payload.empty()) std::memcpy(msg.data() + sizeof(req), payload.data(), payload.size());
    std::lock_guard lk(impl->write_mtx);
    const svc::Io io = svc::write_full(impl->fd.get(), msg.data(), msg.size(), svc::Clock::now() + k_conn_timeout.get());
    if (io != svc::Io::ok) {
        // The reader may still be reading why (a refusal, say): give it a moment to say so.
        std::unique_lock state(impl->mtx);
        impl->cv.wait_for(state, std::chrono::seconds(1), [&] { return !impl->broken.empty(); });
        if (impl->broken.empty()) impl->broken = "sending a request: " + svc::io_text(io);
        throw_error(impl->broken_code, "cConn", impl->path + ": task " + std::to_string(tid) + ": " + impl->broken);
    }
    return tid;
}

bool cConn::isTaskCompleted(int32_t tid) {
    std::lock_guard lk(impl->mtx);
    auto it = impl->tasks.find(tid);
    // Stock Coyote prints an error and says false, which a polling loop would never leave.
    if (it == impl->tasks.end())
        throw_error(Errc::invalid_argument, "cConn::isTaskCompleted",
                    "unknown task id " + std::to_string(tid) +
                        ": not submitted on this connection, or its result was already taken");
    return it->second.done || !impl->broken.empty();
}

std::vector<char> cConn::wait_result(int32_t tid) {
    std::unique_lock lk(impl->mtx);
    auto it = impl->tasks.find(tid);
    if (it == impl->tasks.end()) throw_error(Errc::invalid_argument, "cConn", "unknown task id " + std::to_string(tid));
    const auto deadline = svc::Clock::now() + k_conn_timeout.get();
    std::optional<detail::diag::WaitWatch> watch; // the stall doctor, while the reply is not in
    if (!it->second.done && impl->broken.empty())
        watch.emplace("cConn", "the reply to task " + std::to_string(tid) + " from the service at " + impl->path,
                      "the service has not answered: it is still running this task or the tasks queued before it, "
                      "or it is stuck (COYOTE_STALL_SIGNAL=1 and SIGUSR1 show the service's own waits)");
    bool ok = true;
    while (!it->second.done && impl->broken.empty() && ok) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - svc::Clock::now());
        if (left.count() <= 0) {
            ok = false;
        } else if (impl->lead(lk)) { // nobody reads: read the replies here until ours is in
            if (svc::wait_readable(impl->fd.get(), left)) {
                if (!impl->read_led(lk)) break;
            } else {
                lk.lock();
                impl->reading = false;
                impl->cv.notify_all();
            }
        } else {
            impl->cv.wait_until(lk, deadline);
        }
    }
    if (!it->second.done) {
        if (!ok)
            throw_error(Errc::timeout, "cConn", "task " + std::to_string(tid) + " on " + impl->path +
                                                    ": no result within COYOTE_CONN_TIMEOUT_MS");
        impl->tasks.erase(it); // it will never complete: forgotten, as after any other failure
        throw_error(impl->broken_code, "cConn", "task " + std::to_string(tid) + " on " + impl->path + ": " + impl->broken);
    }
    Entry e = std::move(it->second);
    impl->tasks.erase(it);
    if (e.code != 0) impl->raise(tid, e.code);
    return e.value;
}

std::vector<char> cConn::take_result(int32_t tid) {
    std::lock_guard lk(impl->mtx);
    auto it = impl->tasks.find(tid);
    if (it == impl->tasks.end()) throw_error(Errc::invalid_argument, "cConn", "unknown task id " + std::to_string(tid));
    if (!it->second.done) {
        if (!impl->broken.empty())
            throw_error(impl->broken_code, "cConn", "task " + std::to_string(tid) + " on " + impl->path + ": " + impl->broken);
        throw_error(Errc::invalid_argument, "cConn", "task " + std::to_string(tid) + " has not completed yet");
    }
    if (it->second.code != 0) impl->raise(tid, it->second.code);
    return it->second.value; // kept, as stock Coyote keeps it: releaseTask forgets it
}

bool cConn::releaseTask(int32_t tid) {
    std::lock_guard lk(impl->mtx);
    auto it = impl->tasks.find(tid);
    if (it == impl->tasks.end() || (!it->second.done && impl->broken.empty())) return false;
    impl->tasks.erase(it);
    return true;
}

}  // namespace coyote
