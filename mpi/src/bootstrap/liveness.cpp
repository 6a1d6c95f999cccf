// coyote-mpi: PeerLiveness: pidfds for ranks on this host, one keepalive TCP connection per rank on another host.
#include <coyote/mpi/liveness.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <coyote/error.hpp>
#include <coyote/mpi/bootstrap.hpp>

#include "bootstrap/mpi_state.hpp"

#include "backend/sim/net/tcp/socket_io.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "detail/settings.hpp"

namespace coyote::mpi {

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Millis k_period{"COYOTE_MPI_LIVENESS_PERIOD_MS", "mpi", std::chrono::milliseconds(10),
                                "how often a waiting collective looks whether its peers still run (pidfds on this "
                                "host, liveness connections to other hosts)",
                                std::chrono::milliseconds(1), std::chrono::milliseconds(10000)};
const settings::Text k_addr{"COYOTE_MPI_LIVENESS_ADDR", "mpi", "",
                            "IPv4 address the liveness listener binds when ranks run on other hosts (unset: "
                            "COYOTE_SIM_WIRE_ADDR, else loopback, which other hosts cannot watch)",
                            settings::ipv4_problem};

using Clock = std::chrono::steady_clock;
using coyote::detail::Fd;
constexpr const char* k_call = "peer liveness";

/// Host name, boot id and pid namespace: ranks with the same key see each other's pids.
std::string real_host() {
    std::array<char, 64> name{};
    (void)::gethostname(name.data(), name.size() - 1);
    std::string boot;
    std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
    struct stat st {};
    const auto ns = ::stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
    return std::string(name.data()) + "/" + boot.substr(0, 8) + "/" + std::to_string(ns);
}

std::string host_of(const LivenessRecord& r) { return std::string(r.host.data(), strnlen(r.host.data(), r.host.size())); }

uint32_t configured_addr() {
    std::string a = k_addr.get();
    if (a.empty()) a = settings::value_of("COYOTE_SIM_WIRE_ADDR").value_or("");
    if (a.empty()) return INADDR_LOOPBACK;
    in_addr in{};
    if (::inet_pton(AF_INET, a.c_str(), &in) != 1)
        throw_error(Errc::invalid_argument, "COYOTE_MPI_LIVENESS_ADDR", "'" + a + "' is not an IPv4 address");
    return ntohl(in.s_addr);
}

/// Keepalive after 1 s of silence, 5 probes 1 s apart; unacknowledged data fails after 6 s.
void set_keepalive(int fd) noexcept {
    const int one = 1, idle = 1, intvl = 1, cnt = 5;
    const unsigned user_timeout = 6000;
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/// Waits for `events` on fd until `deadline`; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) throw_errno("poll", k_call);
    }
}

/// Reads exactly `len` bytes from a non-blocking socket before `deadline`; false on EOF, error or timeout.
bool read_exact(int fd, void* out, std::size_t len, Clock::time_point deadline) {
    auto* p = static_cast<char*>(out);
    while (len > 0) {
        if (!wait_fd(fd, POLLIN, deadline)) return false;
        const ssize_t n = ::recv(fd, p, len, 0);
        if (n == 0) return false;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return false;
        }
        p += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

/// The hello a connecting rank sends: its rank and the listener's key.
struct Hello {
    int32_t rank = 0;
    uint32_t pad = 0;
    uint64_t key = 0;
};

std::string ip_text(uint32_t ip) {
    char buf[INET_ADDRSTRLEN] = {};
    const in_addr a{htonl(ip)};
    ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
    return buf;
}

}  // namespace

struct PeerLiveness::Impl {
    int rank = 0;
    std::vector<Method> how;
    std::vector<LivenessRecord> all;
    std::vector<Fd> fds; ///< per rank: its pidfd or its connection (invalid: not watched)
    std::vector<pollfd> pfds;
    std::vector<int> pfd_rank;
    std::vector<uint8_t> dead;
    std::vector<std::string> why;
    Fd listener;
    Clock::time_point next{};
    std::chrono::milliseconds period = k_period.get();

    void setup(int size, const Allgather& allgather, const LivenessOptions& o);
    void listen_if_needed(LivenessRecord& mine, bool pretend);
    void connect_to(int peer, Clock::time_point deadline);
    void accept_from(const std::vector<int>& lower, Clock::time_point deadline);
    int look(int timeout_ms);
};

void PeerLiveness::Impl::listen_if_needed(LivenessRecord& mine, bool pretend) {
    const uint32_t ip = configured_addr();
    if (ip == INADDR_LOOPBACK && !pretend) return; // other hosts cannot reach a loopback listener
    listener = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener) throw_errno("socket", k_call);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ip);
    socklen_t len = sizeof(sa);
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0)
        throw_errno("bind", std::string(k_call) + ": " + ip_text(ip) + " (COYOTE_MPI_LIVENESS_ADDR)");
    if (::listen(listener.get(), 256) != 0) throw_errno("listen", k_call);
    if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) throw_errno("getsockname", k_call);
    mine.port = ntohs(sa.sin_port);
    mine.addr = ip == INADDR_ANY ? coyote::detail::sim::net::first_non_loopback() : ip;
    if (::getrandom(&mine.key, sizeof(mine.key), 0) != static_cast<ssize_t>(sizeof(mine.key)))
        throw_errno("getrandom", k_call);
}

