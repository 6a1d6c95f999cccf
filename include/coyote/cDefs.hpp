// coyote-mpi: Coyote v0.2.x compatible definitions (constants, register maps, queue pairs, shell config).
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/ioctl.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>

using namespace std::chrono_literals;

/// Prints a section banner, as Coyote's examples do.
#define HEADER(msg)                                                                                      \
    do {                                                                                                 \
        std::cout << "\n-- \033[31m\033[1m" << (msg) << "\033[0m" << std::endl;                          \
        std::cout << "-----------------------------------------------" << std::endl;                     \
    } while (false)

// ioctl numbers of the Coyote driver (type 'F' for vFPGA devices, 'P' for reconfiguration).
#define IOCTL_REGISTER_CTID _IOW('F', 1, unsigned long)
#define IOCTL_UNREGISTER_CTID _IOW('F', 2, unsigned long)
#define IOCTL_REGISTER_EVENTFD _IOW('F', 3, unsigned long)
#define IOCTL_UNREGISTER_EVENTFD _IOW('F', 4, unsigned long)
#define IOCTL_MAP_USER_MEM _IOW('F', 5, unsigned long)
#define IOCTL_UNMAP_USER_MEM _IOW('F', 6, unsigned long)
#define IOCTL_MAP_DMABUF _IOW('F', 7, unsigned long)
#define IOCTL_UNMAP_DMABUF _IOW('F', 8, unsigned long)
#define IOCTL_OFFLOAD_REQ _IOW('F', 9, unsigned long)
#define IOCTL_SYNC_REQ _IOW('F', 10, unsigned long)
#define IOCTL_SET_IP_ADDRESS _IOW('F', 11, unsigned long)
#define IOCTL_SET_MAC_ADDRESS _IOW('F', 12, unsigned long)
#define IOCTL_GET_IP_ADDRESS _IOR('F', 13, unsigned long)
#define IOCTL_GET_MAC_ADDRESS _IOR('F', 14, unsigned long)
#define IOCTL_READ_SHELL_CONFIG _IOR('F', 15, unsigned long)
#define IOCTL_XDMA_STATS _IOR('F', 16, unsigned long)
#define IOCTL_NET_STATS _IOR('F', 17, unsigned long)
#define IOCTL_SET_NOTIFICATION_PROCESSED _IOR('F', 18, unsigned long)
#define IOCTL_GET_NOTIFICATION_VALUE _IOR('F', 19, unsigned long)
#define IOCTL_ALLOC_HOST_RECONFIG_MEM _IOW('P', 1, unsigned long)
#define IOCTL_FREE_HOST_RECONFIG_MEM _IOW('P', 2, unsigned long)
#define IOCTL_RECONFIGURE_APP _IOW('P', 3, unsigned long)
#define IOCTL_RECONFIGURE_SHELL _IOW('P', 4, unsigned long)
#define IOCTL_PR_CNFG _IOR('P', 5, unsigned long)

// Command word fields (section 6 of the interface reference).
#define CTRL_OPCODE_OFFS (0)
#define CTRL_STRM_OFFS (8)
#define CTRL_PID_OFFS (10)
#define CTRL_DEST_OFFS (16)
#define CTRL_LAST (1UL << 20)
#define CTRL_START (1UL << 21)
#define CTRL_CLR_STAT (1UL << 22)
#define CTRL_LEN_OFFS (32)
#define CTRL_OPCODE_MASK (0x1f)
#define CTRL_STRM_MASK (0x3)
#define CTRL_PID_MASK (0x3f)
#define CTRL_DEST_MASK (0xf)
#define CTRL_VFID_MASK (0xf)
#define CTRL_LEN_MASK (0xffffffff)
#define PID_BITS (6)
#define PID_MASK (0x3f)

// QP context word fields.
#define QP_CONTEXT_QPN_OFFS (0)
#define QP_CONTEXT_RKEY_OFFS (32)
#define QP_CONTEXT_LPSN_OFFS (0)
#define QP_CONTEXT_RPSN_OFFS (24)
#define QP_CONTEXT_VADDR_OFFS (0)
#define CONN_CONTEXT_LQPN_OFFS (0)
#define CONN_CONTEXT_RQPN_OFFS (16)
#define CONN_CONTEXT_PORT_OFFS (40)

