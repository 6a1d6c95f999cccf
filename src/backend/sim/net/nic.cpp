// coyote-mpi sim backend: the emulated RoCE NIC of a sim vFPGA.
//
// Queue-pair state comes only from the register writes (RDMA_CTX / RDMA_CONN / NET_ARP, both layouts).
// Two wires carry the requests:
//  - shm (same host): the initiator maps the target's published NIC state and registered buffer, validates
//    the request against that state and copies once (into / out of a remote-access window, which is private
//    memory of the target, with process_vm_writev / process_vm_readv);
//  - tcp (different hosts, or COYOTE_SIM_WIRE=tcp): framed messages to the target's wire engine, which
//    validates with the same function, applies and acknowledges.
// Windows (registerWindow) are published per ctid beside the registered buffer. A request racing with
// unregisterWindow may be accepted just before the withdrawal and then still land (as with RDMA memory
// deregistration); on the tcp wire unregisterWindow waits for a request being applied.
#include "backend/sim/net/nic.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <thread>

#include <coyote/error.hpp>

#include "backend/registers.hpp"
#include "backend/sim/identity.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "backend/sim/shared_state.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr uint32_t k_max_inflight = static_cast<uint32_t>(CMD_FIFO_DEPTH - CMD_FIFO_THR);
constexpr auto k_liveness_period = 10ms;

enum class WireMode { automatic, shm, tcp };

struct WireConfig {
    WireMode mode = WireMode::automatic;
    std::string addr;     ///< COYOTE_SIM_WIRE_ADDR (empty: pick a default)
    uint16_t port = 0;    ///< COYOTE_SIM_WIRE_PORT (0: ephemeral)
    std::chrono::milliseconds io_timeout{30000}; ///< COYOTE_SIM_WIRE_TIMEOUT_MS
    bool deny_cma = false; ///< COYOTE_SIM_DENY_CMA=1: window copies fail as if ptrace access were denied (tests)
};

WireConfig wire_config_from_env() {
    WireConfig c;
    if (const char* e = std::getenv("COYOTE_SIM_WIRE"); e != nullptr && *e != '\0') {
        const std::string v(e);
        if (v == "auto")
            c.mode = WireMode::automatic;
        else if (v == "shm")
            c.mode = WireMode::shm;
        else if (v == "tcp")
            c.mode = WireMode::tcp;
        else
            throw_error(Errc::invalid_argument, "COYOTE_SIM_WIRE", "unknown wire '" + v + "' (expected auto, shm or tcp)");
    }
    if (const char* e = std::getenv("COYOTE_SIM_WIRE_ADDR"); e != nullptr) c.addr = e;
    auto number = [](const char* name, unsigned long max) -> unsigned long {
        const char* e = std::getenv(name);
        if (e == nullptr || *e == '\0') return 0;
        char* end = nullptr;
        errno = 0;
        const unsigned long v = std::strtoul(e, &end, 10);
        if (errno != 0 || end == e || *end != '\0' || v > max)
            throw_error(Errc::invalid_argument, name, std::string("bad value '") + e + "'");
        return v;
    };
    c.port = static_cast<uint16_t>(number("COYOTE_SIM_WIRE_PORT", 65535));
    if (const char* e = std::getenv("COYOTE_SIM_DENY_CMA"); e != nullptr && std::string(e) == "1") c.deny_cma = true;
    if (const unsigned long t = number("COYOTE_SIM_WIRE_TIMEOUT_MS", 86400000UL); t > 0)
        c.io_timeout = std::chrono::milliseconds(t);
    return c;
}

std::string hex(uint64_t v, int width = 6) {
    char b[24];
    std::snprintf(b, sizeof(b), "0x%0*llx", width, static_cast<unsigned long long>(v));
    return b;
}

RdmaOpcode opcode_of(CoyoteOper oper) {
    switch (oper) {
    case CoyoteOper::REMOTE_RDMA_READ: return RdmaOpcode::read;
    case CoyoteOper::REMOTE_RDMA_WRITE: return RdmaOpcode::write;
    case CoyoteOper::REMOTE_RDMA_SEND: return RdmaOpcode::send;
    default: break;
    }
    throw_error(Errc::invalid_argument, "post", "the NIC takes REMOTE_RDMA_* commands only");
}

std::atomic<uint32_t>& wback(SharedState& s, CmplClass cls, int32_t ctid) {
    return s.wback[static_cast<size_t>(cls) * N_CTID_MAX + static_cast<size_t>(ctid)];
}

// ---- socket helpers ----------------------------------------------------------------------------

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1000000 ? 1000000 : static_cast<int>(left);
}

/// Full-length write with a deadline; returns an error text, empty on success.
std::string write_full(int fd, const void* data, size_t len, Clock::time_point deadline) {
    const auto* p = static_cast<const char*>(data);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = ::send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return std::string("send failed: ") + std::strerror(errno);
        pollfd pf{fd, POLLOUT, 0};
        const int r = ::poll(&pf, 1, remaining_ms(deadline));
        if (r == 0) return "send timed out after " + std::to_string(done) + " of " + std::to_string(len) + " bytes";
        if (r < 0 && errno != EINTR) return std::string("poll failed: ") + std::strerror(errno);
    }
    return {};
}

/// Full-length read with a deadline; returns an error text, empty on success. With `fault_at`, a destination
/// that is not writable process memory (EFAULT) stops the read: *fault_at = bytes received, the rest stays in the
/// socket, and the result is empty.
std::string read_full(int fd, void* data, size_t len, Clock::time_point deadline, size_t* fault_at = nullptr) {
    auto* p = static_cast<char*>(data);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = ::recv(fd, p + done, len - done, MSG_DONTWAIT);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n == 0)
            return "connection closed by the peer after " + std::to_string(done) + " of " + std::to_string(len) +
                   " bytes";
        if (errno == EFAULT && fault_at != nullptr) {
            *fault_at = done;
            return {};
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return std::string("recv failed: ") + std::strerror(errno);
        pollfd pf{fd, POLLIN, 0};
        const int r = ::poll(&pf, 1, remaining_ms(deadline));
        if (r == 0) return "receive timed out after " + std::to_string(done) + " of " + std::to_string(len) + " bytes";
        if (r < 0 && errno != EINTR) return std::string("poll failed: ") + std::strerror(errno);
    }
    return {};
}

/// Reads and discards `len` bytes.
std::string drain(int fd, uint64_t len, Clock::time_point deadline) {
    char scratch[16384];
    while (len > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof(scratch)));
        if (auto err = read_full(fd, scratch, n, deadline); !err.empty()) return err;
        len -= n;
    }
    return {};
}

/// Copies `len` bytes between this process (`local`) and process `pid` (`remote`): process_vm_writev when
/// `to_remote`, else process_vm_readv; loops on partial transfers. Returns 0 or the errno of the failure.
int vm_copy(pid_t pid, bool to_remote, uint64_t local, uint64_t remote, uint64_t len) noexcept {
    uint64_t done = 0;
    while (done < len) {
        iovec l{reinterpret_cast<void*>(local + done), static_cast<size_t>(len - done)};
        iovec r{reinterpret_cast<void*>(remote + done), static_cast<size_t>(len - done)};
        const ssize_t n = to_remote ? ::process_vm_writev(pid, &l, 1, &r, 1, 0) : ::process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EFAULT; // no progress: the next page is not accessible
        done += static_cast<uint64_t>(n);
    }
    return 0;
}

/// [addr, addr + len) is mapped in this process (msync fails with ENOMEM on a hole).
bool still_mapped_here(uint64_t addr, uint64_t len) noexcept {
    if (len == 0) return true;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t s = addr / page * page;
    const uint64_t e = (addr + len + page - 1) / page * page;
    return ::msync(reinterpret_cast<void*>(s), e - s, MS_ASYNC) == 0;
}

/// Lets processes of the same user read and write this one's memory with process_vm_* where Yama restricts
/// ptrace to descendants (ptrace_scope 1): the shm wire reaches windows that way. Once per process.
void allow_cross_process_access() noexcept {
    static std::once_flag once;
    std::call_once(once, [] { (void)::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); });
}

bool is_local_address(uint32_t ip_host) {
    ifaddrs* ifa = nullptr;
    if (::getifaddrs(&ifa) != 0) return false;
    bool found = false;
    for (const ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
        const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
        if (ntohl(sin->sin_addr.s_addr) == ip_host) found = true;
    }
    ::freeifaddrs(ifa);
    return found;
}

/// The default wire address: the host name's address if it is a local non-loopback address, else 127.0.0.1.
uint32_t default_wire_address() {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0) {
        addrinfo hints{};
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host, nullptr, &hints, &res) == 0) {
            uint32_t pick = 0;
            for (const addrinfo* a = res; a != nullptr && pick == 0; a = a->ai_next) {
                const uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr.s_addr);
                if ((ip >> 24) != 127 && is_local_address(ip)) pick = ip;
            }
            ::freeaddrinfo(res);
            if (pick != 0) return pick;
        }
    }
    return INADDR_LOOPBACK;
}

