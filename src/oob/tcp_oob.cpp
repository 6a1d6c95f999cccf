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

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "detail/handles.hpp"
#include "detail/settings.hpp"

namespace coyote {

namespace {

using Clock = std::chrono::steady_clock;
using detail::Fd;

const detail::settings::Millis k_connect_timeout{
    "COYOTE_OOB_CONNECT_TIMEOUT_MS", "runtime", TcpOobOptions{}.connect_timeout,
    "TCP out-of-band client (initRDMA): keep retrying the connection this long"};
const detail::settings::Millis k_accept_timeout{"COYOTE_OOB_ACCEPT_TIMEOUT_MS", "runtime",
                                                TcpOobOptions{}.accept_timeout,
                                                "TCP out-of-band server: wait this long for the client"};
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

void set_nonblocking(int fd, bool on) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) != 0)
        throw_errno("fcntl", "set O_NONBLOCK on the out-of-band socket");
}

void set_nodelay(int fd) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

class TcpOob final : public OobChannel {
public:
    TcpOob(Fd fd, bool client, std::string peer, const TcpOobOptions& opt)
        : fd_(std::move(fd)), client_(client), peer_(std::move(peer)), opt_(opt) {}
    ~TcpOob() override { close(); }

    bool is_client() const noexcept override { return client_; }

    std::vector<std::byte> exchange(std::span<const std::byte> mine) override {
        std::vector<std::byte> theirs(mine.size());
        if (client_) {
            write_all(mine.data(), mine.size(), "exchange");
            read_all(theirs.data(), theirs.size(), "exchange");
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

private:
    void check_open(const std::string& call) const {
        if (!fd_) throw_error(Errc::invalid_argument, call, "the out-of-band connection to " + peer_ + " is closed");
    }

    void write_all(const void* data, size_t len, const std::string& call) {
        check_open(call);
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
};

std::string sockaddr_text(const sockaddr* sa) {
    char host[NI_MAXHOST] = {0};
    char serv[NI_MAXSERV] = {0};
    const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return std::string(host) + ":" + serv;
}

std::unique_ptr<OobChannel> make_server(uint16_t port, const TcpOobOptions& opt) {
    const std::string call = "initRDMA (out-of-band server)";
    Fd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!ls) throw_errno("socket", call);
    const int one = 1;
    if (::setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        throw_errno("setsockopt", call + ": SO_REUSEADDR");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    if (::bind(ls.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        throw_errno("bind", call + ": port " + std::to_string(port));
    if (::listen(ls.get(), 1) != 0) throw_errno("listen", call + ": port " + std::to_string(port));
    const auto deadline = Clock::now() + opt.accept_timeout;
    for (;;) {
        if (!wait_fd(ls.get(), POLLIN, deadline, call))
            throw_error(Errc::timeout, call,
                        "no client connected to port " + std::to_string(port) + " within " +
                            std::to_string(opt.accept_timeout.count()) + " ms (COYOTE_OOB_ACCEPT_TIMEOUT_MS)");
        sockaddr_storage peer{};
        socklen_t plen = sizeof(peer);
        Fd c(::accept4(ls.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
        if (!c) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
            throw_errno("accept", call + ": port " + std::to_string(port));
        }
        set_nodelay(c.get());
        set_nonblocking(c.get(), true);
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
        if (remaining_ms(deadline) == 0)
            throw_error(Errc::timeout, call,
                        "could not connect within " + std::to_string(opt.connect_timeout.count()) +
                            " ms (COYOTE_OOB_CONNECT_TIMEOUT_MS); last error: " + last_error);
        // The server may not be up yet: retry shortly.
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, remaining_ms(deadline))));
    }
}

}  // namespace

TcpOobOptions TcpOobOptions::from_env() {
    TcpOobOptions o;
    o.connect_timeout = k_connect_timeout.get();
    o.accept_timeout = k_accept_timeout.get();
    o.io_timeout = k_io_timeout.get();
    return o;
}

std::unique_ptr<OobChannel> make_tcp_oob(uint16_t port, const char* server_address, const TcpOobOptions& options) {
    if (server_address == nullptr) return make_server(port, options);
    if (*server_address == '\0')
        throw_error(Errc::invalid_argument, "initRDMA", "empty out-of-band server address");
    return make_client(port, server_address, options);
}

}  // namespace coyote
