// coyote-mpi: encoding and decoding of Coyote register words (command, QP context, connection, ARP).
// cThread encodes with these; the sim backend decodes what was written; the hw backend writes them raw.
#pragma once

#include <array>
#include <cstdint>

#include <coyote/cDefs.hpp>
#include <coyote/cOps.hpp>

namespace coyote::detail {

/// RDMA opcodes in the command word.
enum class RdmaOpcode : uint32_t { read = 0, write = 1, send = 2 };

/// Fields of one command control word.
struct CtrlWord {
    uint32_t opcode = 0;
    uint32_t stream = 0;
    uint32_t ctid = 0;
    uint32_t dest = 0;
    bool last = false;
    bool start = false;
    bool clr_stat = false;
    uint32_t len = 0;

    constexpr uint64_t encode() const noexcept {
        return (uint64_t(opcode & CTRL_OPCODE_MASK) << CTRL_OPCODE_OFFS) |
               (uint64_t(stream & CTRL_STRM_MASK) << CTRL_STRM_OFFS) |
               (uint64_t(ctid & CTRL_PID_MASK) << CTRL_PID_OFFS) |
               (uint64_t(dest & CTRL_DEST_MASK) << CTRL_DEST_OFFS) | (last ? CTRL_LAST : 0) |
               (start ? CTRL_START : 0) | (clr_stat ? CTRL_CLR_STAT : 0) | (uint64_t(len) << CTRL_LEN_OFFS);
    }
    static constexpr CtrlWord decode(uint64_t w) noexcept {
        CtrlWord c;
        c.opcode = uint32_t((w >> CTRL_OPCODE_OFFS) & CTRL_OPCODE_MASK);
        c.stream = uint32_t((w >> CTRL_STRM_OFFS) & CTRL_STRM_MASK);
        c.ctid = uint32_t((w >> CTRL_PID_OFFS) & CTRL_PID_MASK);
        c.dest = uint32_t((w >> CTRL_DEST_OFFS) & CTRL_DEST_MASK);
        c.last = (w & CTRL_LAST) != 0;
        c.start = (w & CTRL_START) != 0;
        c.clr_stat = (w & CTRL_CLR_STAT) != 0;
        c.len = uint32_t((w >> CTRL_LEN_OFFS) & CTRL_LEN_MASK);
        return c;
    }
};

/// The queue-pair number stock Coyote derives from (vfid, ctid).
constexpr uint32_t make_qpn(int32_t vfid, int32_t ctid) noexcept {
    return (uint32_t(vfid & 0xF) << PID_BITS) | uint32_t(ctid & PID_MASK);
}

/// The three RDMA context words and the three connection words of writeQpContext.
struct QpContextWords {
    std::array<uint64_t, 3> ctx{};
    std::array<uint64_t, 3> conn{};
};

/// gid(i) of an ibvQ: the 8 hex digits at offset i, byte-swapped to network order.
uint32_t gid_word(const ibvQ& q, int idx) noexcept;

/// Encodes the words writeQpContext writes for `qp` and `port`.
QpContextWords encode_qp_context(const ibvQp& qp, uint32_t port) noexcept;

/// The fields the words carry, as the hardware sees them.
struct DecodedQpContext {
    uint32_t local_qpn = 0;   ///< 24 bits, from ctx w0
    uint32_t remote_rkey = 0; ///< from ctx w0
    uint32_t local_psn = 0;   ///< 24 bits
    uint32_t remote_psn = 0;  ///< 24 bits
    uint64_t remote_vaddr = 0;///< 48 bits
};
struct DecodedConnContext {
    uint32_t local_qpn = 0;   ///< 16 bits
    uint32_t remote_qpn = 0;  ///< 24 bits
    uint32_t port = 0;        ///< 16 bits
    uint32_t gid0 = 0, gid8 = 0, gid16 = 0, gid24 = 0;
    /// The remote IP carried in the gid (host byte order, as ibvQ::ip_addr).
    uint32_t remote_ip() const noexcept;
};
DecodedQpContext decode_qp_ctx(const std::array<uint64_t, 3>& w) noexcept;
DecodedConnContext decode_conn(const std::array<uint64_t, 3>& w) noexcept;

/// Builds the gid of an IP the way Coyote does: 8 hex digits repeated at offsets 0, 8, 16, 24.
void fill_gid(ibvQ& q, uint32_t ip) noexcept;

}  // namespace coyote::detail