/// An address peers can reach when the listener is bound to 0.0.0.0.
uint32_t first_non_loopback() {
    ifaddrs* ifa = nullptr;
    if (::getifaddrs(&ifa) != 0) return INADDR_LOOPBACK;
    uint32_t pick = INADDR_LOOPBACK;
    for (const ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
        const uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
        if ((ip >> 24) != 127) {
            pick = ip;
            break;
        }
    }
    ::freeifaddrs(ifa);
    return pick;
}

/// Monotonic nanoseconds at timer-tick resolution (a few ms): what the per-post liveness period needs, at a
/// fraction of steady_clock's cost (measured 7 vs 37 ns per call on the development VM).
int64_t coarse_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---- per-ctid state ----------------------------------------------------------------------------

struct ShmPeer;

struct CtidState {
    std::mutex post_mtx; ///< serializes posts of this ctid (PSN order = wire order); may be held across I/O
    std::mutex mtx;      ///< short critical sections only (never held across I/O)
    // Decoded registers.
    std::array<uint64_t, 3> ctx_words{};
    std::array<uint64_t, 3> conn_words{};
    bool has_ctx = false, has_conn = false;
    DecodedQpContext ctx;
    DecodedConnContext conn;
    uint32_t next_psn = 0;
    std::optional<Endpoint> peer;
    std::optional<Error> pending;
    std::atomic<bool> has_pending{false}; ///< lock-free check for the polling path
    /// Resolved shm route (peers live until the NIC is destroyed); null when the context, the peer or the ARP
    /// table changed since it was resolved. Written under mtx; read lock-free by the post fast path, which
    /// checks it again under mtx.
    std::atomic<ShmPeer*> shm_route{nullptr};
    /// The target's registered buffer the last shm post of this ctid mapped (guarded by post_mtx): reused while
    /// the validated request names the same peer, target ctid and buffer generation.
    struct MappedTarget {
        const ShmPeer* peer = nullptr;
        int32_t ctid = -1;
        uint64_t generation = 0;
        std::shared_ptr<ShmSegment> seg;
    } mapped;
    /// The target's queue pair and buffer slots as the last shm post of this ctid read them (guarded by post_mtx).
    SlotCache slots;
    std::atomic<uint32_t> inflight{0};
    std::atomic<uint64_t> generation{0};
    // Registered buffer (local).
    uint64_t buf_addr = 0, buf_size = 0, buf_generation = 0;
    uint32_t rkey = 0;
    std::string buf_name;
    // Remote-access windows (local copy of the published slots; size 0 = free slot).
    struct Window {
        uint64_t vaddr = 0, size = 0;
    };
    std::array<Window, k_nic_windows> wins{};
    uint32_t win_count = 0;
    uint64_t win_generation = 0; ///< last generation handed out (never reset: slots stay unique across ctid reuse)

    /// [addr, addr + len) lies whole in the registered buffer or one window (mtx held).
    bool local_target_ok(uint64_t addr, uint64_t len) const noexcept {
        if (buf_size != 0 && range_inside(addr, len, buf_addr, buf_size)) return true;
        for (const Window& w : wins)
            if (w.size != 0 && range_inside(addr, len, w.vaddr, w.size)) return true;
        return false;
    }
};

/// A same-host peer reached over shared memory: its mapped NIC state, counters and buffers.
struct ShmPeer {
    Endpoint ep;
    ShmSegment nic_seg;
    ShmSegment state_seg;
    NicShared* nic = nullptr;
    SharedState* state = nullptr;
    std::mutex mtx; ///< bufs
    /// Liveness (lock-free: every post checks it): the last check in steady-clock nanoseconds, and whether the
    /// peer was found gone.
    std::atomic<int64_t> last_check_ns{0};
    std::atomic<bool> gone{false};
    Fd pidfd; ///< the peer process (readable once it exited); invalid: fall back to kill + /proc
    std::map<int32_t, std::pair<uint64_t, std::shared_ptr<ShmSegment>>> bufs;
};

class NicImpl;

// ---- TCP wire ----------------------------------------------------------------------------------

struct Pending {
    int32_t ctid = -1;
    uint64_t generation = 0;
    RdmaRequest req;
    uint64_t local_addr = 0;
    bool last = false;
    uint32_t target_ip = 0;
};

struct Conn {
    Fd fd;
    std::string name;      ///< "a.b.c.d:port"
    uint64_t peer_key = 0;
    std::mutex wmtx;       ///< one whole frame at a time
    std::mutex mtx;        ///< pending, dead
    std::map<uint64_t, Pending> pending;
    bool dead = false;
    std::string death;
};

struct Response {
    std::shared_ptr<Conn> conn;
    FrameHeader h;
    std::string text;          ///< NAK payload
    int32_t ctid = -1;         ///< READ response source
    uint64_t buf_generation = 0;
    bool in_window = false;    ///< the READ source is window `window` of generation win_generation
    uint32_t window = 0;
    uint64_t win_generation = 0;
    uint64_t data_addr = 0;
};

class TcpWire {
public:
    TcpWire(NicImpl& nic, const WireConfig& cfg);
    ~TcpWire();
    TcpWire(const TcpWire&) = delete;
    TcpWire& operator=(const TcpWire&) = delete;

    uint32_t address() const noexcept { return addr_; }
    uint16_t port() const noexcept { return port_; }
    PostStatus post(CtidState& cs, int32_t ctid, const RdmaRequest& req, const Endpoint& ep, uint64_t local_addr,
                    bool last);
    void forget_ctid(int32_t ctid) noexcept;

private:
    std::shared_ptr<Conn> connect_to(const Endpoint& ep);
    void engine();
    void responder();
    void accept_one();
    bool handle_frame(const std::shared_ptr<Conn>& c); // false: connection dropped
    void kill(const std::shared_ptr<Conn>& c, const std::string& why) noexcept;
    void respond(Response r);
    void wake() noexcept;

    NicImpl& nic_;
    WireConfig cfg_;
    Fd listener_;
    Fd event_;
    uint32_t addr_ = 0;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> next_req_{1};

    std::mutex conns_mtx_;
    std::vector<std::shared_ptr<Conn>> conns_;           ///< polled by the engine
    std::map<uint64_t, std::shared_ptr<Conn>> by_key_;   ///< peer key -> connection used for requests
    std::map<uint64_t, std::string> dead_keys_;          ///< peers whose connection was lost

    std::mutex resp_mtx_;
    std::condition_variable resp_cv_;
    std::deque<Response> responses_;

    std::thread engine_;
    std::thread responder_;
};

// ---- the NIC -----------------------------------------------------------------------------------

class NicImpl final : public Nic {
public:
    explicit NicImpl(NicHost& host);
    ~NicImpl() override;

    bool on_cnfg_write(uint32_t reg, std::span<const uint64_t> words) override;
    uint64_t read_cnfg(uint32_t reg) const override;
    PostStatus post(const Command& cmd) override;
    void register_buffer(int32_t ctid, void* addr, uint64_t size, const std::string& shm_name) override;
    void unregister_buffer(int32_t ctid, void* addr) noexcept override;
    void register_window(int32_t ctid, uint64_t vaddr, uint64_t len) override;
    void unregister_window(int32_t ctid, uint64_t vaddr) override;
    uint32_t rkey(int32_t ctid) const override;
    std::vector<std::byte> local_endpoint(int32_t ctid) const override;
    void set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) override;
    void raise_pending_error(int32_t ctid) override;
    const std::atomic<bool>& pending_flag(int32_t ctid) const noexcept override {
        return ctids_[static_cast<size_t>(ctid)].has_pending;
    }
    void on_ctid_unregistered(int32_t ctid) noexcept override;
    std::string debug_string(int32_t ctid) const override;

    // For the TCP wire.
    NicShared& shared() noexcept { return *shared_; }
    SharedState& state() noexcept { return host_.shared_state(); }
    uint32_t ip() const noexcept { return host_.ip_address(); }
    uint64_t key() const noexcept { return key_; }
    std::shared_mutex& buffers_mutex() noexcept { return bufs_mtx_; }
    CtidState& ctid_state(int32_t ctid) noexcept { return ctids_[static_cast<size_t>(ctid)]; }
    void record_error(int32_t ctid, uint64_t generation, Error e) noexcept;

