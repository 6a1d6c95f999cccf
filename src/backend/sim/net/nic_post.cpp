// coyote-mpi sim backend: posting an RDMA command: local checks, PSN, route (ARP, wire choice) and the
// completions of a zero-length request. The shm fast path reuses the route an earlier post resolved.
#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

namespace {

RdmaOpcode opcode_of(CoyoteOper oper) {
    switch (oper) {
    case CoyoteOper::REMOTE_RDMA_READ: return RdmaOpcode::read;
    case CoyoteOper::REMOTE_RDMA_WRITE: return RdmaOpcode::write;
    case CoyoteOper::REMOTE_RDMA_SEND: return RdmaOpcode::send;
    default: break;
    }
    throw_error(Errc::invalid_argument, "post", "the NIC takes REMOTE_RDMA_* commands only");
}

const char* call_name(RdmaOpcode op) noexcept {
    return op == RdmaOpcode::read    ? "invoke REMOTE_RDMA_READ"
           : op == RdmaOpcode::write ? "invoke REMOTE_RDMA_WRITE"
                                     : "invoke REMOTE_RDMA_SEND";
}

/// The request of `cmd` as far as the command tells it (no queue pair fields, no PSN).
RdmaRequest request_of(const Command& cmd, RdmaOpcode op, uint32_t src_ip) noexcept {
    RdmaRequest req;
    req.op = op;
    req.src_ip = src_ip;
    req.vaddr = cmd.dst.addr & 0xFFFFFFFFFFFFULL;
    req.len = cmd.src.len;
    return req;
}

}  // namespace

PostStatus NicImpl::post(const Command& cmd) {
    const RdmaOpcode op = opcode_of(cmd.oper);
    CtidState& cs = cs_checked(cmd.ctid, "post");
    // A WRITE that may be offered (large enough, and the first since a poll: offer_write) goes where this ctid
    // offered the last one (shm_pull.cpp): that pull line's transfers from the target's core start now, beside the
    // checks below. Other WRITEs leave the line on the target's core, which polls it.
    if (op == RdmaOpcode::write && cfg_.pulls(cmd.src.len) && cs.polled.load(std::memory_order_relaxed))
        if (const PullLine* line = cs.pull_line.load(std::memory_order_relaxed); line != nullptr)
            pull_prefetch_offer(*line);
    const char* const call = call_name(op);
    std::unique_lock post_lk(cs.post_mtx);
    // Fast path: a route resolved by an earlier post and not invalidated since (context, peer and ARP unchanged).
    if (ShmPeer* route = cs.shm_route.load(std::memory_order_acquire); route != nullptr && cmd.src.len != 0)
        if (const std::optional<PostStatus> done = post_on_route(cs, cmd, op, call, route)) return *done;
    return post_resolving(cs, cmd, op, call);
}

std::optional<PostStatus> NicImpl::post_on_route(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call,
                                                 ShmPeer* route) {
    // The local checks come before the PSN is taken: a post that fails them must not consume one.
    const int32_t ctid = cmd.ctid;
    const uint32_t len = cmd.src.len;
    const int64_t now = check_alive(*route);
    RdmaRequest req = request_of(cmd, op, host_.ip_address());
    uint64_t generation = 0;
    // The registered buffer is vFPGA memory by construction (getMem): a source inside it needs no TLB lookup.
    for (int pass = 0; pass < 2; ++pass) {
        if (pass == 1) host_.check_local_range(ctid, cmd.src.addr, len, op == RdmaOpcode::read);
        std::lock_guard lk(cs.mtx);
        // Still the route (a context, connection or ARP write in between sends the post the slow way).
        if (cs.shm_route.load(std::memory_order_relaxed) != route) return std::nullopt;
        if (op == RdmaOpcode::read) check_read_target(cs, ctid, cmd.src.addr, len, call);
        if (pass == 0 && !(cs.buf_size != 0 && range_inside(cmd.src.addr, len, cs.buf_addr, cs.buf_size))) continue;
        req.src_qpn = cs.ctx.local_qpn;
        req.dst_qpn = cs.conn.remote_qpn;
        req.rkey = cs.ctx.remote_rkey;
        generation = cs.claim_psn(req);
        break;
    }
    return post_shm(cs, ctid, req, generation, *route, cmd.src.addr, cmd.last, now);
}

