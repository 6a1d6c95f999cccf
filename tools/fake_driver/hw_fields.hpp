// The fake driver's own view of the Coyote interface, written from the hardware and driver sources and NOT shared
// with the backend (src/backend/registers.hpp, src/backend/hw/driver_abi.hpp), so that an encoding mistake of the
// backend cannot cancel itself out against the fake's decoding.
//   command word fields   hw/hdl/shell/cnfg_slave_avx.sv, cnfg_slave.sv (CTRL_REG: OPCODE 0, STRM 8, PID 10,
//                         DEST 16, LAST 20, ACTV 21, CLR_STAT 22, LEN 32; AVX: vaddr at 64, write side at 128)
//   registers             cnfg_slave_avx.sv register map; driver/include/coyote_defs.h struct vfpga_cnfg_regs
//   ioctl numbers         the values _IOW/_IOR('F'|'P', nr, unsigned long) take on x86-64 (written out)
#pragma once

#include <cstdint>

namespace coyote_fake {

/// A bit field of a 64-bit word.
struct Field {
    unsigned offs;
    unsigned bits;
    constexpr uint64_t get(uint64_t w) const noexcept { return (w >> offs) & ((bits == 64 ? 0 : (1ULL << bits)) - 1); }
};

/// One side (read or write) of the CTRL register.
namespace ctrl {
inline constexpr Field opcode{0, 5};
inline constexpr Field strm{8, 2};
inline constexpr Field pid{10, 6};
inline constexpr Field dest{16, 4};
inline constexpr Field last{20, 1};
inline constexpr Field actv{21, 1};
inline constexpr Field clr_stat{22, 1};
inline constexpr Field len{32, 32};
}  // namespace ctrl

/// The QP context and connection words (cnfg_slave_avx.sv rdma_ctx / rdma_conn; cDefs.hpp QP_CONTEXT_*,
/// CONN_CONTEXT_*): ctx w0 = local qpn | remote rkey; conn w0 = local qpn (16) | remote qpn | port; conn w1, w2 =
/// the remote gid, whose four 32-bit words each carry the remote IP in network byte order.
namespace qpctx {
inline constexpr Field local_qpn{0, 24};
inline constexpr Field rkey{32, 32};
}  // namespace qpctx
namespace conn {
inline constexpr Field local_qpn{0, 16};
inline constexpr Field remote_qpn{16, 24};
inline constexpr Field gid0{0, 32};
}  // namespace conn
/// The ctid bits of a qpn (the low PID_BITS; the vFPGA id above them).
inline constexpr Field qpn_ctid{0, 6};

/// Streams (is_strm_local: card and host are local).
inline constexpr uint64_t k_strm_card = 0, k_strm_host = 1, k_strm_rdma = 2, k_strm_tcp = 3;
/// RDMA application opcodes.
inline constexpr uint64_t k_rdma_read = 0, k_rdma_write = 1, k_rdma_send = 2;

/// AVX layout: 256-bit registers.
namespace avx {
inline constexpr uint32_t ctrl = 0, isr = 1, stat0 = 2, stat1 = 3, wback = 4, offl_ctrl = 5, offl_stat = 6,
                          sync_ctrl = 7, sync_stat = 8, net_arp = 9, rdma_ctx = 10, rdma_conn = 11, stat_dma = 64;
}
/// Legacy layout: 64-bit registers.
namespace leg {
inline constexpr uint32_t ctrl = 0, vaddr_rd = 1, ctrl_2 = 2, vaddr_wr = 3, net_arp = 36, rdma_ctx_0 = 40,
                          rdma_ctx_2 = 42, rdma_conn_0 = 44, rdma_conn_2 = 46, stat_dma = 64, stat_rdma = 128;
}

/// Region indices (mmap offset >> 12) and sizes.
inline constexpr unsigned long k_region_wb = 0x0, k_region_cnfg = 0x1, k_region_cnfg_avx = 0x2, k_region_ctrl = 0x3;
inline constexpr unsigned long k_size_wb = 4096; // WB_SIZE (1 KiB) in one page
inline constexpr unsigned long k_size_cnfg = 64 * 1024, k_size_cnfg_avx = 256 * 1024, k_size_ctrl = 64 * 1024;

inline constexpr int k_ctids = 64;

/// ioctl numbers.
namespace ioc {
inline constexpr unsigned long register_ctid = 0x40084601, unregister_ctid = 0x40084602,
                               register_eventfd = 0x40084603, unregister_eventfd = 0x40084604,
                               map_user_mem = 0x40084605, unmap_user_mem = 0x40084606, map_dmabuf = 0x40084607,
                               unmap_dmabuf = 0x40084608, offload_req = 0x40084609, sync_req = 0x4008460A,
                               set_ip = 0x4008460B, set_mac = 0x4008460C, get_ip = 0x8008460D, get_mac = 0x8008460E,
                               read_shell_config = 0x8008460F, hdma_stats = 0x80084610, net_stats = 0x80084611,
                               set_notification_processed = 0x80084612, get_notification_value = 0x80084613;
}

}  // namespace coyote_fake