private:
    CtidState& cs_checked(int32_t ctid, const char* call) const;
    /// The ctid a context word addresses, or -1 (counted as a rejected context) when its vFPGA bits are not ours.
    int32_t ctid_of_local_qpn(uint32_t local_qpn) const noexcept;
    void commit_ctx(const std::array<uint64_t, 3>& w);
    void commit_conn(const std::array<uint64_t, 3>& w);
    void arp_lookup(uint32_t ip);
    void publish_qp(int32_t ctid, CtidState& cs);
    void mark_exists(int32_t ctid) const;
    void ensure_tcp() const;
    bool use_tcp(const Endpoint& ep) const;
    ShmPeer& shm_peer(const Endpoint& ep);
    /// Applies `req` (PSN assigned, generation = the queue pair's at that time) at a same-host peer; post_mtx held.
    PostStatus post_shm(CtidState& cs, int32_t ctid, const RdmaRequest& req, uint64_t generation, ShmPeer& peer,
                        uint64_t local_addr, bool last);
    /// Throws peer_gone when the peer process died (checked at most every k_liveness_period).
    static void check_alive(ShmPeer& p);
    /// Throws invalid_argument unless a READ's local target lies in the registered buffer or a window (cs.mtx held).
    static void check_read_target(const CtidState& cs, int32_t ctid, uint64_t addr, uint32_t len, const char* call);
    /// Copies to / from window memory of a same-host peer. Returns false when the window memory is no longer
    /// mapped in the target (error recorded on the queue pair); throws peer_gone / not_supported.
    bool window_copy(int32_t ctid, uint64_t generation, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                     uint64_t local_addr);

    NicHost& host_;
    WireConfig cfg_;
    Endpoint me_; ///< host identity of this process
    uint64_t key_ = 0;
    ShmSegment seg_;
    NicShared* shared_ = nullptr;
    mutable std::array<CtidState, N_CTID_MAX> ctids_;
    mutable std::shared_mutex bufs_mtx_;

    mutable std::mutex mtx_; ///< ARP, endpoints, legacy staging, last words, tcp start
    std::map<uint32_t, Endpoint> known_by_ip_;
    std::map<uint32_t, Endpoint> arp_;
    std::array<uint64_t, 3> leg_ctx_{}, leg_conn_{};
    std::map<uint32_t, uint64_t> last_word_;

    std::mutex peers_mtx_;
    std::map<uint64_t, std::unique_ptr<ShmPeer>> peers_;

    mutable std::unique_ptr<TcpWire> tcp_;
};

// ---- NicImpl -----------------------------------------------------------------------------------

NicImpl::NicImpl(NicHost& host) : host_(host), cfg_(wire_config_from_env()) {
    fill_host_identity(me_);
    std::random_device rd;
    key_ = (uint64_t(rd()) << 32) ^ rd() ^ (uint64_t(::getpid()) << 16);
    if (key_ == 0) key_ = 1;
    const std::string name = vfpga_segment_prefix(host.device_id(), host.vfid()) + ".nic";
    try {
        seg_ = ShmSegment::create(name, sizeof(NicShared));
    } catch (const Error& e) {
        if (e.code() != std::error_code(EEXIST, std::generic_category())) throw;
        // Our own pid owns the name: a leftover of a previous NIC of this process.
        ::shm_unlink(name.c_str());
        seg_ = ShmSegment::create(name, sizeof(NicShared));
    }
    shared_ = new (seg_.get()) NicShared();
    shared_->version = k_nic_version;
    shared_->size = static_cast<uint32_t>(sizeof(NicShared));
    shared_->owner_pid = ::getpid();
    shared_->owner_start_time = process_start_time(::getpid());
    shared_->device = host.device_id();
    shared_->vfid = host.vfid();
    shared_->ip = host.ip_address();
    shared_->mac = host.mac_address();
    std::atomic_thread_fence(std::memory_order_release);
    shared_->magic = k_nic_magic;
}

NicImpl::~NicImpl() {
    tcp_.reset();
    std::lock_guard lk(peers_mtx_);
    peers_.clear();
}

CtidState& NicImpl::cs_checked(int32_t ctid, const char* call) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, call, "ctid " + std::to_string(ctid) + " out of range");
    return ctids_[static_cast<size_t>(ctid)];
}

void NicImpl::mark_exists(int32_t ctid) const {
    QpSlot& s = shared_->qp[ctid];
    QpView v = read_qp(s);
    if ((v.flags & QpSlot::k_exists) != 0) return;
    v.flags |= QpSlot::k_exists;
    write_qp(s, v);
}

void NicImpl::publish_qp(int32_t ctid, CtidState& cs) {
    QpView v;
    v.flags = QpSlot::k_exists | (cs.has_ctx ? QpSlot::k_ctx : 0u) | (cs.has_conn ? QpSlot::k_conn : 0u);
    v.local_qpn = cs.ctx.local_qpn;
    v.remote_rkey = cs.ctx.remote_rkey;
    v.local_psn = cs.ctx.local_psn;
    v.remote_psn = cs.ctx.remote_psn;
    v.remote_vaddr = cs.ctx.remote_vaddr;
    v.remote_qpn = cs.conn.remote_qpn;
    v.remote_ip = cs.has_conn ? cs.conn.remote_ip() : 0;
    v.port = cs.conn.port;
    write_qp(shared_->qp[ctid], v);
}

bool NicImpl::on_cnfg_write(uint32_t reg, std::span<const uint64_t> words) {
    if (words.empty()) return false;
    const bool avx = host_.avx_layout();
    auto three = [&]() {
        std::array<uint64_t, 3> w{};
        for (size_t i = 0; i < 3 && i < words.size(); ++i) w[i] = words[i];
        return w;
    };
    if (avx) {
        switch (static_cast<CnfgAvxRegs>(reg)) {
        case CnfgAvxRegs::RDMA_CTX_REG: commit_ctx(three()); break;
        case CnfgAvxRegs::RDMA_CONN_REG: commit_conn(three()); break;
        case CnfgAvxRegs::NET_ARP_REG: arp_lookup(static_cast<uint32_t>(words[0])); break;
        default: return false;
        }
    } else {
        const auto r = static_cast<CnfgLegRegs>(reg);
        std::array<uint64_t, 3> commit{};
        bool do_ctx = false, do_conn = false;
        {
            std::lock_guard lk(mtx_);
            switch (r) {
            case CnfgLegRegs::RDMA_CTX_REG_0:
            case CnfgLegRegs::RDMA_CTX_REG_1:
            case CnfgLegRegs::RDMA_CTX_REG_2:
                leg_ctx_[reg - static_cast<uint32_t>(CnfgLegRegs::RDMA_CTX_REG_0)] = words[0];
                if (r == CnfgLegRegs::RDMA_CTX_REG_2) {
                    commit = leg_ctx_;
                    do_ctx = true;
                }
                break;
            case CnfgLegRegs::RDMA_CONN_REG_0:
            case CnfgLegRegs::RDMA_CONN_REG_1:
            case CnfgLegRegs::RDMA_CONN_REG_2:
                leg_conn_[reg - static_cast<uint32_t>(CnfgLegRegs::RDMA_CONN_REG_0)] = words[0];
                if (r == CnfgLegRegs::RDMA_CONN_REG_2) {
                    commit = leg_conn_;
                    do_conn = true;
                }
                break;
            case CnfgLegRegs::NET_ARP_REG: break;
            default: return false;
            }
            last_word_[reg] = words[0];
        }
        if (do_ctx) commit_ctx(commit);
        if (do_conn) commit_conn(commit);
        if (r == CnfgLegRegs::NET_ARP_REG) arp_lookup(static_cast<uint32_t>(words[0]));
        return true;
    }
    std::lock_guard lk(mtx_);
    last_word_[reg] = words[0];
    return true;
}

uint64_t NicImpl::read_cnfg(uint32_t reg) const {
    std::lock_guard lk(mtx_);
    const auto it = last_word_.find(reg);
    return it == last_word_.end() ? 0 : it->second;
}

int32_t NicImpl::ctid_of_local_qpn(uint32_t local_qpn) const noexcept {
    const uint32_t vf_bits = (local_qpn >> PID_BITS) & 0xFu;
    if (vf_bits != (static_cast<uint32_t>(host_.vfid()) & 0xFu) || (local_qpn >> (PID_BITS + 4)) != 0) {
        shared_->counters.ctx_rejected.fetch_add(1, std::memory_order_relaxed);
        return -1;
    }
    return static_cast<int32_t>(local_qpn & PID_MASK);
}

void NicImpl::commit_ctx(const std::array<uint64_t, 3>& w) {
    const DecodedQpContext d = decode_qp_ctx(w);
    const int32_t ctid = ctid_of_local_qpn(d.local_qpn);
    if (ctid < 0) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::lock_guard lk(cs.mtx);
    cs.ctx_words = w;
    cs.ctx = d;
    cs.has_ctx = true;
    cs.shm_route = nullptr;
    cs.next_psn = d.local_psn;
    publish_qp(ctid, cs);
    shared_->qp[ctid].expected_psn.store(d.remote_psn, std::memory_order_release);
}

void NicImpl::commit_conn(const std::array<uint64_t, 3>& w) {
    const DecodedConnContext d = decode_conn(w);
    const int32_t ctid = ctid_of_local_qpn(d.local_qpn);
    if (ctid < 0) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::lock_guard lk(cs.mtx);
    cs.conn_words = w;
    cs.conn = d;
    cs.has_conn = true;
    cs.shm_route = nullptr;
    publish_qp(ctid, cs);
}