PostStatus NicImpl::post_resolving(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call) {
    const int32_t ctid = cmd.ctid;
    const uint32_t len = cmd.src.len;
    const QpSnapshot qp = snapshot_qp(cs, cmd, op, call);
    const Endpoint ep = arp_route(qp.conn.remote_ip(), qp.own_peer, ctid, call);
    settle_offers(cs); // WRITEs this ctid offered over the shm wire land first
    if (len == 0) {
        // Nothing to move: complete locally.
        if (cmd.last) {
            SharedState& s = host_.shared_state();
            if (op == RdmaOpcode::read)
                complete_read(s, ctid);
            else
                bump_wback(s, CmplClass::rdma_write, ctid);
        }
        return PostStatus::ok;
    }
    host_.check_local_range(ctid, cmd.src.addr, len, op == RdmaOpcode::read);
    RdmaRequest req = request_of(cmd, op, host_.ip_address());
    req.src_qpn = qp.ctx.local_qpn;
    req.dst_qpn = qp.conn.remote_qpn;
    req.rkey = qp.ctx.remote_rkey;
    if (use_tcp(ep)) return post_tcp(cs, cmd, req, ep, call);
    ShmPeer& peer = shm_peer(ep);
    remember_route(cs, qp, peer);
    uint64_t generation = 0;
    {
        std::lock_guard lk(cs.mtx);
        generation = cs.claim_psn(req);
    }
    return post_shm(cs, ctid, req, generation, peer, cmd.src.addr, cmd.last, coarse_now_ns());
}

NicImpl::QpSnapshot NicImpl::snapshot_qp(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call) {
    const int32_t ctid = cmd.ctid;
    QpSnapshot qp;
    std::lock_guard lk(cs.mtx);
    qp.generation = cs.generation.load();
    if (!cs.has_ctx || !cs.has_conn) {
        shared_->counters.local_failures.fetch_add(1, std::memory_order_relaxed);
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " has no " + (cs.has_ctx ? "connection" : "QP") +
                        " context (writeQpContext / connectQp / initRDMA was not called)");
    }
    qp.ctx = cs.ctx;
    qp.conn = cs.conn;
    qp.own_peer = cs.peer;
    if (cmd.src.len != 0 && op == RdmaOpcode::read) check_read_target(cs, ctid, cmd.src.addr, cmd.src.len, call);
    return qp;
}

Endpoint NicImpl::arp_route(uint32_t remote_ip, const std::optional<Endpoint>& own_peer, int32_t ctid,
                            const char* call) {
    std::lock_guard lk(mtx_);
    const auto it = arp_.find(remote_ip);
    if (it == arp_.end()) {
        shared_->counters.local_failures.fetch_add(1, std::memory_order_relaxed);
        throw_error(Errc::invalid_argument, call,
                    "no ARP entry for " + ip_to_string(remote_ip) + " (ctid " + std::to_string(ctid) +
                        "; doArpLookup was not called or the IP belongs to no known endpoint)");
    }
    // Several sim peers may share an IP; the queue pair's own peer wins.
    return (own_peer && own_peer->ip == remote_ip) ? *own_peer : it->second;
}

PostStatus NicImpl::post_tcp(CtidState& cs, const Command& cmd, const RdmaRequest& req, const Endpoint& ep,
                             const char* call) {
    if (!tcp_) ensure_tcp();
    if (!tcp_) throw_error(Errc::not_supported, call, "the TCP wire is disabled (COYOTE_SIM_WIRE=shm)");
    if (ep.wire_port == 0)
        throw_error(Errc::not_supported, call,
                    "peer " + ip_to_string(ep.ip) + " has no TCP wire (it runs with COYOTE_SIM_WIRE=shm)");
    return tcp_->post(cs, cmd.ctid, req, ep, cmd.src.addr, cmd.last);
}

void NicImpl::remember_route(CtidState& cs, const QpSnapshot& qp, ShmPeer& peer) {
    std::lock_guard lk(cs.mtx);
    if (cs.generation.load() == qp.generation && cs.has_ctx && cs.has_conn && cs.ctx.local_qpn == qp.ctx.local_qpn &&
        cs.conn.remote_qpn == qp.conn.remote_qpn && cs.conn.remote_ip() == qp.conn.remote_ip())
        cs.shm_route = &peer;
}

void NicImpl::check_read_target(const CtidState& cs, int32_t ctid, uint64_t addr, uint32_t len, const char* call) {
    if (cs.local_target_ok(addr, len)) return;
    throw_error(Errc::invalid_argument, call,
                "local address " + hex(addr, 1) + " + len " + std::to_string(len) +
                    " is in neither the registered buffer nor a window of ctid " + std::to_string(ctid) +
                    " (a READ lands only in registered memory)");
}

}  // namespace coyote::detail::sim::net