void PeerLiveness::Impl::connect_to(int peer, Clock::time_point deadline) {
    const LivenessRecord& r = all[static_cast<std::size_t>(peer)];
    const std::string who = "rank " + std::to_string(peer) + " at " + ip_text(r.addr) + ":" + std::to_string(r.port);
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) throw_errno("socket", k_call);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(r.addr);
    sa.sin_port = htons(r.port);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0 && errno != EINPROGRESS)
        throw_errno("connect", std::string(k_call) + ": " + who);
    if (!wait_fd(s.get(), POLLOUT, deadline))
        throw_error(Errc::timeout, k_call, "no connection to " + who + " before the set-up deadline");
    int err = 0;
    socklen_t len = sizeof(err);
    (void)::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        errno = err;
        throw_errno("connect", std::string(k_call) + ": " + who);
    }
    const Hello h{rank, 0, r.key};
    if (::send(s.get(), &h, sizeof(h), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(h)))
        throw_errno("send", std::string(k_call) + ": hello to " + who);
    set_keepalive(s.get());
    fds[static_cast<std::size_t>(peer)] = std::move(s);
}

void PeerLiveness::Impl::accept_from(const std::vector<int>& lower, Clock::time_point deadline) {
    std::size_t left = lower.size();
    while (left > 0) {
        if (!wait_fd(listener.get(), POLLIN, deadline))
            throw_error(Errc::timeout, k_call, std::to_string(left) + " rank(s) on other hosts did not connect");
        Fd s(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!s) continue;
        Hello h{};
        // A stranger that sends nothing is dropped at the deadline; a wrong hello at once.
        if (!read_exact(s.get(), &h, sizeof(h), std::min(deadline, Clock::now() + std::chrono::seconds(2)))) continue;
        const bool expected = std::find(lower.begin(), lower.end(), h.rank) != lower.end();
        if (!expected || h.key != all[static_cast<std::size_t>(rank)].key) continue;
        auto& slot = fds[static_cast<std::size_t>(h.rank)];
        if (slot) continue; // a second hello from the same rank
        set_keepalive(s.get());
        slot = std::move(s);
        --left;
    }
}

void PeerLiveness::Impl::setup(int size, const Allgather& allgather, const LivenessOptions& o) {
    const bool pretend = !o.host.empty();
    LivenessRecord mine;
    const std::string host = pretend ? o.host : real_host();
    std::memcpy(mine.host.data(), host.data(), std::min(host.size(), mine.host.size() - 1));
    mine.pid = static_cast<int32_t>(::getpid());
    mine.start_time = coyote::detail::sim::process_start_time(::getpid());
    auto exchange = [&] {
        all = allgather(mine);
        if (static_cast<int>(all.size()) != size) throw_error(Errc::protocol, k_call, "allgather returned a wrong count");
    };
    exchange();
    how.assign(static_cast<std::size_t>(size), Method::none);
    fds.resize(static_cast<std::size_t>(size));
    dead.assign(static_cast<std::size_t>(size), 0);
    why.resize(static_cast<std::size_t>(size));
    bool remote = false;
    for (int r = 0; r < size; ++r) remote = remote || host_of(all[static_cast<std::size_t>(r)]) != host;
    bool any_remote = false; // the same answer on every rank: whether a second exchange happens
    for (const auto& a : all)
        for (const auto& b : all) any_remote = any_remote || host_of(a) != host_of(b);
    if (any_remote) {
        if (remote) listen_if_needed(mine, pretend);
        exchange();
    }
    const auto deadline = Clock::now() + o.setup_timeout;
    std::vector<int> lower;
    for (int r = 0; r < size; ++r) {
        const LivenessRecord& p = all[static_cast<std::size_t>(r)];
        auto& m = how[static_cast<std::size_t>(r)];
        if (r == rank) {
            m = Method::self;
        } else if (host_of(p) == host) {
            fds[static_cast<std::size_t>(r)] = coyote::detail::sim::open_process_fd(p.pid, p.start_time);
            m = fds[static_cast<std::size_t>(r)] ? Method::process : Method::none;
        } else if (r < rank ? mine.port != 0 : p.port != 0 && p.addr != 0) {
            m = Method::connection; // the lower rank connects to the higher one's listener
            if (r < rank) lower.push_back(r);
        }
    }
    for (int r = rank + 1; r < size; ++r)
        if (how[static_cast<std::size_t>(r)] == Method::connection) connect_to(r, deadline);
    if (!lower.empty()) accept_from(lower, deadline);
    listener.reset();
    for (int r = 0; r < size; ++r)
        if (fds[static_cast<std::size_t>(r)]) {
            pfds.push_back({fds[static_cast<std::size_t>(r)].get(), POLLIN | POLLRDHUP, 0});
            pfd_rank.push_back(r);
        }
}