void NicImpl::arp_lookup(uint32_t ip) {
    std::lock_guard lk(mtx_);
    const auto it = known_by_ip_.find(ip);
    if (it == known_by_ip_.end()) {
        shared_->counters.arp_misses.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    arp_[ip] = it->second;
    for (auto& c : ctids_) {
        std::lock_guard clk(c.mtx);
        c.shm_route = nullptr;
    }
}

void NicImpl::register_buffer(int32_t ctid, void* addr, uint64_t size, const std::string& shm_name) {
    CtidState& cs = cs_checked(ctid, "register_buffer");
    if (shm_name.size() > k_segment_name_max)
        throw_error(Errc::invalid_argument, "register_buffer", "segment name '" + shm_name + "' is too long");
    static thread_local std::mt19937 rng(std::random_device{}());
    std::unique_lock bl(bufs_mtx_);
    std::lock_guard lk(cs.mtx);
    uint32_t key = 0;
    while (key == 0 || key == cs.rkey) key = static_cast<uint32_t>(rng());
    cs.rkey = key;
    cs.buf_addr = reinterpret_cast<uint64_t>(addr);
    cs.buf_size = size;
    cs.buf_name = shm_name;
    ++cs.buf_generation;
    BufView v;
    v.valid = true;
    v.rkey = key;
    v.vaddr = cs.buf_addr;
    v.size = size;
    v.generation = cs.buf_generation;
    v.name = shm_name;
    write_buf(shared_->buf[ctid], v);
    mark_exists(ctid);
}

void NicImpl::unregister_buffer(int32_t ctid, void* addr) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::unique_lock bl(bufs_mtx_); // waits for wire I/O into or out of the buffer
    std::lock_guard lk(cs.mtx);
    if (cs.buf_addr != reinterpret_cast<uint64_t>(addr)) return;
    cs.buf_addr = 0;
    cs.buf_size = 0;
    cs.rkey = 0;
    cs.buf_name.clear();
    ++cs.buf_generation;
    BufView v;
    v.generation = cs.buf_generation;
    write_buf(shared_->buf[ctid], v);
}

void NicImpl::register_window(int32_t ctid, uint64_t vaddr, uint64_t len) {
    CtidState& cs = cs_checked(ctid, "registerWindow");
    const char* call = "registerWindow";
    // Messages are built only on failure.
    auto range = [&] { return hex(vaddr, 1) + " + len " + std::to_string(len); };
    if (vaddr == 0) throw_error(Errc::invalid_argument, call, "null window address (ctid " + std::to_string(ctid) + ")");
    if (len == 0) throw_error(Errc::invalid_argument, call, "empty window at " + hex(vaddr, 1));
    if (vaddr + len < vaddr)
        throw_error(Errc::invalid_argument, call, "window " + range() + " wraps around the address space");
    if (vaddr + len > (1ULL << 48))
        throw_error(Errc::invalid_argument, call,
                    "window " + range() + " ends beyond the 48-bit virtual addresses RDMA requests carry");
    allow_cross_process_access();
    std::lock_guard lk(cs.mtx);
    size_t free_slot = k_nic_windows;
    for (size_t i = 0; i < k_nic_windows; ++i) {
        const CtidState::Window& w = cs.wins[i];
        if (w.size == 0) {
            if (free_slot == k_nic_windows) free_slot = i;
            continue;
        }
        if (vaddr < w.vaddr + w.size && w.vaddr < vaddr + len)
            throw_error(Errc::invalid_argument, call,
                        "window " + range() + " overlaps the window " + hex(w.vaddr, 1) + " + len " +
                            std::to_string(w.size) + " of ctid " + std::to_string(ctid));
    }
    if (free_slot == k_nic_windows)
        throw_error(Errc::invalid_argument, call,
                    "window table of ctid " + std::to_string(ctid) + " is full: all " + std::to_string(k_nic_windows) +
                        " windows (cThread::k_max_windows) are registered; cannot add " + range());
    cs.wins[free_slot] = {vaddr, len};
    ++cs.win_count;
    WinView v;
    v.valid = true;
    v.vaddr = vaddr;
    v.size = len;
    v.generation = ++cs.win_generation;
    write_win(shared_->win[ctid][free_slot], v);
    shared_->win_mask[ctid].fetch_or(1u << free_slot, std::memory_order_release);
    mark_exists(ctid);
}

void NicImpl::unregister_window(int32_t ctid, uint64_t vaddr) {
    CtidState& cs = cs_checked(ctid, "unregisterWindow");
    std::unique_lock bl(bufs_mtx_); // waits for tcp wire I/O into or out of a window
    std::lock_guard lk(cs.mtx);
    size_t slot = k_nic_windows;
    for (size_t i = 0; i < k_nic_windows && slot == k_nic_windows; ++i)
        if (cs.wins[i].size != 0 && cs.wins[i].vaddr == vaddr) slot = i;
    if (slot == k_nic_windows)
        throw_error(Errc::invalid_argument, "unregisterWindow",
                    "no window of ctid " + std::to_string(ctid) + " starts at " + hex(vaddr, 1) + " (" +
                        std::to_string(cs.win_count) + " registered)");
    shared_->win_mask[ctid].fetch_and(~(1u << slot), std::memory_order_release);
    WinView v;
    v.generation = ++cs.win_generation;
    write_win(shared_->win[ctid][slot], v);
    cs.wins[slot] = {};
    --cs.win_count;
}

uint32_t NicImpl::rkey(int32_t ctid) const {
    CtidState& cs = cs_checked(ctid, "rkey");
    std::lock_guard lk(cs.mtx);
    return cs.rkey;
}

void NicImpl::ensure_tcp() const {
    std::lock_guard lk(mtx_);
    if (!tcp_ && cfg_.mode != WireMode::shm) tcp_ = std::make_unique<TcpWire>(const_cast<NicImpl&>(*this), cfg_);
}

std::vector<std::byte> NicImpl::local_endpoint(int32_t ctid) const {
    (void)cs_checked(ctid, "local_endpoint");
    ensure_tcp();
    mark_exists(ctid);
    Endpoint ep = me_;
    ep.device = host_.device_id();
    ep.vfid = host_.vfid();
    ep.ctid = ctid;
    ep.ip = host_.ip_address();
    ep.mac = host_.mac_address();
    ep.key = key_;
    ep.state_name = host_.shared_state_name();
    ep.nic_name = seg_.name();
    if (tcp_) {
        ep.wire_addr = tcp_->address();
        ep.wire_port = tcp_->port();
    }
    return encode_endpoint(ep);
}

void NicImpl::set_remote_endpoint(int32_t ctid, std::span<const std::byte> bytes) {
    CtidState& cs = cs_checked(ctid, "set_remote_endpoint");
    Endpoint ep = decode_endpoint(bytes);
    if (cfg_.mode == WireMode::shm && !ep.same_host(me_))
        throw_error(Errc::not_supported, "set_remote_endpoint",
                    "COYOTE_SIM_WIRE=shm, but the peer " + ip_to_string(ep.ip) + " (pid " + std::to_string(ep.pid) +
                        ") runs on another host, network namespace or user");
    mark_exists(ctid);
    {
        std::lock_guard lk(mtx_);
        known_by_ip_[ep.ip] = ep;
    }
    std::lock_guard lk(cs.mtx);
    cs.peer = std::move(ep);
    cs.shm_route = nullptr;
}

bool NicImpl::use_tcp(const Endpoint& ep) const {
    if (cfg_.mode == WireMode::tcp) return true;
    if (cfg_.mode == WireMode::shm) return false;
    return !ep.same_host(me_);
}

void NicImpl::record_error(int32_t ctid, uint64_t generation, Error e) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::lock_guard lk(cs.mtx);
    if (cs.generation.load() != generation) return;
    if (!cs.pending) cs.pending.emplace(std::move(e));
    cs.has_pending.store(true, std::memory_order_release);
}

void NicImpl::raise_pending_error(int32_t ctid) {
    CtidState& cs = cs_checked(ctid, "raise_pending_error");
    if (!cs.has_pending.load(std::memory_order_acquire)) return;
    std::optional<Error> e;
    {
        std::lock_guard lk(cs.mtx);
        e.swap(cs.pending);
        cs.has_pending.store(false, std::memory_order_release);
    }
    if (e) throw *e;
}

