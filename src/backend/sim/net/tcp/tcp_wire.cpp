// coyote-mpi sim backend: the TCP wire's connections: listener, HELLO handshake, sending requests, the engine
// thread that polls every connection, and dropping a connection with the requests it carried.
#include "backend/sim/net/tcp/tcp_wire.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

namespace {

/// The 16-byte HELLO payload: the target's key, then the sender's (little-endian).
std::array<std::byte, 16> hello_keys(uint64_t target, uint64_t sender) noexcept {
    std::array<std::byte, 16> keys{};
    const uint64_t k[2] = {target, sender};
    for (size_t i = 0; i < 16; ++i) keys[i] = static_cast<std::byte>((k[i / 8] >> (8 * (i % 8))) & 0xFF);
    return keys;
}

/// The bound address of the listener: COYOTE_SIM_WIRE_ADDR, else the default wire address.
uint32_t bind_address(const WireConfig& cfg) {
    if (cfg.addr.empty()) return default_wire_address();
    in_addr a{};
    if (::inet_pton(AF_INET, cfg.addr.c_str(), &a) != 1)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_WIRE_ADDR", "'" + cfg.addr + "' is not an IPv4 address");
    return ntohl(a.s_addr);
}

void set_nodelay(int fd) noexcept {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

TcpWire::TcpWire(NicImpl& nic, const WireConfig& cfg) : nic_(nic), cfg_(cfg) {
    const std::string call = "sim RDMA wire";
    const uint32_t bind_ip = bind_address(cfg);
    listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener_) throw_errno("socket", call);
    const int one = 1;
    (void)::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(bind_ip);
    sa.sin_port = htons(cfg.port);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0)
        throw_errno("bind", call + ": " + ip_to_string(bind_ip) + ":" + std::to_string(cfg.port) +
                                " (COYOTE_SIM_WIRE_ADDR / COYOTE_SIM_WIRE_PORT)");
    if (::listen(listener_.get(), 64) != 0) throw_errno("listen", call);
    socklen_t len = sizeof(sa);
    if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) throw_errno("getsockname", call);
    port_ = ntohs(sa.sin_port);
    addr_ = bind_ip == INADDR_ANY ? first_non_loopback() : bind_ip;
    event_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event_) throw_errno("eventfd", call);
    engine_ = std::thread([this] { engine(); });
    responder_ = std::thread([this] { responder(); });
}

TcpWire::~TcpWire() {
    stop_.store(true);
    {
        // Unblocks the engine and the responder if they wait for a peer.
        std::lock_guard lk(conns_mtx_);
        for (auto& c : conns_) ::shutdown(c->fd.get(), SHUT_RDWR);
    }
    wake();
    {
        std::lock_guard lk(resp_mtx_);
        resp_cv_.notify_all();
    }
    if (engine_.joinable()) engine_.join();
    if (responder_.joinable()) responder_.join();
}

void TcpWire::wake() noexcept {
    const uint64_t one = 1;
    (void)!::write(event_.get(), &one, sizeof(one));
}

void TcpWire::forget_ctid(int32_t ctid) noexcept {
    // Responses for the ctid's outstanding requests are drained and dropped (the generation changed).
    (void)ctid;
}

void TcpWire::kill(const ConnPtr& c, const std::string& why) noexcept {
    std::map<uint64_t, Pending> lost;
    {
        std::lock_guard lk(c->mtx);
        if (c->dead) return;
        c->dead = true;
        c->death = why;
        lost.swap(c->pending);
    }
    ::shutdown(c->fd.get(), SHUT_RDWR);
    {
        std::lock_guard lk(conns_mtx_);
        if (c->peer_key != 0) {
            auto it = by_key_.find(c->peer_key);
            if (it != by_key_.end() && it->second == c) {
                by_key_.erase(it);
                dead_keys_[c->peer_key] = "connection to " + c->name + " lost: " + why;
            }
        }
    }
    for (auto& [id, p] : lost) {
        try {
            nic_.record_error(p.ctid, p.generation,
                              Error(make_error_code(Errc::peer_gone), opcode_label(p.req.op),
                                    std::string(opcode_label(p.req.op)) + " to " + ip_to_string(p.target_ip) +
                                        " qpn " + hex(p.req.dst_qpn, 6) + " failed: connection to " + c->name +
                                        " lost: " + why));
        } catch (...) {
        }
        CtidState& cs = nic_.ctid_state(p.ctid);
        if (cs.generation.load() == p.generation) cs.inflight.fetch_sub(1);
    }
    wake();
}

