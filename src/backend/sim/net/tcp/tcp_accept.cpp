// coyote-mpi sim backend: the TCP wire's acceptor (every handshake advanced as its bytes arrive, none waited
// for) and the adoption of each authenticated connection with its reader and sender threads (tcp_progress.cpp,
// tcp_frames.cpp).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim::net {

namespace {

using namespace std::chrono_literals;

/// Connections that have not yet presented a valid HELLO; beyond this the oldest is dropped.
constexpr size_t k_max_handshakes = 16;
/// Time a new connection has to present its HELLO.
constexpr auto k_handshake_time = 2000ms;

namespace settings = ::coyote::detail::settings;
const settings::Integer k_max_conns{"COYOTE_SIM_WIRE_MAX_CONNS", "sim-net", 1024, 1, 65536,
                                    "authenticated TCP wire connections peers may hold open to one NIC at once (each "
                                    "costs a reader and a sender thread); a peer beyond them is refused after its HELLO"};

void put_key(std::byte* p, uint64_t k) noexcept {
    for (size_t i = 0; i < 8; ++i) p[i] = static_cast<std::byte>((k >> (8 * i)) & 0xFF);
}

uint64_t get_key(const std::byte* p) noexcept {
    uint64_t k = 0;
    for (size_t i = 0; i < 8; ++i) k |= static_cast<uint64_t>(p[i]) << (8 * i);
    return k;
}

}  // namespace

std::array<std::byte, k_hello_size> encode_hello(const HelloKeys& keys) noexcept {
    FrameHeader h;
    h.type = FrameType::hello;
    h.payload_len = 16;
    std::array<std::byte, k_hello_size> out{};
    const auto hb = encode_frame(h);
    std::copy(hb.begin(), hb.end(), out.begin());
    put_key(out.data() + k_frame_header_size, keys.target);
    put_key(out.data() + k_frame_header_size + 8, keys.sender);
    return out;
}

bool decode_hello(std::span<const std::byte> bytes, HelloKeys& keys, std::string& error) {
    if (bytes.size() != k_hello_size) {
        error = "HELLO of " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(k_hello_size);
        return false;
    }
    FrameHeader h;
    if (!decode_frame(bytes.first<k_frame_header_size>(), h, error)) return false;
    if (h.type != FrameType::hello || h.payload_len != 16) {
        error = "first frame is not a HELLO with 16 bytes of keys";
        return false;
    }
    keys.target = get_key(bytes.data() + k_frame_header_size);
    keys.sender = get_key(bytes.data() + k_frame_header_size + 8);
    return true;
}

void TcpWire::acceptor() {
    std::vector<Handshake> hs;
    std::vector<pollfd> fds;
    while (!stop_.load()) {
        int timeout = -1;
        fds.assign(2 + hs.size(), pollfd{});
        fds[0] = {event_.get(), POLLIN, 0};
        fds[1] = {listener_.get(), POLLIN, 0};
        for (size_t i = 0; i < hs.size(); ++i) {
            fds[2 + i] = {hs[i].fd.get(), POLLIN, 0};
            const int left = remaining_ms(hs[i].deadline);
            timeout = timeout < 0 ? left : std::min(timeout, left);
        }
        if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) return;
        if ((fds[0].revents & POLLIN) != 0) {
            uint64_t v = 0;
            (void)!::read(event_.get(), &v, sizeof(v));
        }
        if (stop_.load()) return;
        // Advance the handshakes polled (readable or past their deadline), then take new connections.
        std::vector<bool> done(hs.size(), false);
        for (size_t i = 0; i < hs.size(); ++i)
            done[i] = fds[2 + i].revents != 0 ? advance(hs[i]) : remaining_ms(hs[i].deadline) == 0;
        for (size_t i = hs.size(); i-- > 0;) {
            if (!done[i]) continue;
            if (hs[i].fd) nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
            hs.erase(hs.begin() + static_cast<std::ptrdiff_t>(i));
        }
        if ((fds[1].revents & POLLIN) != 0) accept_new(hs);
    }
}

void TcpWire::accept_new(std::vector<Handshake>& hs) {
    for (;;) {
        sockaddr_in sa{};
        socklen_t len = sizeof(sa);
        Fd s(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!s) return;
        if (hs.size() >= k_max_handshakes) {
            // A peer completes its HELLO at once: the oldest stranger goes, not the newcomer.
            nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
            hs.erase(hs.begin());
        }
        Handshake h;
        h.fd = std::move(s);
        h.name = ip_to_string(ntohl(sa.sin_addr.s_addr)) + ":" + std::to_string(ntohs(sa.sin_port));
        h.deadline = Clock::now() + k_handshake_time;
        hs.push_back(std::move(h));
        if (!advance(hs.back())) continue;
        if (hs.back().fd) nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        hs.pop_back();
    }
}