void NicImpl::on_ctid_unregistered(int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    {
        std::unique_lock bl(bufs_mtx_);
        std::lock_guard lk(cs.mtx);
        cs.generation.fetch_add(1);
        cs.has_ctx = cs.has_conn = false;
        cs.ctx = {};
        cs.conn = {};
        cs.peer.reset();
        cs.shm_route = nullptr;
        cs.pending.reset();
        cs.has_pending.store(false, std::memory_order_release);
        cs.buf_addr = cs.buf_size = 0;
        cs.rkey = 0;
        cs.buf_name.clear();
        ++cs.buf_generation;
        BufView bv;
        bv.generation = cs.buf_generation;
        write_buf(shared_->buf[ctid], bv);
        shared_->win_mask[ctid].store(0, std::memory_order_release);
        for (size_t i = 0; i < k_nic_windows; ++i) {
            if (cs.wins[i].size == 0) continue;
            WinView wv;
            wv.generation = ++cs.win_generation;
            write_win(shared_->win[ctid][i], wv);
            cs.wins[i] = {};
        }
        cs.win_count = 0;
        write_qp(shared_->qp[ctid], QpView{});
    }
    if (tcp_) tcp_->forget_ctid(ctid);
    cs.inflight.store(0);
}

namespace {
std::string peer_label(const Endpoint& ep) {
    return "peer process " + std::to_string(ep.pid) + " (FPGA " + ip_to_string(ep.ip) + ", device " +
           std::to_string(ep.device) + " vFPGA " + std::to_string(ep.vfid) + ")";
}
}  // namespace

void NicImpl::check_alive(ShmPeer& p) {
    if (!p.gone.load(std::memory_order_acquire)) {
        const int64_t now = coarse_now_ns();
        int64_t last = p.last_check_ns.load(std::memory_order_relaxed);
        // One poster per period runs the (slow) check: the one that moves the timestamp.
        if (now - last >= std::chrono::nanoseconds(k_liveness_period).count() &&
            p.last_check_ns.compare_exchange_strong(last, now, std::memory_order_relaxed) &&
            (p.pidfd ? process_exited(p.pidfd) : !process_alive(p.ep.pid, p.ep.start_time)))
            p.gone.store(true, std::memory_order_release);
    }
    if (p.gone.load(std::memory_order_acquire)) throw_error(Errc::peer_gone, "RDMA", peer_label(p.ep) + " is gone");
}

ShmPeer& NicImpl::shm_peer(const Endpoint& ep) {
    std::unique_lock lk(peers_mtx_);
    auto it = peers_.find(ep.key);
    if (it == peers_.end()) {
        const std::string who = peer_label(ep);
        auto p = std::make_unique<ShmPeer>();
        p->ep = ep;
        if (!process_alive(ep.pid, ep.start_time)) throw_error(Errc::peer_gone, "RDMA", who + " is gone");
        p->pidfd = open_process_fd(ep.pid, ep.start_time);
        try {
            p->nic_seg = ShmSegment::open(ep.nic_name);
            p->state_seg = ShmSegment::open(ep.state_name);
        } catch (const Error& e) {
            throw_error(Errc::peer_gone, "RDMA", who + ": cannot map its shared segments (" + e.what() + ")");
        }
        if (p->nic_seg.size() < sizeof(NicShared))
            throw_error(Errc::protocol, "RDMA", who + ": NIC segment " + ep.nic_name + " is too small");
        p->nic = static_cast<NicShared*>(p->nic_seg.get());
        if (p->nic->magic != k_nic_magic || p->nic->version != k_nic_version || p->nic->owner_pid != ep.pid)
            throw_error(Errc::protocol, "RDMA", who + ": NIC segment " + ep.nic_name + " has a bad header");
        if (p->state_seg.size() < sizeof(SharedState))
            throw_error(Errc::protocol, "RDMA", who + ": state segment " + ep.state_name + " is too small");
        p->state = static_cast<SharedState*>(p->state_seg.get());
        if (p->state->magic != k_state_magic)
            throw_error(Errc::protocol, "RDMA", who + ": state segment " + ep.state_name + " has a bad magic");
        p->last_check_ns.store(coarse_now_ns());
        it = peers_.emplace(ep.key, std::move(p)).first;
    }
    ShmPeer& p = *it->second;
    lk.unlock();
    check_alive(p);
    return p;
}

PostStatus NicImpl::post(const Command& cmd) {
    const RdmaOpcode op = opcode_of(cmd.oper);
    const int32_t ctid = cmd.ctid;
    CtidState& cs = cs_checked(ctid, "post");
    const char* const call = op == RdmaOpcode::read    ? "invoke REMOTE_RDMA_READ"
                             : op == RdmaOpcode::write ? "invoke REMOTE_RDMA_WRITE"
                                                       : "invoke REMOTE_RDMA_SEND";
    std::unique_lock post_lk(cs.post_mtx);
    const uint32_t len = cmd.src.len;

    // Fast path: a route resolved by an earlier post and not invalidated since (context, peer and ARP unchanged).
    // The local checks come before the PSN is taken: a post that fails them must not consume one.
    if (ShmPeer* route = cs.shm_route.load(std::memory_order_acquire); route != nullptr && len != 0) {
        check_alive(*route);
        RdmaRequest req;
        req.op = op;
        req.src_ip = host_.ip_address();
        req.vaddr = cmd.dst.addr & 0xFFFFFFFFFFFFULL;
        req.len = len;
        uint64_t generation = 0;
        // The registered buffer is vFPGA memory by construction (getMem): a source inside it needs no TLB lookup.
        bool local_checked = false;
        for (int pass = 0; pass < 2 && route != nullptr; ++pass) {
            if (pass == 1) host_.check_local_range(ctid, cmd.src.addr, len, op == RdmaOpcode::read);
            std::lock_guard lk(cs.mtx);
            // Still the route (a context, connection or ARP write in between sends the post the slow way).
            if (cs.shm_route.load(std::memory_order_relaxed) != route) {
                route = nullptr;
                break;
            }
            if (op == RdmaOpcode::read) check_read_target(cs, ctid, cmd.src.addr, len, call);
            local_checked = pass == 1 || (cs.buf_size != 0 && range_inside(cmd.src.addr, len, cs.buf_addr, cs.buf_size));
            if (!local_checked) continue;
            req.src_qpn = cs.ctx.local_qpn;
            req.dst_qpn = cs.conn.remote_qpn;
            req.rkey = cs.ctx.remote_rkey;
            req.psn = cs.next_psn;
            cs.next_psn = psn_next(cs.next_psn);
            generation = cs.generation.load();
            break;
        }
        if (route != nullptr && local_checked)
            return post_shm(cs, ctid, req, generation, *route, cmd.src.addr, cmd.last);
    }

    // Local state, decoded from the register writes.
    DecodedQpContext ctx;
    DecodedConnContext conn;
    std::optional<Endpoint> own_peer;
    uint64_t route_generation = 0;
    {
        std::lock_guard lk(cs.mtx);
        route_generation = cs.generation.load();
        if (!cs.has_ctx || !cs.has_conn) {
            shared_->counters.local_failures.fetch_add(1, std::memory_order_relaxed);
            throw_error(Errc::invalid_argument, call,
                        "ctid " + std::to_string(ctid) + " has no " + (cs.has_ctx ? "connection" : "QP") +
                            " context (writeQpContext / connectQp / initRDMA was not called)");
        }
        ctx = cs.ctx;
        conn = cs.conn;
        own_peer = cs.peer;
        if (len != 0 && op == RdmaOpcode::read) check_read_target(cs, ctid, cmd.src.addr, len, call);
    }
    const uint32_t remote_ip = conn.remote_ip();
    Endpoint ep;
    {
        std::lock_guard lk(mtx_);
        const auto it = arp_.find(remote_ip);
        if (it == arp_.end()) {
            shared_->counters.local_failures.fetch_add(1, std::memory_order_relaxed);
            throw_error(Errc::invalid_argument, call,
                        "no ARP entry for " + ip_to_string(remote_ip) + " (ctid " + std::to_string(ctid) +
                            "; doArpLookup was not called or the IP belongs to no known endpoint)");
        }
        // Several sim peers may share an IP; the queue pair's own peer wins.
        ep = (own_peer && own_peer->ip == remote_ip) ? *own_peer : it->second;
    }

    auto complete_local = [&](bool read) {
        if (!cmd.last) return;
        SharedState& s = host_.shared_state();
        if (read) {
            wback(s, CmplClass::local_write, ctid).fetch_add(1, std::memory_order_release);
            wback(s, CmplClass::rdma_read, ctid).fetch_add(1, std::memory_order_release);
        } else {
            wback(s, CmplClass::rdma_write, ctid).fetch_add(1, std::memory_order_release);
        }
    };
    if (len == 0) {
        complete_local(op == RdmaOpcode::read);
        return PostStatus::ok;
    }
    host_.check_local_range(ctid, cmd.src.addr, len, op == RdmaOpcode::read);

    RdmaRequest req;
    req.op = op;
    req.src_qpn = ctx.local_qpn;
    req.src_ip = host_.ip_address();
    req.dst_qpn = conn.remote_qpn;
    req.rkey = ctx.remote_rkey;
    req.vaddr = cmd.dst.addr & 0xFFFFFFFFFFFFULL;
    req.len = len;

    if (use_tcp(ep)) {
        if (!tcp_) ensure_tcp();
        if (!tcp_)
            throw_error(Errc::not_supported, call, "the TCP wire is disabled (COYOTE_SIM_WIRE=shm)");
        if (ep.wire_port == 0)
            throw_error(Errc::not_supported, call,
                        "peer " + ip_to_string(ep.ip) + " has no TCP wire (it runs with COYOTE_SIM_WIRE=shm)");
        return tcp_->post(cs, ctid, req, ep, cmd.src.addr, cmd.last);
    }
    ShmPeer& peer = shm_peer(ep);
    {
        // Remember the route unless the queue pair was reconfigured meanwhile.
        std::lock_guard lk(cs.mtx);
        if (cs.generation.load() == route_generation && cs.has_ctx && cs.has_conn && cs.ctx.local_qpn == ctx.local_qpn &&
            cs.conn.remote_qpn == conn.remote_qpn && cs.conn.remote_ip() == remote_ip)
            cs.shm_route = &peer;
    }
    uint64_t generation = 0;
    {
        std::lock_guard lk(cs.mtx);
        req.psn = cs.next_psn;
        cs.next_psn = psn_next(cs.next_psn);
        generation = cs.generation.load();
    }
    return post_shm(cs, ctid, req, generation, peer, cmd.src.addr, cmd.last);
}

