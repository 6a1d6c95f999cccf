// coyote-mpi: the stock-compatible TCP out-of-band channel (Coyote 0.2.x wire: raw ibvQ, 4-byte acks,
// int32 0 on close), with SO_REUSEADDR, full-length I/O loops and a deadline on every wait.
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "detail/handles.hpp"
#include "detail/settings.hpp"
#include "diag/wait.hpp"

namespace coyote {

namespace {

using Clock = std::chrono::steady_clock;
using detail::Fd;
using detail::diag::WaitWatch;

const detail::settings::Millis k_connect_timeout{
    "COYOTE_OOB_CONNECT_TIMEOUT_MS", "runtime", TcpOobOptions{}.connect_timeout,
    "TCP out-of-band client (initRDMA): keep retrying the connection this long"};
const detail::settings::Millis k_accept_timeout{"COYOTE_OOB_ACCEPT_TIMEOUT_MS", "runtime",
                                                TcpOobOptions{}.accept_timeout,
                                                "TCP out-of-band server: wait this long for the client"};
const detail::settings::Text k_bind_addr{"COYOTE_OOB_BIND_ADDR", "runtime", "",
                                         "IPv4 address the TCP out-of-band server (initRDMA without a server "
                                         "address) listens on (unset: all addresses, as stock Coyote)",
                                         detail::settings::ipv4_problem};
const detail::settings::Millis k_io_timeout{"COYOTE_OOB_IO_TIMEOUT_MS", "runtime", TcpOobOptions{}.io_timeout,
                                            "TCP out-of-band: timeout of every read and write after connecting"};

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1000000 ? 1000000 : static_cast<int>(left);
}

/// Waits for `events` on `fd` until `deadline`; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline, const std::string& call) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) throw_errno("poll", call);
    }
}

void set_nodelay(int fd) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

class TcpOob final : public OobChannel {
public:
    TcpOob(Fd fd, bool client, std::string peer, const TcpOobOptions& opt, std::vector<std::byte> first = {})
        : fd_(std::move(fd)), client_(client), peer_(std::move(peer)), opt_(opt), first_(std::move(first)) {}
    ~TcpOob() override { close(); }

    bool is_client() const noexcept override { return client_; }

    std::vector<std::byte> exchange(std::span<const std::byte> mine) override {
        std::vector<std::byte> theirs(mine.size());
        if (client_) {
            write_all(mine.data(), mine.size(), "exchange");
            read_all(theirs.data(), theirs.size(), "exchange");
        } else if (!first_.empty()) {
            // The client's message was read and checked before it was accepted.
            if (first_.size() != mine.size())
                throw_error(Errc::protocol, "exchange",
                            "the client's message has " + std::to_string(first_.size()) + " bytes, this side's " +
                                std::to_string(mine.size()));
            theirs = std::move(first_);
            first_.clear(); // later exchanges read as usual
            write_all(mine.data(), mine.size(), "exchange");
        } else {
            read_all(theirs.data(), theirs.size(), "exchange");
            write_all(mine.data(), mine.size(), "exchange");
        }
        return theirs;
    }

    void send_ack(uint32_t ack) override { write_all(&ack, sizeof(ack), "sendAck"); }

    uint32_t read_ack() override {
        uint32_t ack = 0;
        read_all(&ack, sizeof(ack), "readAck");
        return ack;
    }

