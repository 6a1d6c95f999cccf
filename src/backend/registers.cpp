#include "backend/registers.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace coyote::detail {

uint32_t gid_word(const ibvQ& q, int idx) noexcept {
    if (idx < 0 || idx > 24) return 0;
    char tmp[9] = {0};
    std::memcpy(tmp, q.gid + idx, 8);
    return ntohl(static_cast<uint32_t>(std::strtoul(tmp, nullptr, 16)));
}

void fill_gid(ibvQ& q, uint32_t ip) noexcept {
    char tmp[9];
    std::snprintf(tmp, sizeof(tmp), "%08x", ip);
    for (int i = 0; i < 4; ++i) std::memcpy(q.gid + 8 * i, tmp, 8);
    q.gid[32] = '\0';
}

QpContextWords encode_qp_context(const ibvQp& qp, uint32_t port) noexcept {
    QpContextWords w;
    const uint64_t vaddr = reinterpret_cast<uint64_t>(qp.remote.vaddr);
    w.ctx[0] = (uint64_t(qp.local.qpn & 0xFFFFFF) << QP_CONTEXT_QPN_OFFS) |
               (uint64_t(qp.remote.rkey) << QP_CONTEXT_RKEY_OFFS);
    w.ctx[1] = (uint64_t(qp.local.psn & 0xFFFFFF) << QP_CONTEXT_LPSN_OFFS) |
               (uint64_t(qp.remote.psn & 0xFFFFFF) << QP_CONTEXT_RPSN_OFFS);
    w.ctx[2] = (vaddr & 0xFFFFFFFFFFFFULL) << QP_CONTEXT_VADDR_OFFS;
    w.conn[0] = (uint64_t(qp.local.qpn & 0xFFFF) << CONN_CONTEXT_LQPN_OFFS) |
                (uint64_t(qp.remote.qpn & 0xFFFFFF) << CONN_CONTEXT_RQPN_OFFS) |
                (uint64_t(port & 0xFFFF) << CONN_CONTEXT_PORT_OFFS);
    w.conn[1] = (uint64_t(gid_word(qp.remote, 8)) << 32) | gid_word(qp.remote, 0);
    w.conn[2] = (uint64_t(gid_word(qp.remote, 24)) << 32) | gid_word(qp.remote, 16);
    return w;
}

DecodedQpContext decode_qp_ctx(const std::array<uint64_t, 3>& w) noexcept {
    DecodedQpContext d;
    d.local_qpn = uint32_t((w[0] >> QP_CONTEXT_QPN_OFFS) & 0xFFFFFF);
    d.remote_rkey = uint32_t(w[0] >> QP_CONTEXT_RKEY_OFFS);
    d.local_psn = uint32_t((w[1] >> QP_CONTEXT_LPSN_OFFS) & 0xFFFFFF);
    d.remote_psn = uint32_t((w[1] >> QP_CONTEXT_RPSN_OFFS) & 0xFFFFFF);
    d.remote_vaddr = (w[2] >> QP_CONTEXT_VADDR_OFFS) & 0xFFFFFFFFFFFFULL;
    return d;
}

DecodedConnContext decode_conn(const std::array<uint64_t, 3>& w) noexcept {
    DecodedConnContext d;
    d.local_qpn = uint32_t((w[0] >> CONN_CONTEXT_LQPN_OFFS) & 0xFFFF);
    d.remote_qpn = uint32_t((w[0] >> CONN_CONTEXT_RQPN_OFFS) & 0xFFFFFF);
    d.port = uint32_t((w[0] >> CONN_CONTEXT_PORT_OFFS) & 0xFFFF);
    d.gid0 = uint32_t(w[1]);
    d.gid8 = uint32_t(w[1] >> 32);
    d.gid16 = uint32_t(w[2]);
    d.gid24 = uint32_t(w[2] >> 32);
    return d;
}

uint32_t DecodedConnContext::remote_ip() const noexcept { return ntohl(gid0); }

}  // namespace coyote::detail
