// coyote-mpi: cService: the listening socket, accepting and checking clients, sessions, daemon mode, SIGTERM.
#include <coyote/cService.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <span>
#include <vector>

#include "detail/settings.hpp"
#include "rcnfg/targets.hpp"
#include "service/listen_socket.hpp"
#include "service/service_log.hpp"
#include "service/session.hpp"

namespace coyote {

namespace {

namespace settings = ::coyote::detail::settings;
namespace svc = ::coyote::detail::service;

const settings::Flag k_foreground{"COYOTE_SERVICE_FOREGROUND", "service", false,
                                  "cService::start() serves in the calling process instead of becoming a daemon"};
const settings::Millis k_request_timeout{"COYOTE_SERVICE_REQUEST_TIMEOUT_MS", "service", std::chrono::milliseconds(5000),
                                         "time a client has to send the rest of a request once it has begun it"};
const settings::Integer k_max_clients{"COYOTE_SERVICE_MAX_CLIENTS", "service", static_cast<int64_t>(MAX_NUM_CLIENTS), 1,
                                      N_CTID_MAX, "clients one service serves at a time; more wait for a slot "
                                                  "(COYOTE_SERVICE_SLOT_WAIT_MS), then are refused"};
const settings::Millis k_slot_wait{"COYOTE_SERVICE_SLOT_WAIT_MS", "service", std::chrono::milliseconds(1000),
                                   "how long a client that finds every client slot taken waits for one to free "
                                   "before it is refused"};
const settings::Millis k_idle_timeout{"COYOTE_SERVICE_IDLE_TIMEOUT_MS", "service", std::chrono::milliseconds(1800000),
                                      "a connected client with no request and no task in flight this long is "
                                      "disconnected (it holds one of the service's client slots)"};
const settings::Bytes k_max_request{"COYOTE_SERVICE_MAX_REQUEST", "service", 64ULL << 10,
                                    "largest argument bytes of one request a service accepts"};

const settings::Text k_key_file{"COYOTE_SERVICE_KEY_FILE", "service", "",
                                "file holding the shared key remote (TCP) clients must present; owner-only"};
const settings::Text k_group{"COYOTE_SERVICE_GROUP", "service", "",
                             "group (name or number) whose members may use a local service besides its owner; "
                             "the socket is then mode 0660 and belongs to that group"};
const settings::Text k_bind{"COYOTE_SERVICE_BIND", "service", "0.0.0.0",
                            "IPv4 address a remote (TCP) service listens on", settings::ipv4_problem};

std::mutex g_instances_mtx;
std::map<std::pair<uint32_t, int32_t>, std::unique_ptr<cService>>& instances() {
    static std::map<std::pair<uint32_t, int32_t>, std::unique_ptr<cService>> m;
    return m;
}

// Wake pipes (fd + 1; 0 = free slot) of the instances served by start(): SIGTERM stops those, never the ones
// served by run(). async-signal-safe: atomics and write(2) only.
std::atomic<int> g_sig_fds[8];

void on_sigterm(int) {
    for (auto& slot : g_sig_fds) {
        const int w = slot.load() - 1;
        if (w >= 0) {
            const char b = 't';
            [[maybe_unused]] ssize_t n = ::write(w, &b, 1);
        }
    }
}

}  // namespace

class cService::Impl {
public:
    std::string name, service_id, socket_path;
    bool remote;
    int32_t vfid;
    uint32_t device;
    uint16_t port;
    cSched* sched;
    std::atomic<int32_t> task_counter{0};
    std::atomic<bool> running{false};
    std::atomic<bool> stop_requested{false};
    detail::Fd wake_r, wake_w;
    detail::Fd ended; // eventfd: a session finished (its slot is free once reaped)
    std::list<std::unique_ptr<svc::Session>> sessions;
    struct Waiting {
        detail::Fd fd;
        svc::Clock::time_point deadline;
    };
    std::deque<Waiting> waiting; // accepted while every slot was taken, oldest first
    /// Accepted, their registration (pid, or key and pid) not yet arrived: admitted once readable, so that a silent
    /// client never holds up the others.
    std::deque<Waiting> registering;

    std::string key;                      // remote services: the shared key
    gid_t group = svc::k_no_group;        // local services: a group whose members may connect too

