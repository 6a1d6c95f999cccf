// coyote-mpi sim backend: the TCP wire's connections: listener, keys, dialing a peer with its HELLO, sending
// requests, and dropping a connection with the requests it carried.
#include "backend/sim/net/tcp/tcp_wire.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/tcp/congestion.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

namespace {

/// The bound address of the listener: COYOTE_SIM_WIRE_ADDR, else loopback (peers on other hosts need the setting).
uint32_t bind_address(const WireConfig& cfg) {
    if (cfg.addr.empty()) return INADDR_LOOPBACK;
    in_addr a{};
    if (::inet_pton(AF_INET, cfg.addr.c_str(), &a) != 1)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_WIRE_ADDR", "'" + cfg.addr + "' is not an IPv4 address");
    return ntohl(a.s_addr);
}

/// The write turn of a connection, held for a scope (a request frame is written whole).
class WriteTurn {
public:
    explicit WriteTurn(Conn& c) : c_(c) { c_.wturn.acquire(); }
    ~WriteTurn() { c_.wturn.release(); }
    WriteTurn(const WriteTurn&) = delete;
    WriteTurn& operator=(const WriteTurn&) = delete;

private:
    Conn& c_;
};

}  // namespace

TcpWire::TcpWire(NicImpl& nic, const WireConfig& cfg) : nic_(nic), cfg_(cfg) {
    const std::string call = "sim RDMA wire";
    const uint32_t bind_ip = bind_address(cfg);
    listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener_) throw_errno("socket", call);
    const int one = 1;
    (void)::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    congestion_ = apply_congestion(listener_.get(), cfg.congestion);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(bind_ip);
    sa.sin_port = htons(cfg.port);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0)
        throw_errno("bind", call + ": " + ip_to_string(bind_ip) + ":" + std::to_string(cfg.port) +
                                " (COYOTE_SIM_WIRE_ADDR / COYOTE_SIM_WIRE_PORT)");
    socklen_t len = sizeof(sa);
    if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) throw_errno("getsockname", call);
    port_ = ntohs(sa.sin_port);
    addr_ = bind_ip == INADDR_ANY ? first_non_loopback() : bind_ip;
    event_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event_) throw_errno("eventfd", call);
}

void TcpWire::open() {
    if (open_.load()) return;
    std::lock_guard lk(open_mtx_);
    if (open_.load()) return;
    thread_cpus_ = wire_thread_cpus(cfg_.cpus);
    if (::listen(listener_.get(), 64) != 0) throw_errno("listen", "sim RDMA wire");
    acceptor_ = std::thread([this] {
        place_wire_thread(thread_cpus_);
        acceptor();
    });
    (void)::pthread_setname_np(acceptor_.native_handle(), "coyote-accept");
    open_.store(true);
}

uint64_t TcpWire::issue_key(int32_t ctid) {
    std::random_device rd;
    uint64_t k = 0;
    while (k == 0) k = (uint64_t(rd()) << 32) ^ rd();
    std::lock_guard lk(keys_mtx_);
    keys_[ctid] = k;
    return k;
}

uint64_t TcpWire::key_of(int32_t ctid) {
    std::lock_guard lk(keys_mtx_);
    const auto it = keys_.find(ctid);
    return it == keys_.end() ? 0 : it->second;
}

std::optional<std::string> TcpWire::lost_reason(uint64_t key) {
    std::lock_guard lk(conns_mtx_);
    if (by_key_.find(key) != by_key_.end()) return std::nullopt;
    return dead_keys_.find(key);
}

bool TcpWire::key_issued(uint64_t key) {
    std::lock_guard lk(keys_mtx_);
    return key != 0 && std::any_of(keys_.begin(), keys_.end(), [&](const auto& kv) { return kv.second == key; });
}

TcpWire::~TcpWire() {
    stop_.store(true);
    {
        // Unblocks the readers and senders (a reader that ends kills its connection, which wakes its sender).
        std::lock_guard lk(conns_mtx_);
        for (auto& c : conns_) {
            ::shutdown(c->fd.get(), SHUT_RDWR);
            std::lock_guard clk(c->mtx);
            c->out_cv.notify_all();
            c->room_cv.notify_all();
        }
    }
    wake();
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<ConnThread> readers;
    {
        std::lock_guard lk(conns_mtx_);
        for (auto& c : conns_) ::shutdown(c->fd.get(), SHUT_RDWR); // connections adopted meanwhile
        readers.swap(readers_);
    }
    for (auto& t : readers) t.thread.join();
}