bool TcpWire::advance(Handshake& h) {
    // Whatever the socket has now; never waits. Done (true) with h.fd reset when authenticated or refused for
    // its key, done with h.fd set when it failed otherwise (the caller counts it as a bad frame).
    while (h.got < h.buf.size()) {
        const ssize_t n = ::recv(h.fd.get(), h.buf.data() + h.got, h.buf.size() - h.got, MSG_DONTWAIT);
        if (n > 0) {
            h.got += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return remaining_ms(h.deadline) == 0;
        return true; // closed or failed before its HELLO was complete
    }
    HelloKeys keys;
    std::string err;
    if (!decode_hello(h.buf, keys, err)) return true;
    if (!key_issued(keys.target)) {
        nic_.shared().counters.bad_key_conns.fetch_add(1, std::memory_order_relaxed);
        h.fd.reset();
        return true;
    }
    if (accepted_conns() >= static_cast<size_t>(k_max_conns.get())) {
        h.fd.reset(); // refused like a wrong key: closed without HELLO_ACK
        return true;
    }
    FrameHeader ack;
    ack.type = FrameType::hello_ack;
    const auto ab = encode_frame(ack);
    // A fresh socket's send buffer takes these 64 bytes at once; a peer that does not is dropped.
    if (!write_full(h.fd.get(), ab.data(), ab.size(), Clock::now()).empty()) return true;
    set_wire_socket_options(h.fd.get(), cfg_.io_timeout, congestion_);
    auto c = std::make_shared<Conn>();
    c->fd = std::move(h.fd);
    c->name = h.name;
    c->peer_key = keys.sender;
    c->accepted = true;
    adopt(c);
    std::lock_guard lk(conns_mtx_);
    if (by_key_.find(keys.sender) == by_key_.end()) by_key_[keys.sender] = c;
    dead_keys_.erase(keys.sender);
    return true;
}

size_t TcpWire::accepted_conns() {
    std::lock_guard lk(conns_mtx_);
    return static_cast<size_t>(std::count_if(conns_.begin(), conns_.end(), [](const ConnPtr& c) {
        std::lock_guard clk(c->mtx);
        return c->accepted && !c->dead;
    }));
}

void TcpWire::adopt(ConnPtr c) {
    std::lock_guard lk(conns_mtx_);
    // The threads of connections that ended: they only return after setting `finished`, so the joins are quick.
    std::erase_if(readers_, [](ConnThread& t) {
        if (!t.finished->load(std::memory_order_acquire)) return false;
        t.thread.join();
        return true;
    });
    conns_.push_back(c);
    n_conns_.store(conns_.size(), std::memory_order_relaxed);
    nic_.shared().counters.conns_adopted.fetch_add(1, std::memory_order_relaxed);
    nic_.mark_wire_live(); // pollers of the vFPGA start serving connections (progress)
    // The sender first: a frame the reader serves may be answered by the sender, so it exists (and has its
    // name) before the connection serves anything.
    start_conn_thread("coyote-wire-tx", [this, c] { sender(c); });
    start_conn_thread("coyote-wire-rx", [this, c] { reader(c); });
}

void TcpWire::start_conn_thread(const char* name, std::function<void()> body) {
    auto finished = std::make_shared<std::atomic<bool>>(false);
    auto named = std::make_shared<std::atomic<bool>>(false);
    readers_.reserve(readers_.size() + 1); // no throw between starting the thread and keeping it
    std::thread t([this, name, finished, named, body = std::move(body)]() mutable {
        // Named before it does anything, and before start_conn_thread returns, so it has its name before the
        // connection serves a frame (seen in /proc/<pid>/task/*/comm, top, gdb; at most 15 characters).
        (void)::pthread_setname_np(::pthread_self(), name);
        place_wire_thread(thread_cpus_);
        named->store(true, std::memory_order_release);
        named->notify_one();
        body();
        body = nullptr; // its captures (the connection) go before the thread counts as finished
        nic_.shared().counters.conn_threads_ended.fetch_add(1, std::memory_order_release);
        finished->store(true, std::memory_order_release);
    });
    named->wait(false, std::memory_order_acquire);
    readers_.push_back(ConnThread{std::move(t), std::move(finished)});
}

}  // namespace coyote::detail::sim::net