    void ensure_wake();
    void accept_one(int listen_fd);
    /// A registration arrived on `fd`: starts its session, or queues it for a slot.
    void registered(detail::Fd fd);
    /// Moves the registrations that arrived (readable in `ready`) on, and drops those past their deadline.
    void poll_registering(std::span<const pollfd> ready);
    /// Admits `fd` and starts its session (or refuses it).
    void start_session(detail::Fd fd);
    /// Starts the sessions of waiting clients while slots are free; refuses those whose wait is over.
    void admit_waiting();
    /// How long the serve loop may sleep: until the first waiting client's deadline, at most 200 ms.
    int poll_timeout_ms() const;
    /// Local peers: same user (or the configured group), the pid they send is theirs (SO_PEERCRED). Remote peers:
    /// the shared key. Returns the pid the cThread is for.
    bool admit(detail::Fd& fd, pid_t& pid);
    void refuse(detail::Fd fd, pid_t pid, const char* why);
    void reap();
    void serve();
};

void cService::Impl::refuse(detail::Fd fd, pid_t pid, const char* why) {
    svc::log(LOG_WARNING, "%s: refused client %d: %s", service_id.c_str(), pid, why);
    const svc::Reply r{static_cast<int32_t>(TaskError::refused), -1};
    svc::write_full(fd.get(), &r, sizeof(r), svc::Clock::now() + std::chrono::milliseconds(100));
}

bool cService::Impl::admit(detail::Fd& fd, pid_t& pid) {
    // Called once the registration's first bytes are readable: the rest comes in the same message, so a client
    // trickling it holds the loop up for a second at most.
    const auto deadline = svc::Clock::now() + std::min<std::chrono::milliseconds>(k_request_timeout.get(),
                                                                                  std::chrono::seconds(1));
    if (remote) {
        uint32_t len = 0;
        std::string presented;
        if (svc::read_full(fd.get(), &len, sizeof(len), deadline) == svc::Io::ok && len <= 4096) {
            presented.resize(len);
            if (svc::read_full(fd.get(), presented.data(), len, deadline) != svc::Io::ok) presented.clear();
        }
        pid_t ignored = 0;
        if (!svc::same_key(presented, key) ||
            svc::read_full(fd.get(), &ignored, sizeof(ignored), deadline) != svc::Io::ok) {
            refuse(std::move(fd), -1, "a remote client without the right key");
            return false;
        }
        pid = ::getpid(); // a remote client's memory is not reachable: its cThread is the service's
        return true;
    }
    svc::Peer peer;
    if (!svc::peer_of(fd.get(), peer)) return refuse(std::move(fd), -1, "no peer credentials"), false;
    if (peer.uid != ::geteuid() && (group == svc::k_no_group || !svc::peer_in_group(fd.get(), peer, group)))
        return refuse(std::move(fd), peer.pid,
                      group == svc::k_no_group ? "it runs as another user"
                                               : "it runs as another user, outside COYOTE_SERVICE_GROUP"),
               false;
    pid_t claimed = 0;
    const svc::Io io = svc::read_full(fd.get(), &claimed, sizeof(claimed), deadline);
    if (io != svc::Io::ok) {
        svc::log(LOG_WARNING, "%s: client %d did not register (%s)", service_id.c_str(), peer.pid, svc::io_text(io).c_str());
        return false;
    }
    if (claimed != peer.pid) return refuse(std::move(fd), peer.pid, "the pid it sent is not its own"), false;
    pid = peer.pid;
    return true;
}

void cService::Impl::accept_one(int listen_fd) {
    detail::Fd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) return;
    // Bounded: past it the oldest silent connection goes first.
    const auto cap = static_cast<size_t>(2 * k_max_clients.get() + 16);
    if (registering.size() >= cap) {
        svc::log(LOG_WARNING, "%s: dropped a connection that did not register (%zu waiting to)", service_id.c_str(),
                 registering.size());
        registering.pop_front();
    }
    registering.push_back({std::move(fd), svc::Clock::now() + k_request_timeout.get()});
}

void cService::Impl::poll_registering(std::span<const pollfd> ready) {
    const auto now = svc::Clock::now();
    std::deque<Waiting> still;
    for (size_t i = 0; i < registering.size(); ++i) {
        Waiting& w = registering[i];
        if (ready[i].revents != 0) {
            registered(std::move(w.fd));
        } else if (now >= w.deadline) {
            svc::Peer peer;
            svc::log(LOG_WARNING, "%s: client %d did not register (timed out)", service_id.c_str(),
                     svc::peer_of(w.fd.get(), peer) ? static_cast<int>(peer.pid) : -1);
        } else {
            still.push_back(std::move(w));
        }
    }
    registering = std::move(still);
}

void cService::Impl::registered(detail::Fd fd) {
    reap(); // a client that just left no longer holds a slot
    const auto max = static_cast<size_t>(k_max_clients.get());
    if (waiting.empty() && sessions.size() < max) return start_session(std::move(fd));
    // A client that left a moment ago may still hold its slot (its session is ending): wait for one to free.
    if (waiting.size() >= max) return refuse(std::move(fd), -1, "the client limit is reached");
    waiting.push_back({std::move(fd), svc::Clock::now() + k_slot_wait.get()});
}