int PeerLiveness::Impl::look(int timeout_ms) {
    if (pfds.empty()) return -1;
    for (auto& p : pfds) p.revents = 0;
    const int n = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (n <= 0) return -1;
    int found = -1;
    for (std::size_t i = 0; i < pfds.size(); ++i) {
        if (pfds[i].revents == 0 || pfds[i].fd < 0) continue;
        const int r = pfd_rank[i];
        const LivenessRecord& p = all[static_cast<std::size_t>(r)];
        if (how[static_cast<std::size_t>(r)] == Method::process) {
            why[static_cast<std::size_t>(r)] = "its process " + std::to_string(p.pid) + " on this host exited";
        } else {
            // Nothing is ever sent after the hello: readable means EOF, a reset or a keepalive failure.
            int err = 0;
            socklen_t len = sizeof(err);
            (void)::getsockopt(pfds[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
            why[static_cast<std::size_t>(r)] = "its liveness connection to host " + host_of(p) +
                                               (err != 0 ? " failed: " + std::string(std::strerror(err)) : " closed");
        }
        dead[static_cast<std::size_t>(r)] = 1;
        pfds[i].fd = -1; // poll ignores it from now on
        if (found < 0) found = r;
    }
    return found;
}

namespace {

/// MPI_Iallgather of every rank's record, bounded by `timeout` (Errc::timeout naming the step; the buffers are then
/// left to MPI, which may still write them).
std::vector<LivenessRecord> allgather_bounded(MPI_Comm comm, const LivenessRecord& mine,
                                              std::chrono::milliseconds timeout) {
    int s = 0;
    check_mpi(MPI_Comm_size(comm, &s), "MPI_Comm_size", k_call);
    auto send = std::make_unique<LivenessRecord>(mine);
    auto all = std::make_unique<std::vector<LivenessRecord>>(static_cast<std::size_t>(s));
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallgather(send.get(), sizeof(mine), MPI_BYTE, all->data(), sizeof(mine), MPI_BYTE, comm, &req),
              "MPI_Iallgather", k_call);
    BootstrapOptions bounded;
    bounded.timeout = timeout;
    bounded.on_timeout = OnTimeout::throw_error;
    try {
        detail::wait_uncancellable(req, comm, "liveness set-up",
                                   "not every rank of the communicator (" + std::to_string(s) +
                                       " ranks) reached bootstrap step 'liveness set-up' (a rank is stuck or gone)",
                                   std::chrono::steady_clock::now() + timeout, bounded);
    } catch (...) {
        (void)send.release();
        (void)all.release();
        throw;
    }
    return std::move(*all);
}

}  // namespace

PeerLiveness::PeerLiveness(int rank, int size, const Allgather& allgather, const LivenessOptions& options)
    : impl_(std::make_unique<Impl>()) {
    impl_->rank = rank;
    impl_->setup(size, allgather, options);
}

PeerLiveness::PeerLiveness(MPI_Comm comm, const LivenessOptions& options)
    : PeerLiveness(
          [&] {
              int r = 0;
              check_mpi(MPI_Comm_rank(comm, &r), "MPI_Comm_rank", k_call);
              return r;
          }(),
          [&] {
              int s = 0;
              check_mpi(MPI_Comm_size(comm, &s), "MPI_Comm_size", k_call);
              return s;
          }(),
          [comm, &options](const LivenessRecord& mine) { return allgather_bounded(comm, mine, options.setup_timeout); },
          options) {}

PeerLiveness::~PeerLiveness() = default;
PeerLiveness::PeerLiveness(PeerLiveness&&) noexcept = default;
PeerLiveness& PeerLiveness::operator=(PeerLiveness&&) noexcept = default;

PeerLiveness::Method PeerLiveness::method(int rank) const { return impl_->how.at(static_cast<std::size_t>(rank)); }

int PeerLiveness::check() {
    const auto now = Clock::now();
    if (now < impl_->next) return -1;
    impl_->next = now + impl_->period;
    return impl_->look(0);
}

int PeerLiveness::poll(std::chrono::milliseconds timeout) {
    return impl_->look(static_cast<int>(std::clamp<long long>(timeout.count(), 0, 1 << 30)));
}

bool PeerLiveness::gone(int rank) const { return impl_->dead.at(static_cast<std::size_t>(rank)) != 0; }

std::string PeerLiveness::reason(int rank) const { return impl_->why.at(static_cast<std::size_t>(rank)); }

}  // namespace coyote::mpi
