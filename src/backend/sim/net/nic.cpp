// coyote-mpi sim backend: the emulated RoCE NIC of a sim vFPGA: its lifecycle, endpoints and errors.
//
// Queue-pair state comes only from the register writes (RDMA_CTX / RDMA_CONN / NET_ARP, both layouts:
// nic_registers.cpp). Two wires carry the requests (nic_post.cpp picks one):
//  - shm (same host, shm_wire.cpp): the initiator maps the target's published NIC state and registered buffer,
//    validates the request against that state and copies once (into / out of a remote-access window, which is
//    private memory of the target, with process_vm_writev / process_vm_readv);
//  - tcp (different hosts, or COYOTE_SIM_WIRE=tcp: tcp/): framed messages to the target's wire engine,
//    which validates with the same function, applies and acknowledges.
// Windows (registerWindow, nic_memory.cpp) are published per ctid beside the registered buffer. A request racing
// with unregisterWindow may be accepted just before the withdrawal and then still land (as with RDMA memory
// deregistration); on the tcp wire unregisterWindow waits for a request being applied.
#include "backend/sim/net/nic.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <sstream>

#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/process_memory.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace net {

NicImpl::NicImpl(NicHost& host)
    : host_(host), cfg_(wire_config_from_env()),
      watch_(host.device_id(), &tap_, &NicImpl::wake_host, &host) {
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
    // The pull lines: zero bytes of the fresh state segment are their empty state; constructed before any peer
    // learns of this NIC.
    static_assert(k_state_net_area_size >= N_CTID_MAX * sizeof(PullLine), "the net area holds the pull lines");
    SharedState& st = host.shared_state();
    auto* area = reinterpret_cast<std::byte*>(&st) + st.net_offset;
    for (int32_t c = 0; c < N_CTID_MAX; ++c) new (area + static_cast<size_t>(c) * sizeof(PullLine)) PullLine();
    pulls_ = reinterpret_cast<PullLine*>(area);
    sniffer::attach_nic(host.device_id(), &shared_->sniff);
}

NicImpl::~NicImpl() {
    sniffer::detach_nic(host_.device_id(), &shared_->sniff);
    tcp_.reset();
    flush_deferred(); // the targets count them before their mappings go
    std::lock_guard lk(peers_mtx_);
    peers_.clear();
}

CtidState& NicImpl::cs_checked(int32_t ctid, const char* call) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, call, "ctid " + std::to_string(ctid) + " out of range");
    return ctids_[static_cast<size_t>(ctid)];
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
        // The listener is bound (port reserved); it opens now when every peer uses TCP, else when a peer that
        // needs it is set (set_remote_endpoint).
        if (cfg_.mode == WireMode::tcp) tcp_->open();
        ep.wire_addr = tcp_->address();
        ep.wire_port = tcp_->port();
        ep.key = tcp_->issue_key(ctid); // one key per exchange
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
    if (use_tcp(ep)) {
        ensure_tcp();
        if (tcp_) tcp_->open();
    } else {
        (void)allow_peer_access(ep.pid); // the peer copies into our windows with process_vm_writev
    }
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

void NicImpl::progress() noexcept {
    // wire_live_ was set after tcp_ (progress_flag): the pointer is stable from then on.
    if (wire_live_.load(std::memory_order_acquire)) tcp_->progress();
}

void NicImpl::on_ctid_unregistered(int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    flush_deferred(cs);
    {
        std::unique_lock bl(bufs_mtx_);
        std::lock_guard lk(cs.mtx);
        cs.inflight.reset(cs.generation.fetch_add(1) + 1); // answers to the old requests count for nothing now
        cs.has_ctx = cs.has_conn = false;
        cs.ctx = {};
        cs.conn = {};
        cs.peer.reset();
        cs.shm_route = nullptr;
        cs.pending.reset();
        cs.has_pending.store(false, std::memory_order_release);
        withdraw_buffer(ctid, cs);
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
}

std::string NicImpl::debug_string(int32_t ctid) const {
    CtidState& cs = cs_checked(ctid, "debug_string");
    std::ostringstream os;
    {
        std::lock_guard lk(cs.mtx);
        os << "  RDMA ctx : " << (cs.has_ctx ? "written" : "not written") << ", lqpn " << hex(cs.ctx.local_qpn, 6)
           << " lpsn " << hex(cs.ctx.local_psn, 6) << " rpsn " << hex(cs.ctx.remote_psn, 6) << " rkey "
           << hex(cs.ctx.remote_rkey, 8) << " rvaddr " << hex(cs.ctx.remote_vaddr, 12) << "\n";
        os << "  RDMA conn: " << (cs.has_conn ? "written" : "not written") << ", rqpn " << hex(cs.conn.remote_qpn, 6)
           << " rip " << ip_to_string(cs.has_conn ? cs.conn.remote_ip() : 0) << " port " << cs.conn.port
           << ", next psn " << hex(cs.next_psn, 6) << ", expected psn "
           << hex(shared_->qp[ctid].expected_psn.load(), 6) << ", in flight " << cs.inflight.count() << "\n";
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
       << c.local_failures.load() << ", acks_sent " << c.acks_sent.load() << " (coalescing "
       << c.acks_coalesced.load() << " more), wire conns " << c.conns_adopted.load() << " (threads ended "
       << c.conn_threads_ended.load() << ")\n";
    os << "  pulls    : pulled " << c.pulled.load() << ", refused " << c.pull_refused.load() << "; offers taken "
       << c.pull_offers_taken.load() << ", taken back " << c.pull_taken_back.load() << "\n";
    return os.str();
}

}  // namespace net

std::unique_ptr<Nic> make_nic(NicHost& host) { return std::make_unique<net::NicImpl>(host); }

}  // namespace coyote::detail::sim