void NicImpl::check_read_target(const CtidState& cs, int32_t ctid, uint64_t addr, uint32_t len, const char* call) {
    if (cs.local_target_ok(addr, len)) return;
    throw_error(Errc::invalid_argument, call,
                "local address " + hex(addr, 1) + " + len " + std::to_string(len) +
                    " is in neither the registered buffer nor a window of ctid " + std::to_string(ctid) +
                    " (a READ lands only in registered memory)");
}

bool NicImpl::window_copy(int32_t ctid, uint64_t generation, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                          uint64_t local_addr) {
    const Endpoint& ep = peer.ep;
    const uint64_t remote = v.win.vaddr + v.offset;
    const bool to_remote = req.op != RdmaOpcode::read;
    const int e = cfg_.deny_cma ? EPERM : vm_copy(ep.pid, to_remote, local_addr, remote, req.len);
    if (e == 0) return true;
    const char* fn = to_remote ? "process_vm_writev" : "process_vm_readv";
    switch (e) {
    case ESRCH: {
        peer.gone.store(true, std::memory_order_release);
        throw_error(Errc::peer_gone, "RDMA", peer_label(ep) + " is gone");
    }
    case EFAULT: {
        Verdict f = v;
        f.check = Check::unmapped;
        f.detail = "window memory at " + hex(remote, 1) + " (len " + std::to_string(req.len) + ", window " +
                   hex(v.win.vaddr, 1) + " + len " + std::to_string(v.win.size) +
                   ") is no longer mapped in the target (process " + std::to_string(ep.pid) + ")" +
                   (to_remote ? "" : ", or the local READ target is not writable");
        peer.nic->counters.rejected[static_cast<size_t>(Check::unmapped)].fetch_add(1, std::memory_order_relaxed);
        record_error(ctid, generation,
                     Error(make_error_code(Errc::remote_rejected), opcode_label(req.op),
                           rejection_message(req, ep.ip, f)));
        return false;
    }
    case EPERM:
    case ENOSYS:
        throw_error(Errc::not_supported, opcode_label(req.op),
                    std::string(fn) + " on " + peer_label(ep) + " failed (" + std::strerror(e) +
                        "): cross-process memory access is not permitted here (ptrace access check: Yama "
                        "ptrace_scope, seccomp or credentials), and the shm wire reaches remote-access windows that "
                        "way; use COYOTE_SIM_WIRE=tcp");
    default:
        throw Error(std::error_code(e, std::generic_category()), fn,
                    std::string(opcode_label(req.op)) + " on window memory at " + hex(remote, 1) + " of " +
                        peer_label(ep));
    }
}

PostStatus NicImpl::post_shm(CtidState& cs, int32_t ctid, const RdmaRequest& req, uint64_t generation, ShmPeer& peer,
                             uint64_t local_addr, bool last) {
    const Endpoint& ep = peer.ep;
    const Verdict v = validate_and_claim(*peer.nic, req, &cs.slots);
    if (v.check != Check::ok) {
        record_error(ctid, generation, Error(make_error_code(Errc::remote_rejected), opcode_label(req.op),
                                             rejection_message(req, ep.ip, v)));
        return PostStatus::ok;
    }
    SharedState& mine = host_.shared_state();
    if (v.in_window) {
        // Private memory of the target: one copy by the kernel, in posting order (synchronous).
        if (!window_copy(ctid, generation, req, peer, v, local_addr)) return PostStatus::ok;
        if (last) {
            if (req.op == RdmaOpcode::read) {
                wback(mine, CmplClass::local_write, ctid).fetch_add(1, std::memory_order_release);
                wback(mine, CmplClass::rdma_read, ctid).fetch_add(1, std::memory_order_release);
            } else {
                wback(*peer.state, CmplClass::local_write, v.ctid).fetch_add(1, std::memory_order_release);
                wback(mine, CmplClass::rdma_write, ctid).fetch_add(1, std::memory_order_release);
            }
        }
        return PostStatus::ok;
    }
    CtidState::MappedTarget& mt = cs.mapped;
    if (mt.peer != &peer || mt.ctid != v.ctid || mt.generation != v.buf.generation || !mt.seg) {
        std::lock_guard plk(peer.mtx);
        auto& slot = peer.bufs[v.ctid];
        if (!slot.second || slot.first != v.buf.generation) {
            // The name is read only here (validation copies no strings); a re-registration since the validation
            // shows as a new generation.
            const BufView named = read_buf(peer.nic->buf[v.ctid]);
            if (!named.valid || named.generation != v.buf.generation)
                throw_error(Errc::peer_gone, opcode_label(req.op),
                            "the registered buffer of " + ip_to_string(ep.ip) + " ctid " + std::to_string(v.ctid) +
                                " was withdrawn or replaced while the request was applied");
            std::shared_ptr<ShmSegment> m;
            try {
                m = std::make_shared<ShmSegment>(ShmSegment::open(named.name));
            } catch (const Error& e) {
                throw_error(Errc::peer_gone, opcode_label(req.op),
                            "cannot map the registered buffer " + named.name + " of " + ip_to_string(ep.ip) + ": " +
                                e.what());
            }
            if (m->size() < v.buf.size)
                throw_error(Errc::protocol, opcode_label(req.op),
                            "registered buffer " + named.name + " of " + ip_to_string(ep.ip) + " maps " +
                                std::to_string(m->size()) + " bytes, less than its published size " +
                                std::to_string(v.buf.size));
            slot = {v.buf.generation, std::move(m)};
        }
        mt = {&peer, v.ctid, v.buf.generation, slot.second};
    }
    std::byte* remote = mt.seg->bytes() + v.offset;
    auto* local = reinterpret_cast<std::byte*>(local_addr);
    if (req.op == RdmaOpcode::read) {
        std::memcpy(local, remote, req.len);
        if (last) {
            wback(mine, CmplClass::local_write, ctid).fetch_add(1, std::memory_order_release);
            wback(mine, CmplClass::rdma_read, ctid).fetch_add(1, std::memory_order_release);
        }
    } else {
        std::memcpy(remote, local, req.len);
        if (last) {
            wback(*peer.state, CmplClass::local_write, v.ctid).fetch_add(1, std::memory_order_release);
            wback(mine, CmplClass::rdma_write, ctid).fetch_add(1, std::memory_order_release);
        }
    }
    return PostStatus::ok;
}

std::string NicImpl::debug_string(int32_t ctid) const {
    CtidState& cs = cs_checked(ctid, "debug_string");
    std::ostringstream os;
    {
        std::lock_guard lk(cs.mtx);
        os << "  RDMA ctx : " << (cs.has_ctx ? "written" : "not written") << ", lqpn " << hex(cs.ctx.local_qpn)
           << " lpsn " << hex(cs.ctx.local_psn) << " rpsn " << hex(cs.ctx.remote_psn) << " rkey "
           << hex(cs.ctx.remote_rkey, 8) << " rvaddr " << hex(cs.ctx.remote_vaddr, 12) << "\n";
        os << "  RDMA conn: " << (cs.has_conn ? "written" : "not written") << ", rqpn " << hex(cs.conn.remote_qpn)
           << " rip " << ip_to_string(cs.has_conn ? cs.conn.remote_ip() : 0) << " port " << cs.conn.port
           << ", next psn " << hex(cs.next_psn) << ", expected psn "
           << hex(shared_->qp[ctid].expected_psn.load()) << ", in flight " << cs.inflight.load() << "\n";
        os << "  RDMA buf : rkey " << hex(cs.rkey, 8) << " size " << cs.buf_size << " shm "
           << (cs.buf_name.empty() ? "-" : cs.buf_name) << ", windows " << cs.win_count << ", peer "
           << (cs.peer ? ip_to_string(cs.peer->ip) + " pid " + std::to_string(cs.peer->pid) +
                             (use_tcp(*cs.peer) ? " (tcp wire)" : " (shm wire)")
                       : std::string("-"))
           << "\n";
    }
    const NicCounters& c = shared_->counters;
    os << "  NIC      : accepted " << c.accepted.load() << ", rejected";
    for (size_t i = 1; i < static_cast<size_t>(Check::count); ++i)
        os << " " << check_name(static_cast<Check>(i)) << "=" << c.rejected[i].load();
    os << ", ctx_rejected " << c.ctx_rejected.load() << ", arp_misses " << c.arp_misses.load() << ", bad_keys "
       << c.bad_key_conns.load() << ", bad_frames " << c.bad_frames.load() << ", local_failures "
       << c.local_failures.load() << "\n";
    return os.str();
}