namespace coyote {

/// Configuration registers, AVX layout (256-bit word index).
enum class CnfgAvxRegs : uint32_t {
    CTRL_REG = 0,
    ISR_REG = 1,
    STAT_REG_0 = 2,
    STAT_REG_1 = 3,
    WBACK_REG = 4,
    OFFLOAD_CTRL_REG = 5,
    OFFLOAD_STAT_REG = 6,
    SYNC_CTRL_REG = 7,
    SYNC_STAT_REG = 8,
    NET_ARP_REG = 9,
    RDMA_CTX_REG = 10,
    RDMA_CONN_REG = 11,
    TCP_OPEN_PORT_REG = 12,
    TCP_OPEN_PORT_STAT_REG = 13,
    TCP_OPEN_CONN_REG = 14,
    TCP_OPEN_CONN_STAT_REG = 15,
    STAT_DMA_REG = 64
};

/// Configuration registers, legacy layout (64-bit word index).
enum class CnfgLegRegs : uint32_t {
    CTRL_REG = 0,
    VADDR_RD_REG = 1,
    CTRL_REG_2 = 2,
    VADDR_WR_REG = 3,
    ISR_REG = 4,
    ISR_PID_MISS_REG = 5,
    ISR_VADDR_MISS_REG = 6,
    ISR_LEN_MISS_REG = 7,
    STAT_REG_0 = 8,
    STAT_REG_1 = 9,
    STAT_REG_2 = 10,
    STAT_REG_3 = 11,
    STAT_REG_4 = 12,
    STAT_REG_5 = 13,
    STAT_REG_6 = 14,
    STAT_REG_7 = 15,
    WBACK_REG_0 = 16,
    WBACK_REG_1 = 17,
    WBACK_REG_2 = 18,
    WBACK_REG_3 = 19,
    OFFLOAD_CTRL_REG = 20,
    OFFLOAD_HOST_OFFS_REG = 21,
    OFFLOAD_CARD_OFFS_REG = 22,
    OFFLOAD_STAT_REG = 24,
    SYNC_CTRL_REG = 28,
    SYNC_HOST_OFFS_REG = 29,
    SYNC_CARD_OFFS_REG = 30,
    SYNC_STAT_REG = 32,
    NET_ARP_REG = 36,
    RDMA_CTX_REG_0 = 40,
    RDMA_CTX_REG_1 = 41,
    RDMA_CTX_REG_2 = 42,
    RDMA_CONN_REG_0 = 44,
    RDMA_CONN_REG_1 = 45,
    RDMA_CONN_REG_2 = 46,
    TCP_OPEN_PORT_REG = 48,
    TCP_OPEN_PORT_STAT_REG = 52,
    TCP_OPEN_CONN_REG = 56,
    TCP_OPEN_CONN_STAT_REG = 60,
    STAT_DMA_REG = 64,
    STAT_RDMA_REG = 128,
};

// DMA and command constants.
constexpr int const CMD_FIFO_DEPTH = 32;
constexpr int const CMD_FIFO_THR = 10;
constexpr unsigned long const MAX_TRANSFER_SIZE = 128UL * 1024UL * 1024UL;
constexpr long const SLEEP_TIME = 100L;
constexpr int const MAX_EVENTS = 1;

// Memory.
constexpr unsigned long long const PAGE_SIZE = 4ULL * 1024ULL;
constexpr unsigned long long const HUGE_PAGE_SIZE = 2ULL * 1024ULL * 1024ULL;
constexpr unsigned long const PAGE_SHIFT = 12UL;
constexpr unsigned long const HUGE_PAGE_SHIFT = 21UL;

/// Coyote threads per vFPGA.
constexpr int const N_CTID_MAX = 64;

// Memory-mapped regions of a vFPGA device.
constexpr unsigned long const CTRL_REGION_SIZE = 64UL * 1024UL;
constexpr unsigned long const CNFG_REGION_SIZE = 64UL * 1024UL;
constexpr unsigned long const CNFG_AVX_REGION_SIZE = 256UL * 1024UL;
constexpr unsigned long const WBACK_REGION_SIZE = 4UL * N_CTID_MAX * sizeof(uint32_t);
constexpr unsigned long const MMAP_WB = 0x0UL << PAGE_SHIFT;
constexpr unsigned long const MMAP_CNFG = 0x1UL << PAGE_SHIFT;
constexpr unsigned long const MMAP_CNFG_AVX = 0x2UL << PAGE_SHIFT;
constexpr unsigned long const MMAP_CTRL = 0x3UL << PAGE_SHIFT;
constexpr unsigned long const MMAP_RECONFIG = 0x100UL << PAGE_SHIFT;

// Writeback region: one counter per class and ctid.
constexpr unsigned long const N_WBACKS = 4;
constexpr unsigned long const RD_WBACK = 0;
constexpr unsigned long const WR_WBACK = 1;
constexpr unsigned long const RD_RDMA_WBACK = 2;
constexpr unsigned long const WR_RDMA_WBACK = 3;

constexpr auto const MAX_USER_ARGS = 32;

// Streams.
constexpr unsigned long const STRM_CARD = 0;
constexpr unsigned long const STRM_HOST = 1;
constexpr unsigned long const STRM_RDMA = 2;
constexpr unsigned long const STRM_TCP = 3;

/// Default out-of-band port.
constexpr unsigned long const DEF_PORT = 18488;

// Background service.
constexpr unsigned long const RECV_BUFF_SIZE = 1024;
constexpr unsigned long const MAX_NUM_CLIENTS = 64;
constexpr unsigned long const DEF_OP_CLOSE_CONN = 0;
constexpr unsigned long const DEF_OP_SUBMIT_TASK = 1;

/// One side of an RDMA queue pair (64 bytes, raw on the out-of-band wire).
struct ibvQ {
    uint32_t ip_addr;
    uint32_t qpn;
    uint32_t psn;
    uint32_t rkey;
    void* vaddr;
    uint32_t size;
    char gid[33] = {0};