void TcpWire::wake() noexcept {
    const uint64_t one = 1;
    (void)!::write(event_.get(), &one, sizeof(one));
}

void TcpWire::forget_ctid(int32_t ctid) noexcept {
    // Responses for the ctid's outstanding requests are drained and dropped (the generation changed).
    std::lock_guard lk(keys_mtx_);
    keys_.erase(ctid);
}

void TcpWire::kill(const ConnPtr& c, const std::string& reported) noexcept {
    std::map<uint64_t, Pending> lost;
    std::string why = reported;
    {
        std::lock_guard lk(c->mtx);
        if (c->dead) return;
        // A peek took the socket's error (a timeout: the peer's host stopped answering); the read that failed
        // next saw only the end of the stream.
        if (const int e = c->sock_err.load(); e != 0) why = "connection failed: " + socket_error_text(e);
        c->dead = true;
        c->death = why;
        lost.swap(c->pending);
    }
    c->out_cv.notify_all(); // its sender ends
    c->room_cv.notify_all(); // and a reader waiting for room in its queue
    ::shutdown(c->fd.get(), SHUT_RDWR);
    {
        std::lock_guard lk(conns_mtx_);
        if (c->peer_key != 0) {
            auto it = by_key_.find(c->peer_key);
            if (it != by_key_.end() && it->second == c) {
                by_key_.erase(it);
                dead_keys_.record(c->peer_key, "connection to " + c->name + " lost: " + why);
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
        nic_.ctid_state(p.ctid).inflight.drop(p.generation);
    }
    wake();
}

namespace {

/// Whether a failed connect may succeed a moment later without anything changing at the peer: the network has no
/// route to it now (a link down, an address not yet configured).
bool network_transient(int err) {
    return err == ENETUNREACH || err == EHOSTUNREACH || err == ENETDOWN || err == EHOSTDOWN;
}

/// How long one connect attempt waits before a fresh one sends a new SYN. The kernel resends a lost SYN after 1 s
/// (then 3 s, 7 s ... before Linux 6.5), so a SYN or ARP request lost while a link came back would otherwise cost
/// a second or more of the wire timeout.
constexpr int k_connect_attempt_ms = 250;

/// Connects to `sa`, waiting at most one attempt's time and never past `deadline`; 0 or an errno value.
int connect_once(int fd, const sockaddr_in& sa, Clock::time_point deadline) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    pollfd pf{fd, POLLOUT, 0};
    if (::poll(&pf, 1, std::min(k_connect_attempt_ms, remaining_ms(deadline))) <= 0) return ETIMEDOUT;
    int err = 0;
    socklen_t el = sizeof(err);
    (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    return err;
}

}  // namespace

Fd TcpWire::connect_socket(const Endpoint& ep, const std::string& who, Clock::time_point deadline) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ep.wire_addr);
    sa.sin_port = htons(ep.wire_port);
    const auto start = Clock::now();
    for (;;) {
        Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!s) throw_errno("socket", "RDMA wire to " + who);
        const int err = connect_once(s.get(), sa, deadline);
        if (err == 0) return s;
        // Refused: with the automatic wire, a peer on another host opens its listener when it learns our
        // endpoint, which may be a moment later; with COYOTE_SIM_WIRE=tcp it listened before it sent it (gone).
        // A listener that closes while the connection waits in its backlog (its process exiting) resets it.
        if ((err == ECONNREFUSED || err == ECONNRESET) && nic_.process_gone(ep)) // nobody is left to listen
            throw_error(Errc::peer_gone, "RDMA", "cannot reach " + who + ": " + peer_label(ep) + " is gone");
        const bool retry =
            (err == ECONNREFUSED && cfg_.mode == WireMode::automatic) || network_transient(err) || err == ETIMEDOUT;
        if (!retry || remaining_ms(deadline) == 0) {
            const auto tried = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
            throw_error(Errc::peer_gone, "RDMA",
                        "cannot reach " + who + ": " + std::strerror(err) +
                            (network_transient(err) || err == ETIMEDOUT
                                 ? " (tried for " + std::to_string(tried) +
                                       " ms: COYOTE_SIM_WIRE_TIMEOUT_MS, at most 10000 ms)"
                                 : "") +
                            (ep.wire_addr == INADDR_LOOPBACK
                                 ? " (its wire listens on loopback; set COYOTE_SIM_WIRE_ADDR on a host reachable "
                                   "from here)"
                                 : ""));
        }
        if (err != ETIMEDOUT) // a timed-out attempt has waited already
            std::this_thread::sleep_for(
                std::chrono::milliseconds(std::min(err == ECONNREFUSED ? 20 : 100, remaining_ms(deadline))));
    }
}