// ---- TcpWire -----------------------------------------------------------------------------------

TcpWire::TcpWire(NicImpl& nic, const WireConfig& cfg) : nic_(nic), cfg_(cfg) {
    const std::string call = "sim RDMA wire";
    uint32_t bind_ip = 0;
    if (!cfg.addr.empty()) {
        in_addr a{};
        if (::inet_pton(AF_INET, cfg.addr.c_str(), &a) != 1)
            throw_error(Errc::invalid_argument, "COYOTE_SIM_WIRE_ADDR",
                        "'" + cfg.addr + "' is not an IPv4 address");
        bind_ip = ntohl(a.s_addr);
    } else {
        bind_ip = default_wire_address();
    }
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

void TcpWire::kill(const std::shared_ptr<Conn>& c, const std::string& why) noexcept {
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
                                        " qpn " + hex(p.req.dst_qpn) + " failed: connection to " + c->name +
                                        " lost: " + why));
        } catch (...) {
        }
        CtidState& cs = nic_.ctid_state(p.ctid);
        if (cs.generation.load() == p.generation) cs.inflight.fetch_sub(1);
    }
    wake();
}

std::shared_ptr<Conn> TcpWire::connect_to(const Endpoint& ep) {
    const std::string where = ip_to_string(ep.wire_addr) + ":" + std::to_string(ep.wire_port);
    const std::string who = "peer " + ip_to_string(ep.ip) + " (pid " + std::to_string(ep.pid) + ", wire " + where + ")";
    {
        std::lock_guard lk(conns_mtx_);
        if (auto it = by_key_.find(ep.key); it != by_key_.end()) return it->second;
        if (auto it = dead_keys_.find(ep.key); it != dead_keys_.end())
            throw_error(Errc::peer_gone, "RDMA", who + ": " + it->second);
    }
    const auto deadline = Clock::now() + std::min<std::chrono::milliseconds>(cfg_.io_timeout, 10000ms);
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
    const int one = 1;
    (void)::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    FrameHeader h;
    h.type = FrameType::hello;
    h.payload_len = 16;
    std::array<std::byte, 16> keys{};
    const uint64_t k[2] = {ep.key, nic_.key()};
    for (size_t i = 0; i < 16; ++i) keys[i] = static_cast<std::byte>((k[i / 8] >> (8 * (i % 8))) & 0xFF);
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
    auto c = std::make_shared<Conn>();
    c->fd = std::move(s);
    c->name = where;
    c->peer_key = ep.key;
    {
        std::lock_guard lk(conns_mtx_);
        // Keep polling the new connection even when another one to this peer won the race (another poster, or
        // the peer connecting to us at the same time): closing it would look like a dead peer on the other side.
        conns_.push_back(c);
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
    std::shared_ptr<Conn> c = connect_to(ep);
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
        req.psn = cs.next_psn;
        cs.next_psn = psn_next(cs.next_psn);
        p.generation = cs.generation.load();
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
    FrameHeader h;
    h.type = req.op == RdmaOpcode::read ? FrameType::read_req
             : req.op == RdmaOpcode::send ? FrameType::send
                                          : FrameType::write;
    h.last = last;
    h.psn = req.psn;
    h.req_id = id;
    h.src_qpn = req.src_qpn;
    h.dst_qpn = req.dst_qpn;
    h.src_ip = req.src_ip;
    h.rkey = req.rkey;
    h.vaddr = req.vaddr;
    h.len = req.len;
    h.payload_len = req.op == RdmaOpcode::read ? 0 : req.len;
    const auto hb = encode_frame(h);
    const auto deadline = Clock::now() + cfg_.io_timeout;
    std::string err = write_full(c->fd.get(), hb.data(), hb.size(), deadline);
    if (err.empty() && h.payload_len > 0)
        err = write_full(c->fd.get(), reinterpret_cast<const void*>(local_addr), h.payload_len, deadline);
    if (!err.empty()) kill(c, err); // fails this request too; the error surfaces on the next call
    return PostStatus::ok;
}

void TcpWire::respond(Response r) {
    {
        std::lock_guard lk(resp_mtx_);
        responses_.push_back(std::move(r));
    }
    resp_cv_.notify_one();
}

void TcpWire::responder() {
    for (;;) {
        Response r;
        {
            std::unique_lock lk(resp_mtx_);
            resp_cv_.wait(lk, [&] { return stop_.load() || !responses_.empty(); });
            if (stop_.load()) return;
            r = std::move(responses_.front());
            responses_.pop_front();
        }
        {
            std::lock_guard lk(r.conn->mtx);
            if (r.conn->dead) continue;
        }
        const auto deadline = Clock::now() + cfg_.io_timeout;
        std::string err;
        std::lock_guard wl(r.conn->wmtx);
        if (r.h.type == FrameType::read_resp) {
            // Send from the registered buffer or window, unless it went away since the request was validated.
            std::shared_lock bl(nic_.buffers_mutex());
            Check gone = Check::ok;
            std::string why;
            if (r.in_window) {
                const WinView now = read_win(nic_.shared().win[r.ctid][r.window]);
                if (!now.valid || now.generation != r.win_generation) {
                    gone = Check::out_of_bounds;
                    why = "the window holding " + hex(r.data_addr, 1) + " was withdrawn (unregisterWindow)";
                } else if (!still_mapped_here(r.data_addr, r.h.payload_len)) {
                    gone = Check::unmapped;
                    why = "window memory at " + hex(r.data_addr, 1) + " (len " + std::to_string(r.h.payload_len) +
                          ") is no longer mapped in the target";
                }
            } else {
                const BufView now = read_buf(nic_.shared().buf[r.ctid]);
                if (!now.valid || now.generation != r.buf_generation) {
                    gone = Check::no_buffer;
                    why = "the registered buffer was released";
                }
            }
            if (gone != Check::ok) {
                nic_.shared().counters.rejected[static_cast<size_t>(gone)].fetch_add(1, std::memory_order_relaxed);
                r.h.type = FrameType::nak;
                r.h.check = static_cast<uint32_t>(gone);
                r.text = "RDMA READ rejected by " + ip_to_string(nic_.ip()) + " qpn " + hex(r.h.dst_qpn) + ": " + why;
                r.h.payload_len = static_cast<uint32_t>(r.text.size());
                const auto hb = encode_frame(r.h);
                err = write_full(r.conn->fd.get(), hb.data(), hb.size(), deadline);
                if (err.empty()) err = write_full(r.conn->fd.get(), r.text.data(), r.text.size(), deadline);
            } else {
                const auto hb = encode_frame(r.h);
                err = write_full(r.conn->fd.get(), hb.data(), hb.size(), deadline);
                if (err.empty())
                    err = write_full(r.conn->fd.get(), reinterpret_cast<const void*>(r.data_addr), r.h.payload_len,
                                     deadline);
            }
        } else {
            r.h.payload_len = static_cast<uint32_t>(r.text.size());
            const auto hb = encode_frame(r.h);
            err = write_full(r.conn->fd.get(), hb.data(), hb.size(), deadline);
            if (err.empty() && !r.text.empty())
                err = write_full(r.conn->fd.get(), r.text.data(), r.text.size(), deadline);
        }
        if (!err.empty()) kill(r.conn, err);
    }
}

void TcpWire::accept_one() {
    sockaddr_in sa{};
    socklen_t len = sizeof(sa);
    Fd s(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!s) return;
    const int one = 1;
    (void)::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
    if (by_key_.find(k[1]) == by_key_.end()) by_key_[k[1]] = c;
    dead_keys_.erase(k[1]);
}

bool TcpWire::handle_frame(const std::shared_ptr<Conn>& c) {
    const auto deadline = Clock::now() + cfg_.io_timeout;
    const int fd = c->fd.get();
    std::array<std::byte, k_frame_header_size> hb{};
    std::string err = read_full(fd, hb.data(), hb.size(), deadline);
    if (!err.empty()) {
        kill(c, err);
        return false;
    }
    FrameHeader h;
    if (!decode_frame(hb, h, err)) {
        nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        kill(c, "malformed frame: " + err);
        return false;
    }
    switch (h.type) {
    case FrameType::write:
    case FrameType::send:
    case FrameType::read_req: {
        RdmaRequest r;
        r.op = h.type == FrameType::read_req ? RdmaOpcode::read
               : h.type == FrameType::send   ? RdmaOpcode::send
                                             : RdmaOpcode::write;
        r.src_qpn = h.src_qpn;
        r.src_ip = h.src_ip;
        r.dst_qpn = h.dst_qpn;
        r.psn = h.psn;
        r.rkey = h.rkey;
        r.vaddr = h.vaddr;
        r.len = h.len;
        const Verdict v = validate_and_claim(nic_.shared(), r);
        Response resp;
        resp.conn = c;
        resp.h.req_id = h.req_id;
        resp.h.dst_qpn = h.dst_qpn;
        if (v.check != Check::ok) {
            if (h.payload_len > 0) err = drain(fd, h.payload_len, deadline);
            resp.h.type = FrameType::nak;
            resp.h.check = static_cast<uint32_t>(v.check);
            resp.text = rejection_message(r, nic_.ip(), v).substr(0, k_max_nak_text);
        } else if (r.op == RdmaOpcode::read) {
            resp.h.type = FrameType::read_resp;
            resp.h.payload_len = r.len;
            resp.ctid = v.ctid;
            resp.buf_generation = v.buf.generation;
            resp.in_window = v.in_window;
            resp.window = v.window;
            resp.win_generation = v.win.generation;
            resp.data_addr = v.in_window ? v.win.vaddr + v.offset : v.buf.vaddr + v.offset;
        } else if (v.in_window) {
            // Private memory of this process: received straight into it; unregisterWindow waits for this.
            std::shared_lock bl(nic_.buffers_mutex());
            const WinView now = read_win(nic_.shared().win[v.ctid][v.window]);
            const uint64_t addr = v.win.vaddr + v.offset;
            auto nak = [&](Check failed, const std::string& why) {
                nic_.shared().counters.rejected[static_cast<size_t>(failed)].fetch_add(1, std::memory_order_relaxed);
                resp.h.type = FrameType::nak;
                resp.h.check = static_cast<uint32_t>(failed);
                resp.text = std::string(opcode_label(r.op)) + " rejected by " + ip_to_string(nic_.ip()) + " qpn " +
                            hex(r.dst_qpn) + ": " + why;
            };
            if (!now.valid || now.generation != v.win.generation) {
                err = drain(fd, h.payload_len, deadline);
                nak(Check::out_of_bounds, "the window holding " + hex(addr, 1) + " was withdrawn (unregisterWindow)");
            } else {
                size_t fault_at = SIZE_MAX;
                err = read_full(fd, reinterpret_cast<void*>(addr), r.len, deadline, &fault_at);
                if (err.empty() && fault_at != SIZE_MAX) {
                    err = drain(fd, r.len - fault_at, deadline);
                    nak(Check::unmapped, "window memory at " + hex(addr, 1) + " (len " + std::to_string(r.len) +
                                             ") is no longer mapped in the target");
                } else {
                    if (err.empty() && h.last)
                        wback(nic_.state(), CmplClass::local_write, v.ctid).fetch_add(1, std::memory_order_release);
                    resp.h.type = FrameType::ack;
                }
            }
        } else {
            std::shared_lock bl(nic_.buffers_mutex());
            const BufView now = read_buf(nic_.shared().buf[v.ctid]);
            if (!now.valid || now.generation != v.buf.generation) {
                err = drain(fd, h.payload_len, deadline);
                resp.h.type = FrameType::nak;
                resp.h.check = static_cast<uint32_t>(Check::no_buffer);
                resp.text = std::string(opcode_label(r.op)) + " rejected by " + ip_to_string(nic_.ip()) + " qpn " +
                            hex(r.dst_qpn) + ": the registered buffer was released";
            } else {
                err = read_full(fd, reinterpret_cast<void*>(v.buf.vaddr + v.offset), r.len, deadline);
                if (err.empty() && h.last)
                    wback(nic_.state(), CmplClass::local_write, v.ctid).fetch_add(1, std::memory_order_release);
                resp.h.type = FrameType::ack;
            }
        }
        if (!err.empty()) {
            kill(c, err);
            return false;
        }
        respond(std::move(resp));
        return true;
    }
    case FrameType::ack:
    case FrameType::nak:
    case FrameType::read_resp: {
        Pending p;
        bool found = false;
        {
            std::lock_guard lk(c->mtx);
            auto it = c->pending.find(h.req_id);
            if (it != c->pending.end()) {
                p = it->second;
                found = true;
                c->pending.erase(it);
            }
        }
        if (!found) {
            nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
            kill(c, "response for unknown request " + std::to_string(h.req_id));
            return false;
        }
        CtidState& cs = nic_.ctid_state(p.ctid);
        const bool current = cs.generation.load() == p.generation;
        if (h.type == FrameType::nak) {
            std::string text(h.payload_len, '\0');
            err = read_full(fd, text.data(), text.size(), deadline);
            if (err.empty() && current)
                nic_.record_error(p.ctid, p.generation,
                                  Error(make_error_code(Errc::remote_rejected), opcode_label(p.req.op), text));
        } else if (h.type == FrameType::ack) {
            if (p.req.op == RdmaOpcode::read) {
                err = "ACK for a READ request";
            } else if (current && p.last) {
                wback(nic_.state(), CmplClass::rdma_write, p.ctid).fetch_add(1, std::memory_order_release);
            }
        } else {
            if (p.req.op != RdmaOpcode::read || h.payload_len != p.req.len) {
                err = "READ response of " + std::to_string(h.payload_len) + " bytes for a request of " +
                      std::to_string(p.req.len);
            } else {
                // Into the local registered buffer or a local window, if it is still registered.
                std::shared_lock bl(nic_.buffers_mutex());
                const BufView mine = read_buf(nic_.shared().buf[p.ctid]);
                const bool in_buf = current && mine.valid && range_inside(p.local_addr, p.req.len, mine.vaddr, mine.size);
                const bool in_win =
                    current && !in_buf && find_window(nic_.shared(), p.ctid, p.local_addr, p.req.len).has_value();
                auto fail = [&](Errc code, const std::string& why) {
                    nic_.record_error(p.ctid, p.generation,
                                      Error(make_error_code(code), opcode_label(p.req.op),
                                            "RDMA READ response from " + ip_to_string(p.target_ip) + " qpn " +
                                                hex(p.req.dst_qpn) + " dropped: " + why));
                };
                if (in_buf || in_win) {
                    size_t fault_at = SIZE_MAX;
                    err = read_full(fd, reinterpret_cast<void*>(p.local_addr), p.req.len, deadline,
                                    in_win ? &fault_at : nullptr);
                    if (err.empty() && fault_at != SIZE_MAX) {
                        err = drain(fd, p.req.len - fault_at, deadline);
                        fail(Errc::not_mapped, "the local window memory at " + hex(p.local_addr, 1) + " (len " +
                                                   std::to_string(p.req.len) + ") is no longer writable");
                    } else if (err.empty() && p.last) {
                        wback(nic_.state(), CmplClass::local_write, p.ctid).fetch_add(1, std::memory_order_release);
                        wback(nic_.state(), CmplClass::rdma_read, p.ctid).fetch_add(1, std::memory_order_release);
                    }
                } else {
                    err = drain(fd, p.req.len, deadline);
                    if (current)
                        fail(Errc::not_mapped, "the local target " + hex(p.local_addr, 1) + " + len " +
                                                   std::to_string(p.req.len) +
                                                   " is no longer in the registered buffer or a window of ctid " +
                                                   std::to_string(p.ctid));
                }
            }
        }
        if (current) cs.inflight.fetch_sub(1);
        if (!err.empty()) {
            kill(c, err);
            return false;
        }
        return true;
    }
    case FrameType::hello:
    case FrameType::hello_ack:
        nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        kill(c, "unexpected handshake frame on an established connection");
        return false;
    }
    return true;
}

void TcpWire::engine() {
    std::vector<pollfd> fds;
    std::vector<std::shared_ptr<Conn>> polled;
    while (!stop_.load()) {
        {
            std::lock_guard lk(conns_mtx_);
            // Drop dead connections from the poll set (their fd closes with the last reference).
            std::erase_if(conns_, [](const std::shared_ptr<Conn>& c) {
                std::lock_guard clk(c->mtx);
                return c->dead;
            });
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
        for (size_t i = 0; i < polled.size(); ++i) {
            if (fds[2 + i].revents == 0) continue;
            {
                std::lock_guard lk(polled[i]->mtx);
                if (polled[i]->dead) continue;
            }
            (void)handle_frame(polled[i]);
        }
    }
}

}  // namespace

std::unique_ptr<Nic> make_nic(NicHost& host) { return std::make_unique<NicImpl>(host); }

}  // namespace coyote::detail::sim