    void close() noexcept override {
        if (!fd_) return;
        if (client_) {
            // Stock protocol: the client announces the close with an int32 0. Best effort, bounded.
            const int32_t zero = 0;
            pollfd p{fd_.get(), POLLOUT, 0};
            if (::poll(&p, 1, 1000) > 0 && (p.revents & POLLOUT) != 0)
                (void)::send(fd_.get(), &zero, sizeof(zero), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        fd_.reset();
    }

    bool peer_closed() const noexcept override {
        if (!fd_) return false;
        // POLLRDHUP: the peer's FIN arrived, even behind unread bytes (its int32 0 on close); HUP / ERR: reset.
        pollfd p{fd_.get(), POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }

private:
    void check_open(const std::string& call) const {
        if (!fd_) throw_error(Errc::invalid_argument, call, "the out-of-band connection to " + peer_ + " is closed");
    }

    /// The stall doctor's watch of one out-of-band read or write (`dir`: "reading"/"writing").
    WaitWatch watch(const std::string& call, const char* dir, size_t len) const {
        const std::string n = std::to_string(len) + " bytes";
        return WaitWatch(call + " (out-of-band)", std::string(dir) + " " + n + " " +
                             (dir[0] == 'r' ? "from" : "to") + " the peer at " + peer_,
                         dir[0] == 'r' ? "the peer at " + peer_ + " has not sent them: it has not reached the same "
                                         "step (its initRDMA, exchange, sync or ack), is busy elsewhere, or is stopped"
                                       : "the peer at " + peer_ + " does not read: its receive buffer is full");
    }

    void write_all(const void* data, size_t len, const std::string& call) {
        check_open(call);
        const WaitWatch w = watch(call, "writing", len);
        const auto deadline = Clock::now() + opt_.io_timeout;
        const auto* p = static_cast<const char*>(data);
        size_t done = 0;
        while (done < len) {
            if (!wait_fd(fd_.get(), POLLOUT, deadline, call))
                throw_error(Errc::timeout, call,
                            "writing to " + peer_ + " timed out after " + std::to_string(done) + " of " +
                                std::to_string(len) + " bytes (" + std::to_string(opt_.io_timeout.count()) +
                                " ms, COYOTE_OOB_IO_TIMEOUT_MS)");
            const ssize_t n = ::send(fd_.get(), p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                done += static_cast<size_t>(n);
            } else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                if (errno == EPIPE || errno == ECONNRESET)
                    throw_error(Errc::peer_gone, call,
                                "peer " + peer_ + " closed the out-of-band connection after " +
                                    std::to_string(done) + " of " + std::to_string(len) + " bytes were written");
                throw_errno("send", call + " to " + peer_);
            }
        }
    }

    void read_all(void* data, size_t len, const std::string& call) {
        check_open(call);
        const WaitWatch w = watch(call, "reading", len);
        const auto deadline = Clock::now() + opt_.io_timeout;
        auto* p = static_cast<char*>(data);
        size_t done = 0;
        while (done < len) {
            if (!wait_fd(fd_.get(), POLLIN, deadline, call))
                throw_error(Errc::timeout, call,
                            "reading from " + peer_ + " timed out after " + std::to_string(done) + " of " +
                                std::to_string(len) + " bytes (" + std::to_string(opt_.io_timeout.count()) +
                                " ms, COYOTE_OOB_IO_TIMEOUT_MS)");
            const ssize_t n = ::recv(fd_.get(), p + done, len - done, MSG_DONTWAIT);
            if (n > 0) {
                done += static_cast<size_t>(n);
            } else if (n == 0) {
                throw_error(Errc::peer_gone, call,
                            "peer " + peer_ + " closed the out-of-band connection after " + std::to_string(done) +
                                " of " + std::to_string(len) + " bytes");
            } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                if (errno == ECONNRESET)
                    throw_error(Errc::peer_gone, call,
                                "peer " + peer_ + " reset the out-of-band connection after " +
                                    std::to_string(done) + " of " + std::to_string(len) + " bytes");
                throw_errno("recv", call + " from " + peer_);
            }
        }
    }

    Fd fd_;
    bool client_;
    std::string peer_;
    TcpOobOptions opt_;
    std::vector<std::byte> first_; ///< the client's first message, read by the server before accepting it
};

std::string sockaddr_text(const sockaddr* sa) {
    char host[NI_MAXHOST] = {0};
    char serv[NI_MAXSERV] = {0};
    const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return std::string(host) + ":" + serv;
}

/// The listening socket of the server: `opt.bind_address` (all addresses when empty), port `port`.
Fd listen_on(uint16_t port, const TcpOobOptions& opt, const std::string& call) {
    Fd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!ls) throw_errno("socket", call);
    const int one = 1;
    if (::setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        throw_errno("setsockopt", call + ": SO_REUSEADDR");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (!opt.bind_address.empty() && ::inet_pton(AF_INET, opt.bind_address.c_str(), &addr.sin_addr) != 1)
        throw_error(Errc::invalid_argument, call,
                    "COYOTE_OOB_BIND_ADDR '" + opt.bind_address + "' is not an IPv4 address");
    addr.sin_port = htons(port);
    if (::bind(ls.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const bool not_here = errno == EADDRNOTAVAIL && !opt.bind_address.empty();
        throw_errno("bind", call + ": " + (opt.bind_address.empty() ? "*" : opt.bind_address) + ":" +
                                std::to_string(port) +
                                (not_here ? " (COYOTE_OOB_BIND_ADDR is not an address of this host or network "
                                            "namespace)"
                                          : ""));
    }
    if (::listen(ls.get(), 16) != 0) throw_errno("listen", call + ": port " + std::to_string(port));
    return ls;
}

/// The stall doctor's watch of the server's wait for a client.
WaitWatch client_watch(uint16_t port, const TcpOobOptions& opt, const std::string& call) {
    const std::string where = "port " + std::to_string(port) + " (" +
                              (opt.bind_address.empty() ? std::string("all addresses") : opt.bind_address) + ")";
    return WaitWatch(call, "a client on " + where,
                     "no client has connected to " + where + ": the client is not started yet, was given another "
                     "host or port, or cannot reach this host");
}

/// A client accepted by the server, not yet checked: its first message arrives into `msg`.
struct Candidate {
    Fd fd;
    std::string name;
    std::vector<std::byte> msg;
    size_t got = 0;
    Clock::time_point deadline;
};

/// Reads what `c` has sent; true when its message is complete, false while it is not; throws a reason text
/// (std::string) when the client closed, failed or ran out of time.
bool read_candidate(Candidate& c) {
    while (c.got < c.msg.size()) {
        const ssize_t n = ::recv(c.fd.get(), c.msg.data() + c.got, c.msg.size() - c.got, MSG_DONTWAIT);
        if (n > 0) {
            c.got += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (remaining_ms(c.deadline) == 0)
                throw std::string("sent " + std::to_string(c.got) + " of " + std::to_string(c.msg.size()) +
                                  " bytes before its deadline");
            return false;
        }
        throw std::string("closed the connection after " + std::to_string(c.got) + " bytes");
    }
    return true;
}

/// The server's accept loop with a client check: every client is read without blocking the others, checked,
/// and refused (closed) or paired; refused clients do not end the wait.
class Acceptor {
public:
    Acceptor(Fd ls, uint16_t port, const TcpOobOptions& opt, std::string call)
        : ls_(std::move(ls)), port_(port), opt_(opt), call_(std::move(call)),
          deadline_(Clock::now() + opt.accept_timeout), watch_(client_watch(port, opt, call_)) {}

    std::unique_ptr<OobChannel> run() {
        for (;;) {
            std::vector<pollfd> fds;
            fds.reserve(1 + cands_.size());
            fds.push_back({ls_.get(), POLLIN, 0});
            int timeout = remaining_ms(deadline_);
            for (const Candidate& c : cands_) {
                fds.push_back({c.fd.get(), POLLIN, 0});
                timeout = std::min(timeout, remaining_ms(c.deadline));
            }
            if (remaining_ms(deadline_) == 0) throw_error(Errc::timeout, call_, timeout_text());
            if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) throw_errno("poll", call_);
            for (size_t i = cands_.size(); i-- > 0;)
                if (auto ch = advance(i, fds[1 + i].revents != 0)) return ch;
            if ((fds[0].revents & POLLIN) != 0) accept_new();
        }
    }

private:
    static constexpr size_t k_max_candidates = 16;

    std::string timeout_text() const {
        std::string t = "no client connected to port " + std::to_string(port_) + " within " +
                        std::to_string(opt_.accept_timeout.count()) + " ms (COYOTE_OOB_ACCEPT_TIMEOUT_MS)";
        if (refused_ > 0)
            t += "; " + std::to_string(refused_) + " client(s) refused, the last (" + last_name_ + ") because it " +
                 last_reason_;
        return t;
    }

    void refuse(size_t i, const std::string& why) {
        ++refused_;
        last_name_ = cands_[i].name;
        last_reason_ = why;
        watch_.set_cause(std::to_string(refused_) + " client(s) connected to port " + std::to_string(port_) +
                         " and were refused, the last (" + last_name_ + ") because it " + last_reason_);
        cands_.erase(cands_.begin() + static_cast<std::ptrdiff_t>(i));
    }

    std::unique_ptr<OobChannel> advance(size_t i, bool readable) {
        Candidate& c = cands_[i];
        try {
            if (!(readable ? read_candidate(c) : (remaining_ms(c.deadline) == 0 && read_candidate(c)))) return nullptr;
        } catch (const std::string& why) {
            refuse(i, why);
            return nullptr;
        }
        if (std::string why = opt_.check_client(c.msg); !why.empty()) {
            refuse(i, "sent a message that was refused: " + why);
            return nullptr;
        }
        return std::make_unique<TcpOob>(std::move(c.fd), false, c.name, opt_, std::move(c.msg));
    }

    void accept_new() {
        for (;;) {
            sockaddr_storage peer{};
            socklen_t plen = sizeof(peer);
            Fd c(::accept4(ls_.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!c) return;
            if (cands_.size() >= k_max_candidates) refuse(0, "was the oldest of too many silent clients");
            set_nodelay(c.get());
            Candidate cand;
            cand.fd = std::move(c);
            cand.name = sockaddr_text(reinterpret_cast<sockaddr*>(&peer));
            cand.msg.resize(opt_.client_message_size);
            cand.deadline = std::min(deadline_, Clock::now() + opt_.io_timeout);
            cands_.push_back(std::move(cand));
        }
    }

    Fd ls_;
    uint16_t port_;
    TcpOobOptions opt_;
    std::string call_;
    Clock::time_point deadline_;
    std::vector<Candidate> cands_;
    size_t refused_ = 0;
    std::string last_name_, last_reason_;
    WaitWatch watch_;
};

std::unique_ptr<OobChannel> make_server(uint16_t port, const TcpOobOptions& opt) {
    const std::string call = "initRDMA (out-of-band server)";
    Fd ls = listen_on(port, opt, call);
    if (opt.check_client && opt.client_message_size > 0) return Acceptor(std::move(ls), port, opt, call).run();
    // Without a check (a channel made for another protocol): the first client is paired, as stock Coyote.
    const WaitWatch watch = client_watch(port, opt, call);
    const auto deadline = Clock::now() + opt.accept_timeout;
    for (;;) {
        if (!wait_fd(ls.get(), POLLIN, deadline, call))
            throw_error(Errc::timeout, call,
                        "no client connected to port " + std::to_string(port) + " within " +
                            std::to_string(opt.accept_timeout.count()) + " ms (COYOTE_OOB_ACCEPT_TIMEOUT_MS)");
        sockaddr_storage peer{};
        socklen_t plen = sizeof(peer);
        Fd c(::accept4(ls.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!c) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
            throw_errno("accept", call + ": port " + std::to_string(port));
        }
        set_nodelay(c.get());
        return std::make_unique<TcpOob>(std::move(c), false, sockaddr_text(reinterpret_cast<sockaddr*>(&peer)), opt);
    }
}

std::unique_ptr<OobChannel> make_client(uint16_t port, const char* server, const TcpOobOptions& opt) {
    const std::string target = std::string(server) + ":" + std::to_string(port);
    const std::string call = "initRDMA (out-of-band client of " + target + ")";
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port_s = std::to_string(port);
    if (const int rc = ::getaddrinfo(server, port_s.c_str(), &hints, &res); rc != 0)
        throw_error(Errc::invalid_argument, call,
                    std::string("cannot resolve '") + server + "': " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

    const auto deadline = Clock::now() + opt.connect_timeout;
    std::string last_error = "no address";
    const std::string not_accepted = "the server at " + target + " has not accepted the connection: it is not started "
                                     "yet, listens on another port or address, or cannot be reached; last error: ";
    WaitWatch watch(call, "the out-of-band server " + target, not_accepted + last_error);
    // Naps from 100 us doubling up to 50 ms: a server that starts a moment later is found at once, a late one
    // costs a connection attempt every 50 ms.
    auto nap = std::chrono::microseconds(100);
    for (;;) {
        for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
            Fd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
            if (!s) {
                last_error = std::strerror(errno);
                continue;
            }
            int rc = ::connect(s.get(), ai->ai_addr, ai->ai_addrlen);
            if (rc != 0 && errno == EINPROGRESS) {
                if (!wait_fd(s.get(), POLLOUT, deadline, call)) {
                    last_error = "connection attempt timed out";
                    continue;
                }
                int err = 0;
                socklen_t elen = sizeof(err);
                (void)::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
                rc = err == 0 ? 0 : -1;
                errno = err;
            }
            if (rc == 0) {
                set_nodelay(s.get());
                return std::make_unique<TcpOob>(std::move(s), true, sockaddr_text(ai->ai_addr), opt);
            }
            last_error = std::strerror(errno);
        }
        watch.set_cause(not_accepted + last_error);
        if (remaining_ms(deadline) == 0)
            throw_error(Errc::timeout, call,
                        "could not connect within " + std::to_string(opt.connect_timeout.count()) +
                            " ms (COYOTE_OOB_CONNECT_TIMEOUT_MS); last error: " + last_error);
        // The server may not be up yet: retry shortly.
        std::this_thread::sleep_for(std::min<std::chrono::microseconds>(
            nap, std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now())));
        nap = std::min<std::chrono::microseconds>(2 * nap, std::chrono::milliseconds(50));
    }
}

}  // namespace

TcpOobOptions TcpOobOptions::from_env() {
    TcpOobOptions o;
    o.connect_timeout = k_connect_timeout.get();
    o.accept_timeout = k_accept_timeout.get();
    o.io_timeout = k_io_timeout.get();
    o.bind_address = k_bind_addr.get();
    return o;
}

std::unique_ptr<OobChannel> make_tcp_oob(uint16_t port, const char* server_address, const TcpOobOptions& options) {
    if (server_address == nullptr) return make_server(port, options);
    if (*server_address == '\0')
        throw_error(Errc::invalid_argument, "initRDMA", "empty out-of-band server address");
    return make_client(port, server_address, options);
}

}  // namespace coyote