Fd TcpWire::dial(const Endpoint& ep, uint64_t mine, const std::string& who, Clock::time_point deadline) {
    Fd s = connect_socket(ep, who, deadline);
    set_wire_socket_options(s.get(), cfg_.io_timeout, congestion_);
    const auto hello = encode_hello(HelloKeys{ep.key, mine});
    std::string err = write_full(s.get(), hello.data(), hello.size(), deadline);
    std::array<std::byte, k_frame_header_size> rb{};
    if (err.empty()) err = read_full(s.get(), rb.data(), rb.size(), deadline);
    FrameHeader r;
    std::string perr;
    if (err.empty() && (!decode_frame(rb, r, perr) || r.type != FrameType::hello_ack))
        err = perr.empty() ? "unexpected reply to HELLO" : perr;
    if (!err.empty()) {
        if (nic_.process_gone(ep)) // it died while it answered
            throw_error(Errc::peer_gone, "RDMA", "handshake with " + who + " failed: " + peer_label(ep) + " is gone");
        throw_error(Errc::peer_gone, "RDMA", "handshake with " + who + " failed (access key refused?): " + err);
    }
    return s;
}

TcpWire::ConnPtr TcpWire::connect_to(const Endpoint& ep, int32_t ctid) {
    const std::string where = ip_to_string(ep.wire_addr) + ":" + std::to_string(ep.wire_port);
    const std::string who = "peer " + ip_to_string(ep.ip) + " (pid " + std::to_string(ep.pid) + ", wire " + where + ")";
    {
        std::lock_guard lk(conns_mtx_);
        if (auto it = by_key_.find(ep.key); it != by_key_.end()) return it->second;
        if (auto why = dead_keys_.find(ep.key)) throw_error(Errc::peer_gone, "RDMA", who + ": " + *why);
    }
    const auto deadline = Clock::now() + std::min<std::chrono::milliseconds>(cfg_.io_timeout, 10000ms);
    open(); // the peer may answer on a connection of its own
    uint64_t mine = key_of(ctid);
    if (mine == 0) mine = issue_key(ctid);
    auto c = std::make_shared<Conn>();
    c->fd = dial(ep, mine, who, deadline);
    c->name = where;
    c->peer_key = ep.key;
    // Keep serving the new connection even when another one to this peer won the race (another poster, or the
    // peer connecting to us at the same time): closing it would look like a dead peer on the other side.
    adopt(c);
    std::lock_guard lk(conns_mtx_);
    if (auto it = by_key_.find(ep.key); it != by_key_.end()) return it->second;
    by_key_[ep.key] = c;
    return c;
}

PostStatus TcpWire::post(CtidState& cs, int32_t ctid, const RdmaRequest& req_in, const Endpoint& ep,
                         uint64_t local_addr, bool last) {
    if (cs.inflight.count() >= k_max_inflight) return PostStatus::busy;
    ConnPtr c = connect_to(ep, ctid);
    RdmaRequest req = req_in;
    Pending p;
    p.ctid = ctid;
    p.local_addr = local_addr;
    p.last = last;
    p.target_ip = ep.ip;
    const WriteTurn turn(*c);
    // Under the write turn: a connection carries its requests in the order of their ids, which a cumulative ACK
    // relies on (it answers every request of the connection up to its id).
    const uint64_t id = next_req_.fetch_add(1);
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
        cs.inflight.add(p.generation);
    }
    nic_.tap_requester(sniffer::Parts::request, req, ep.ip, local_addr, 0);
    const FrameHeader h = request_frame(req, id, last);
    const auto hb = encode_frame(h);
    const auto deadline = Clock::now() + cfg_.io_timeout;
    size_t done = 0; // header and payload in one sendmsg: one segment and one wake-up of the peer's reader
    const std::string err = write_parts(c->fd.get(), hb, reinterpret_cast<const void*>(local_addr), h.payload_len,
                                        done, deadline, true);
    if (!err.empty()) kill(c, err); // fails this request too; the error surfaces on the next call
    return PostStatus::ok;
}

}  // namespace coyote::detail::sim::net
