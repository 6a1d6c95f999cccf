// The Coyote driver's user-space ABI as the hw backend uses it: ioctl numbers, argument slots, mmap regions,
// and the order of the register stores of one command (facts from fpgasystems/Coyote, see docs/hardware.md).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "backend/device.hpp"

namespace coyote::detail::hw::abi {

// ---- ioctl numbers: the kernel's generic _IOC layout (asm-generic/ioctl.h) ----------------------------

inline constexpr uint32_t k_ioc_nrbits = 8, k_ioc_typebits = 8, k_ioc_sizebits = 14;
inline constexpr uint32_t k_ioc_write = 1, k_ioc_read = 2;

/// _IOC(dir, type, nr, size): dir in bits 31:30, size 29:16, type 15:8, nr 7:0.
constexpr unsigned long ioc(uint32_t dir, char type, uint32_t nr, uint32_t size) noexcept {
    return (static_cast<unsigned long>(dir) << (k_ioc_nrbits + k_ioc_typebits + k_ioc_sizebits)) |
           (static_cast<unsigned long>(size) << (k_ioc_nrbits + k_ioc_typebits)) |
           (static_cast<unsigned long>(static_cast<unsigned char>(type)) << k_ioc_nrbits) | nr;
}
/// _IOW(type, nr, unsigned long) and _IOR(type, nr, unsigned long), as the driver declares every call.
constexpr unsigned long iow(char type, uint32_t nr) noexcept { return ioc(k_ioc_write, type, nr, sizeof(unsigned long)); }
constexpr unsigned long ior(char type, uint32_t nr) noexcept { return ioc(k_ioc_read, type, nr, sizeof(unsigned long)); }

/// vFPGA device calls (type 'F'); driver/include/coyote_defs.h.
inline constexpr unsigned long k_register_ctid = iow('F', 1);
inline constexpr unsigned long k_unregister_ctid = iow('F', 2);
inline constexpr unsigned long k_register_eventfd = iow('F', 3);
inline constexpr unsigned long k_unregister_eventfd = iow('F', 4);
inline constexpr unsigned long k_map_user_mem = iow('F', 5);
inline constexpr unsigned long k_unmap_user_mem = iow('F', 6);
inline constexpr unsigned long k_map_dmabuf = iow('F', 7);
inline constexpr unsigned long k_unmap_dmabuf = iow('F', 8);
inline constexpr unsigned long k_offload_req = iow('F', 9);
inline constexpr unsigned long k_sync_req = iow('F', 10);
inline constexpr unsigned long k_set_ip_address = iow('F', 11);
inline constexpr unsigned long k_set_mac_address = iow('F', 12);
inline constexpr unsigned long k_get_ip_address = ior('F', 13);
inline constexpr unsigned long k_get_mac_address = ior('F', 14);
inline constexpr unsigned long k_read_shell_config = ior('F', 15);
inline constexpr unsigned long k_shell_hdma_stats = ior('F', 16); ///< XDMA_STATS in older releases
inline constexpr unsigned long k_shell_net_stats = ior('F', 17);
inline constexpr unsigned long k_set_notification_processed = ior('F', 18);
inline constexpr unsigned long k_get_notification_value = ior('F', 19);

/// Reconfiguration device calls (type 'P').
inline constexpr unsigned long k_alloc_host_reconfig_mem = iow('P', 1);
inline constexpr unsigned long k_free_host_reconfig_mem = iow('P', 2);
inline constexpr unsigned long k_reconfigure_app = iow('P', 3);
inline constexpr unsigned long k_reconfigure_shell = iow('P', 4);
inline constexpr unsigned long k_pr_cnfg = ior('P', 5);
inline constexpr unsigned long k_pr_wb_stats = ior('P', 6);

/// The driver's name of a call, for messages ("IOCTL_REGISTER_CTID"); "unknown ioctl" otherwise.
const char* ioctl_name(unsigned long request) noexcept;

// ---- arguments: every call takes a pointer to MAX_USER_ARGS 64-bit words ------------------------------

inline constexpr int k_max_user_args = 32;
using Args = std::array<uint64_t, k_max_user_args>;

/// Argument slots (vfpga_ops.c): in = read by the driver, out = written back.
namespace slot {
inline constexpr int hpid = 0, ctid_out = 1;                      ///< REGISTER_CTID
inline constexpr int ctid = 0, eventfd = 1;                       ///< UNREGISTER_CTID, (UN)REGISTER_EVENTFD
inline constexpr int map_vaddr = 0, map_len = 1, map_ctid = 2, map_mem_block = 3; ///< MAP_USER_MEM
inline constexpr int unmap_vaddr = 0, unmap_ctid = 1;             ///< UNMAP_USER_MEM, UNMAP_DMABUF
inline constexpr int dmabuf_fd = 0, dmabuf_vaddr = 1, dmabuf_ctid = 2, dmabuf_mem_block = 3; ///< MAP_DMABUF
inline constexpr int mig_vaddr = 0, mig_len = 1, mig_ctid = 2;    ///< OFFLOAD_REQ, SYNC_REQ
inline constexpr int value = 0;                                   ///< GET/SET IP and MAC, shell config, notification
/// Reconfiguration device (reconfig_ops.c): ALLOC_HOST_RECONFIG_MEM (pages, pid, crid), FREE_HOST_RECONFIG_MEM
/// (vaddr, pid, crid), RECONFIGURE_SHELL (vaddr, len, pid, crid), RECONFIGURE_APP (... , vfid), PR_CNFG (out en_pr).
inline constexpr int rc_pages = 0, rc_vaddr = 0, rc_len = 1, rc_alloc_pid = 1, rc_alloc_crid = 2, rc_pid = 2,
                     rc_crid = 3, rc_vfid = 4;
}  // namespace slot

/// Words of the statistics calls: 4 per host DMA channel (N_HDMA_STAT_REGS / XDMA_MAX_NUM_CHANNELS), 10 network.
inline constexpr int k_hdma_stat_words_per_chan = 4;
inline constexpr int k_net_stat_words = 10;
/// The driver's return for an ioctl it does not know (vfpga_ops.c: "ret_val = 1"), not a negative errno.
inline constexpr int k_unknown_ioctl_ret = 1;

// ---- mmap regions: offset = index << 12 (the driver compares vm_pgoff with the index) ---------------------

inline constexpr unsigned k_page_shift = 12;
enum class Region : uint32_t { wback = 0x0, cnfg = 0x1, cnfg_avx = 0x2, ctrl = 0x3, reconfig = 0x100 };
constexpr long region_offset(Region r) noexcept { return static_cast<long>(static_cast<uint32_t>(r)) << k_page_shift; }
/// Region sizes: writeback 4 x 64 x u32 (WB_SIZE), config 64 KiB (VFPGA_CTRL_SIZE / 4), AVX config 256 KiB,
/// user control (CSR) 64 KiB.
inline constexpr uint64_t k_wback_size = 4ULL * 64 * sizeof(uint32_t);
inline constexpr uint64_t k_cnfg_size = 64ULL * 1024;
inline constexpr uint64_t k_cnfg_avx_size = 256ULL * 1024;
inline constexpr uint64_t k_ctrl_size = 64ULL * 1024;
/// Reconfiguration buffers are made of 2 MiB pages (RECONFIG_BUFF_PAGE_SIZE).
inline constexpr uint64_t k_reconfig_page_size = 2ULL << 20;

/// The reconfiguration device of `device`: /dev/coyote_fpga_<device>_reconfig.
std::string reconfig_device_file(uint32_t device);

// ---- shell configuration word (READ_SHELL_CONFIG, slot 0) -------------------------------------------------

/// Bits the driver may set: en_avx..en_pr (4:0), en_rdma 16, en_tcp 17, channels 39:32, regions 55:48.
inline constexpr uint64_t k_shell_word_known_bits = 0x1FULL | (0x3ULL << 16) | (0xFFULL << 32) | (0xFFULL << 48);

/// The control word when the driver does not return one (the drivers read return only the shell word):
/// AVX / writeback flow as the shell word says, 4 KiB small pages (pg_s_bits 12), 2 MiB large pages (21).
uint64_t default_control_word(uint64_t shell_word) noexcept;

// ---- one command in register words ----------------------------------------------------------------------

/// The four words of a command: read (source) side, then write (destination) side. In the AVX layout they are
/// one 256-bit store at CTRL_REG in this memory order (cnfg_slave_avx.sv: vaddr at bit 64, write side at 128).
struct CmdWords {
    uint64_t src_ctrl = 0;
    uint64_t src_addr = 0;
    uint64_t dst_ctrl = 0;
    uint64_t dst_addr = 0;
    constexpr bool operator==(const CmdWords&) const = default;
};

/// Encodes `cmd` as stock cThread does (sw/src/cThread.cpp): local sides carry START; an RDMA command carries the
/// RDMA opcode on both sides and START only on the remote side (stream RDMA); the source of a READ is the remote
/// side. The hw backend and the golden tests use it.
CmdWords encode_command(const Command& cmd) noexcept;

/// The clear-status words of clearCompleted: CLR_STAT | ctid on both sides, addresses 0.
CmdWords encode_clear(int32_t ctid) noexcept;

/// Legacy layout: the 64-bit registers a command is stored to, in store order (VADDR_WR, CTRL_2, VADDR_RD, CTRL);
/// the CTRL store posts it.
inline constexpr std::array<uint32_t, 4> k_legacy_store_order = {3, 2, 1, 0};
/// The word of `w` that goes to legacy register `reg` (one of k_legacy_store_order).
constexpr uint64_t legacy_word(const CmdWords& w, uint32_t reg) noexcept {
    switch (reg) {
    case 0: return w.src_ctrl;
    case 1: return w.src_addr;
    case 2: return w.dst_ctrl;
    default: return w.dst_addr;
    }
}

}  // namespace coyote::detail::hw::abi