Fd TcpWire::dial(const Endpoint& ep, const std::string& who, Clock::time_point deadline) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) throw_errno("socket", "RDMA wire to " + who);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ep.wire_addr);
    sa.sin_port = htons(ep.wire_port);
    int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd pf{s.get(), POLLOUT, 0};
        rc = ::poll(&pf, 1, remaining_ms(deadline)) > 0 ? 0 : -1;
        int err = rc == 0 ? 0 : ETIMEDOUT;
        if (rc == 0) {
            socklen_t el = sizeof(err);
            (void)::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &el);
        }
        rc = err == 0 ? 0 : -1;
        errno = err;
    }
    if (rc != 0) throw_error(Errc::peer_gone, "RDMA", "cannot reach " + who + ": " + std::strerror(errno));
    set_nodelay(s.get());
    FrameHeader h;
    h.type = FrameType::hello;
    h.payload_len = 16;
    const std::array<std::byte, 16> keys = hello_keys(ep.key, nic_.key());
    const auto hb = encode_frame(h);
    std::string err = write_full(s.get(), hb.data(), hb.size(), deadline);
    if (err.empty()) err = write_full(s.get(), keys.data(), keys.size(), deadline);
    std::array<std::byte, k_frame_header_size> rb{};
    if (err.empty()) err = read_full(s.get(), rb.data(), rb.size(), deadline);
    FrameHeader r;
    std::string perr;
    if (err.empty() && (!decode_frame(rb, r, perr) || r.type != FrameType::hello_ack))
        err = perr.empty() ? "unexpected reply to HELLO" : perr;
    if (!err.empty())
        throw_error(Errc::peer_gone, "RDMA", "handshake with " + who + " failed (access key refused?): " + err);
    return s;
}

TcpWire::ConnPtr TcpWire::connect_to(const Endpoint& ep) {
    const std::string where = ip_to_string(ep.wire_addr) + ":" + std::to_string(ep.wire_port);
    const std::string who = "peer " + ip_to_string(ep.ip) + " (pid " + std::to_string(ep.pid) + ", wire " + where + ")";
    {
        std::lock_guard lk(conns_mtx_);
        if (auto it = by_key_.find(ep.key); it != by_key_.end()) return it->second;
        if (auto it = dead_keys_.find(ep.key); it != dead_keys_.end())
            throw_error(Errc::peer_gone, "RDMA", who + ": " + it->second);
    }
    const auto deadline = Clock::now() + std::min<std::chrono::milliseconds>(cfg_.io_timeout, 10000ms);
    auto c = std::make_shared<Conn>();
    c->fd = dial(ep, who, deadline);
    c->name = where;
    c->peer_key = ep.key;
    {
        std::lock_guard lk(conns_mtx_);
        // Keep polling the new connection even when another one to this peer won the race (another poster, or
        // the peer connecting to us at the same time): closing it would look like a dead peer on the other side.
        conns_.push_back(c);
        note_connections();
        if (auto it = by_key_.find(ep.key); it != by_key_.end()) {
            wake();
            return it->second;
        }
        by_key_[ep.key] = c;
    }
    wake();
    return c;
}

PostStatus TcpWire::post(CtidState& cs, int32_t ctid, const RdmaRequest& req_in, const Endpoint& ep,
                         uint64_t local_addr, bool last) {
    if (cs.inflight.load() >= k_max_inflight) return PostStatus::busy;
    ConnPtr c = connect_to(ep);
    RdmaRequest req = req_in;
    Pending p;
    p.ctid = ctid;
    p.local_addr = local_addr;
    p.last = last;
    p.target_ip = ep.ip;
    const uint64_t id = next_req_.fetch_add(1);
    std::lock_guard wl(c->wmtx);
    {
        std::lock_guard lk(cs.mtx);
        p.generation = cs.claim_psn(req);
    }
    p.req = req;
    {
        std::lock_guard lk(c->mtx);
        if (c->dead)
            throw_error(Errc::peer_gone, opcode_label(req.op),
                        "peer " + ip_to_string(ep.ip) + ": connection to " + c->name + " lost: " + c->death);
        c->pending.emplace(id, p);
        cs.inflight.fetch_add(1);
    }
    const FrameHeader h = request_frame(req, id, last);
    const auto hb = encode_frame(h);
    const auto deadline = Clock::now() + cfg_.io_timeout;
    std::string err = write_full(c->fd.get(), hb.data(), hb.size(), deadline);
    if (err.empty() && h.payload_len > 0)
        err = write_full(c->fd.get(), reinterpret_cast<const void*>(local_addr), h.payload_len, deadline);
    if (!err.empty()) kill(c, err); // fails this request too; the error surfaces on the next call
    return PostStatus::ok;
}