void cService::Impl::admit_waiting() {
    while (!waiting.empty()) {
        const bool free_slot = sessions.size() < static_cast<size_t>(k_max_clients.get());
        if (!free_slot && svc::Clock::now() < waiting.front().deadline) return;
        detail::Fd fd = std::move(waiting.front().fd);
        waiting.pop_front();
        if (free_slot)
            start_session(std::move(fd));
        else
            refuse(std::move(fd), -1, "the client limit is reached");
    }
}

int cService::Impl::poll_timeout_ms() const {
    int64_t ms = 200;
    for (const auto* q : {&waiting, &registering})
        if (!q->empty()) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(q->front().deadline - svc::Clock::now());
            ms = std::min<int64_t>(ms, std::max<int64_t>(left.count(), 0));
        }
    return static_cast<int>(ms);
}

void cService::Impl::start_session(detail::Fd fd) {
    pid_t claimed = 0;
    if (!admit(fd, claimed)) return;
    std::unique_ptr<cThread> thread;
    try {
        thread = std::make_unique<cThread>(vfid, claimed, device);
    } catch (const std::exception& e) {
        svc::log(LOG_ERR, "%s: no cThread for client %d: %s", service_id.c_str(), claimed, e.what());
        return refuse(std::move(fd), claimed, "no vFPGA context is available");
    }
    svc::SessionEnv env{sched,          &task_counter,        k_request_timeout.get(), k_max_request.get(),
                        k_idle_timeout.get(), ended.get()};
    sessions.push_back(std::make_unique<svc::Session>(std::move(fd), claimed, std::move(thread), env));
    svc::log(LOG_NOTICE, "%s: client %d connected (%zu clients)", service_id.c_str(), claimed, sessions.size());
}

void cService::Impl::reap() {
    for (auto it = sessions.begin(); it != sessions.end();) it = (*it)->finished() ? sessions.erase(it) : std::next(it);
}

void cService::Impl::serve() {
    if (remote) key = svc::read_key_file(k_key_file.get());
    group = remote || k_group.get().empty() ? svc::k_no_group : svc::group_id(k_group.get());
    detail::Fd listener = remote ? svc::listen_tcp(k_bind.get(), port, static_cast<int>(MAX_NUM_CLIENTS))
                                 : svc::listen_unix(socket_path, static_cast<int>(MAX_NUM_CLIENTS), group);
    ensure_wake();
    sched->start();
    running = true;
    svc::log(LOG_NOTICE, "%s: listening on %s", service_id.c_str(),
             remote ? (k_bind.get() + ":" + std::to_string(port)).c_str() : socket_path.c_str());
    std::vector<pollfd> fds;
    while (!stop_requested) {
        fds.assign({{listener.get(), POLLIN, 0}, {wake_r.get(), POLLIN, 0}, {ended.get(), POLLIN, 0}});
        for (const Waiting& w : registering) fds.push_back({w.fd.get(), POLLIN, 0});
        const int n_ready = ::poll(fds.data(), fds.size(), poll_timeout_ms());
        if (n_ready < 0) continue; // EINTR (a signal: the wake pipe tells a stop)
        // Registrations first: their entries match fds[3..] only until accept_one adds one.
        poll_registering(std::span<const pollfd>(fds).subspan(3));
        if (fds[0].revents & POLLIN) accept_one(listener.get());
        if (fds[1].revents & POLLIN) stop_requested = true;
        uint64_t n = 0;
        if (fds[2].revents & POLLIN) (void)!::read(ended.get(), &n, sizeof(n));
        reap();
        admit_waiting();
    }
    svc::log(LOG_NOTICE, "%s: stopping (%zu clients)", service_id.c_str(), sessions.size());
    for (auto& w : waiting) refuse(std::move(w.fd), -1, "the service is stopping");
    waiting.clear();
    registering.clear();
    listener.reset();
    if (!remote) ::unlink(socket_path.c_str());
    sched->stop(); // the running task ends, queued ones complete as 'stopped'
    for (auto& s : sessions) s->shutdown();
    sessions.clear(); // joins: the results still pending are sent first
    running = false;
    stop_requested = false;
    char sink[64];
    while (::read(wake_r.get(), sink, sizeof(sink)) > 0) {
    }
    svc::log(LOG_NOTICE, "%s: stopped", service_id.c_str());
}

void cService::Impl::ensure_wake() {
    if (wake_r) return;
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) throw_error(Errc::resource_exhausted, "cService", "pipe2 failed");
    wake_r.reset(p[0]);
    wake_w.reset(p[1]);
    ended.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!ended) throw_error(Errc::resource_exhausted, "cService", "eventfd failed");
}

cService* cService::getInstance(std::string name, bool remote, int32_t vfid, uint32_t device, bool reorder,
                                uint16_t port) {
    std::lock_guard lk(g_instances_mtx);
    auto& slot = instances()[{device, vfid}];
    if (!slot) slot.reset(new cService(std::move(name), remote, vfid, device, reorder, port));
    return slot.get();
}