    /// The 8 hex digits at `idx` of the gid, in network byte order.
    uint32_t gidToUint(int idx) {
        if (idx < 0 || idx > 24) {
            std::cerr << "Invalid index for gidToUint" << std::endl;
            return 0;
        }
        char tmp[9] = {0};
        std::memcpy(tmp, gid + idx, 8);
        uint32_t v = static_cast<uint32_t>(std::strtoul(tmp, nullptr, 16));
        return ntohl(v);
    }

    /// Writes `ip` as 8 hex digits at `idx` of the gid.
    void uintToGid(int idx, uint32_t ip) {
        if (idx < 0 || idx > 24) return;
        char tmp[9];
        std::snprintf(tmp, sizeof(tmp), "%08x", ip);
        std::memcpy(gid + idx, tmp, 8);
    }

    void print(const char* name) {
        std::printf("%s: QPN 0x%06x, PSN 0x%06x, VADDR %016lx, SIZE %08x, IP 0x%08x\n", name, qpn, psn,
                    reinterpret_cast<unsigned long>(vaddr), size, ip_addr);
    }
};

/// A connected queue pair: the local side and the peer's.
struct ibvQp {
public:
    ibvQ local;
    ibvQ remote;

    ibvQp() {}
};

/// Control configuration word bits.
typedef struct __attribute__((packed)) {
    uint32_t avx_flow : 1;
    uint32_t bpss : 1;
    uint32_t tlbf : 1;
    uint32_t wb_flow : 1;
    uint32_t tlb_s_order : 4;
    uint32_t n_s_assoc : 4;
    uint32_t tlb_l_order : 4;
    uint32_t n_l_assoc : 4;
    uint32_t pg_s_bits : 6;
    uint32_t pg_l_bits : 6;
} ctrl_cnfg_reg_bits;

/// Shell configuration as read from the device.
struct fpgaCnfg {
    bool en_avx = {false};
    bool en_wb = {false};
    bool en_strm = {false};
    bool en_mem = {false};
    bool en_pr = {false};
    bool en_rdma = {false};
    bool en_tcp = {false};
    bool en_net = {false};
    int32_t n_xdma_chan = {0};
    int32_t n_fpga_reg = {0};
    ctrl_cnfg_reg_bits ctrl_reg = {};

    /// Decodes the packed shell word.
    void parseCnfg(uint64_t cnfg) {
        en_avx = (cnfg >> 0) & 0x1;
        en_wb = (cnfg >> 1) & 0x1;
        en_strm = (cnfg >> 2) & 0x1;
        en_mem = (cnfg >> 3) & 0x1;
        en_pr = (cnfg >> 4) & 0x1;
        en_rdma = (cnfg >> 16) & 0x1;
        en_tcp = (cnfg >> 17) & 0x1;
        n_xdma_chan = static_cast<int32_t>((cnfg >> 32) & 0xff);
        n_fpga_reg = static_cast<int32_t>((cnfg >> 48) & 0xff);
        en_net = en_rdma || en_tcp;
    }

    /// Decodes the control word (lower 32 bits).
    void parseCtrlReg(uint64_t value) {
        uint32_t low = static_cast<uint32_t>(value);
        std::memcpy(&ctrl_reg, &low, sizeof(ctrl_reg));
    }
};

}  // namespace coyote