void TcpWire::accept_one() {
    sockaddr_in sa{};
    socklen_t len = sizeof(sa);
    Fd s(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!s) return;
    set_nodelay(s.get());
    const auto deadline = Clock::now() + 2000ms;
    std::array<std::byte, k_frame_header_size> hb{};
    std::array<std::byte, 16> keys{};
    FrameHeader h;
    std::string err = read_full(s.get(), hb.data(), hb.size(), deadline);
    if (err.empty() && (!decode_frame(hb, h, err) || h.type != FrameType::hello)) {
        if (err.empty()) err = "first frame is not HELLO";
    }
    if (err.empty()) err = read_full(s.get(), keys.data(), keys.size(), deadline);
    if (!err.empty()) {
        nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    uint64_t k[2] = {0, 0};
    for (size_t i = 0; i < 16; ++i) k[i / 8] |= static_cast<uint64_t>(keys[i]) << (8 * (i % 8));
    if (k[0] != nic_.key()) {
        nic_.shared().counters.bad_key_conns.fetch_add(1, std::memory_order_relaxed);
        return; // closes the connection
    }
    FrameHeader ack;
    ack.type = FrameType::hello_ack;
    const auto ab = encode_frame(ack);
    if (!write_full(s.get(), ab.data(), ab.size(), deadline).empty()) return;
    auto c = std::make_shared<Conn>();
    c->fd = std::move(s);
    c->name = ip_to_string(ntohl(sa.sin_addr.s_addr)) + ":" + std::to_string(ntohs(sa.sin_port));
    c->peer_key = k[1];
    std::lock_guard lk(conns_mtx_);
    conns_.push_back(c);
    note_connections();
    if (by_key_.find(k[1]) == by_key_.end()) by_key_[k[1]] = c;
    dead_keys_.erase(k[1]);
}

void TcpWire::engine() {
    std::vector<pollfd> fds;
    std::vector<ConnPtr> polled;
    while (!stop_.load()) {
        {
            std::lock_guard lk(conns_mtx_);
            // Drop dead connections from the poll set (their fd closes with the last reference).
            std::erase_if(conns_, [](const ConnPtr& c) {
                std::lock_guard clk(c->mtx);
                return c->dead;
            });
            note_connections();
            polled = conns_;
        }
        fds.assign(2 + polled.size(), pollfd{});
        fds[0] = {event_.get(), POLLIN, 0};
        fds[1] = {listener_.get(), POLLIN, 0};
        for (size_t i = 0; i < polled.size(); ++i) fds[2 + i] = {polled[i]->fd.get(), POLLIN, 0};
        const int r = ::poll(fds.data(), fds.size(), -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if ((fds[0].revents & POLLIN) != 0) {
            uint64_t v = 0;
            (void)!::read(event_.get(), &v, sizeof(v));
        }
        if (stop_.load()) return;
        if ((fds[1].revents & POLLIN) != 0) accept_one();
        // A polling thread may have taken the frames meanwhile (progress()): look again under the drive lock.
        std::lock_guard drive(drive_mtx_);
        if (::poll(fds.data() + 2, polled.size(), 0) > 0) serve_ready(fds, polled, 2);
    }
}

void TcpWire::serve_ready(const std::vector<pollfd>& fds, const std::vector<ConnPtr>& polled, size_t first) {
    for (size_t i = 0; i < polled.size(); ++i) {
        if (fds[first + i].revents == 0) continue;
        {
            std::lock_guard lk(polled[i]->mtx);
            if (polled[i]->dead) continue;
        }
        (void)handle_frame(polled[i]);
    }
}

void TcpWire::note_connections() noexcept {
    nic_.wire_connected().store(!conns_.empty(), std::memory_order_release);
}

bool TcpWire::progress() noexcept {
    bool did = false;
    try {
        if (std::unique_lock drive(drive_mtx_, std::try_to_lock); drive.owns_lock()) {
            {
                std::lock_guard lk(conns_mtx_);
                progress_conns_.assign(conns_.begin(), conns_.end());
            }
            progress_fds_.resize(progress_conns_.size());
            for (size_t i = 0; i < progress_conns_.size(); ++i)
                progress_fds_[i] = {progress_conns_[i]->fd.get(), POLLIN, 0};
            if (!progress_fds_.empty() && ::poll(progress_fds_.data(), progress_fds_.size(), 0) > 0) {
                serve_ready(progress_fds_, progress_conns_, 0);
                did = true;
            }
            progress_conns_.clear(); // a dropped connection closes with its last reference
        }
        if (std::unique_lock send(send_mtx_, std::try_to_lock); send.owns_lock()) {
            bool queued = false;
            {
                std::lock_guard lk(resp_mtx_);
                queued = !responses_.empty();
            }
            if (queued) {
                send_queued();
                did = true;
            }
        }
    } catch (...) {
        // Out of memory copying the connection list: the engine and the responder still run.
    }
    return did;
}

}  // namespace coyote::detail::sim::net