void cService::releaseInstance(int32_t vfid, uint32_t device) {
    std::unique_ptr<cService> gone;
    {
        std::lock_guard lk(g_instances_mtx);
        auto it = instances().find({device, vfid});
        if (it == instances().end()) return;
        // Its run() still uses it (destroying it there was a use after free, and left the socket behind).
        if (it->second->isRunning())
            throw_error(Errc::invalid_argument, "cService::releaseInstance",
                        "the service of vFPGA " + std::to_string(vfid) + " of device " + std::to_string(device) +
                            " is running: stop() it and let run() return first");
        gone = std::move(it->second);
        instances().erase(it);
    }
}

cService::cService(std::string name, bool remote, int32_t vfid, uint32_t device, bool reorder, uint16_t port)
    : impl(std::make_unique<Impl>()) {
    const bool odd = std::any_of(name.begin(), name.end(), [](char c) {
        return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (name.empty() || odd)
        throw_error(Errc::invalid_argument, "cService",
                    "the service name must be non-empty, without '/' and without control characters (it names the "
                    "socket file)");
    // A service on a vFPGA that does not exist would start and refuse every client.
    detail::rcnfg::check_vfid(device, vfid, "cService");
    impl->name = name;
    impl->service_id = "coyote-daemon-dev-" + std::to_string(device) + "-vfid-" + std::to_string(vfid) + "-" + name;
    impl->socket_path = "/tmp/" + impl->service_id;
    impl->remote = remote;
    impl->vfid = vfid;
    impl->device = device;
    impl->port = port;
    impl->sched = cSched::getInstance(vfid, device, reorder);
}

cService::~cService() { stop(); }

int cService::addFunction(std::unique_ptr<bFunc> fn) {
    if (fn) {
        uint64_t total = 0;
        for (size_t s : fn->getArgumentSizes()) total += s;
        if (total > k_max_request.get()) { // no request for it could be accepted
            svc::log(LOG_ERR, "function %d takes %llu bytes of arguments, over COYOTE_SERVICE_MAX_REQUEST (%llu)",
                     fn->getFid(), static_cast<unsigned long long>(total),
                     static_cast<unsigned long long>(k_max_request.get()));
            return 3;
        }
    }
    return impl->sched->addFunction(std::move(fn));
}

void cService::run() {
    if (impl->running) throw_error(Errc::invalid_argument, "cService", impl->service_id + " is already running");
    svc::open_log(impl->service_id.c_str(), true);
    impl->serve();
}

void cService::stop() {
    impl->stop_requested = true;
    if (impl->wake_w) {
        const char b = 's';
        [[maybe_unused]] ssize_t n = ::write(impl->wake_w.get(), &b, 1);
    }
}

bool cService::isRunning() const { return impl->running; }
std::string cService::getSocketPath() const { return impl->socket_path; }
cSched* cService::getScheduler() const { return impl->sched; }

namespace {

/// Double fork, new session, cwd /, stdio on /dev/null (kept open so no socket lands on fd 0-2).
void daemonize() {
    if (pid_t pid = ::fork(); pid < 0) std::exit(EXIT_FAILURE);
    else if (pid > 0) std::exit(EXIT_SUCCESS);
    if (::setsid() < 0) std::exit(EXIT_FAILURE);
    ::signal(SIGHUP, SIG_IGN);
    if (pid_t pid = ::fork(); pid < 0) std::exit(EXIT_FAILURE);
    else if (pid > 0) std::exit(EXIT_SUCCESS);
    ::umask(077);
    if (::chdir("/") != 0) std::exit(EXIT_FAILURE);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) ::close(null);
    }
}

}  // namespace

void cService::start() {
    const bool foreground = k_foreground.get();
    if (!foreground) daemonize();
    svc::open_log(impl->service_id.c_str(), foreground);
    impl->ensure_wake();
    const int mine = impl->wake_w.get() + 1;
    for (auto& slot : g_sig_fds) {
        int expected = 0;
        if (slot.compare_exchange_strong(expected, mine)) break;
    }
    ::signal(SIGTERM, on_sigterm);
    auto release_signal_slot = [mine] {
        for (auto& slot : g_sig_fds) {
            int expected = mine;
            slot.compare_exchange_strong(expected, 0);
        }
    };
    try {
        impl->serve();
    } catch (const std::exception& e) {
        svc::log(LOG_ERR, "%s: %s", impl->service_id.c_str(), e.what());
        release_signal_slot();
        // A daemon that cannot serve ends with a failure status, as stock Coyote's does; in the foreground the
        // caller gets the error (a program that does not catch it ends with it, not with success).
        if (!foreground) std::exit(EXIT_FAILURE);
        throw;
    }
    release_signal_slot();
}

}  // namespace coyote
