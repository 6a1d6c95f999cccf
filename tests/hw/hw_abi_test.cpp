// Golden values of the hw backend's driver ABI: ioctl numbers and the register words of every command type, in
// both layouts. Every expected value is written out by hand from Coyote's sources (fpgasystems/Coyote):
//   ioctl numbers      driver/include/coyote_defs.h (_IOW/_IOR('F'|'P', nr, unsigned long)), asm-generic/ioctl.h
//   command fields     hw/hdl/shell/cnfg_slave_avx.sv (OPCODE 0, STRM 8, PID 10, DEST 16, LAST 20, ACTV 21,
//                      CLR_STAT 22, LEN 32; vaddr at bit 64, write side at bit 128 of the 256-bit CTRL word)
//   which side starts  sw/src/cThread.cpp (invoke: local sides START; RDMA: START on the remote side only, the
//                      remote side is the source of a READ; postCmd: legacy VADDR_WR, CTRL_2, VADDR_RD, CTRL)
//   clearCompleted     sw/src/cThread.cpp (CLR_STAT | ctid << 10 on both sides)
#include <gtest/gtest.h>

#include "backend/hw/driver_abi.hpp"

namespace hwabi = coyote::detail::hw::abi;
using coyote::CoyoteOper;
using coyote::detail::Command;

namespace {

TEST(HwAbi, VfpgaIoctlNumbers) {
    EXPECT_EQ(hwabi::k_register_ctid, 0x40084601UL);
    EXPECT_EQ(hwabi::k_unregister_ctid, 0x40084602UL);
    EXPECT_EQ(hwabi::k_register_eventfd, 0x40084603UL);
    EXPECT_EQ(hwabi::k_unregister_eventfd, 0x40084604UL);
    EXPECT_EQ(hwabi::k_map_user_mem, 0x40084605UL);
    EXPECT_EQ(hwabi::k_unmap_user_mem, 0x40084606UL);
    EXPECT_EQ(hwabi::k_map_dmabuf, 0x40084607UL);
    EXPECT_EQ(hwabi::k_unmap_dmabuf, 0x40084608UL);
    EXPECT_EQ(hwabi::k_offload_req, 0x40084609UL);
    EXPECT_EQ(hwabi::k_sync_req, 0x4008460AUL);
    EXPECT_EQ(hwabi::k_set_ip_address, 0x4008460BUL);
    EXPECT_EQ(hwabi::k_set_mac_address, 0x4008460CUL);
    EXPECT_EQ(hwabi::k_get_ip_address, 0x8008460DUL);
    EXPECT_EQ(hwabi::k_get_mac_address, 0x8008460EUL);
    EXPECT_EQ(hwabi::k_read_shell_config, 0x8008460FUL);
    EXPECT_EQ(hwabi::k_shell_hdma_stats, 0x80084610UL);
    EXPECT_EQ(hwabi::k_shell_net_stats, 0x80084611UL);
    EXPECT_EQ(hwabi::k_set_notification_processed, 0x80084612UL);
    EXPECT_EQ(hwabi::k_get_notification_value, 0x80084613UL);
}

TEST(HwAbi, ReconfigIoctlNumbers) {
    EXPECT_EQ(hwabi::k_alloc_host_reconfig_mem, 0x40085001UL);
    EXPECT_EQ(hwabi::k_free_host_reconfig_mem, 0x40085002UL);
    EXPECT_EQ(hwabi::k_reconfigure_app, 0x40085003UL);
    EXPECT_EQ(hwabi::k_reconfigure_shell, 0x40085004UL);
    EXPECT_EQ(hwabi::k_pr_cnfg, 0x80085005UL);
    EXPECT_STREQ(hwabi::ioctl_name(0x40084601UL), "IOCTL_REGISTER_CTID");
    EXPECT_STREQ(hwabi::ioctl_name(0x40084699UL), "unknown ioctl");
}

TEST(HwAbi, MmapRegions) {
    EXPECT_EQ(hwabi::region_offset(hwabi::Region::wback), 0x0L);
    EXPECT_EQ(hwabi::region_offset(hwabi::Region::cnfg), 0x1000L);
    EXPECT_EQ(hwabi::region_offset(hwabi::Region::cnfg_avx), 0x2000L);
    EXPECT_EQ(hwabi::region_offset(hwabi::Region::ctrl), 0x3000L);
    EXPECT_EQ(hwabi::region_offset(hwabi::Region::reconfig), 0x100000L);
    EXPECT_EQ(hwabi::k_wback_size, 1024U);
    EXPECT_EQ(hwabi::k_cnfg_size, 65536U);
    EXPECT_EQ(hwabi::k_cnfg_avx_size, 262144U);
    EXPECT_EQ(hwabi::k_ctrl_size, 65536U);
}

/// ctid 5 for every command below.
Command make(CoyoteOper oper, bool last) {
    Command c;
    c.oper = oper;
    c.ctid = 5;
    c.last = last;
    return c;
}

TEST(HwAbi, LocalReadWords) {
    Command c = make(CoyoteOper::LOCAL_READ, true);
    c.src = {0x7f0000001000ULL, 0x1000, coyote::STRM_HOST, 2};
    // stream 1 << 8 | ctid 5 << 10 | dest 2 << 16 | LAST | START | len 0x1000 << 32
    EXPECT_EQ(hwabi::encode_command(c), (hwabi::CmdWords{0x0000100000321500ULL, 0x7f0000001000ULL, 0, 0}));
}

TEST(HwAbi, LocalWriteWords) {
    Command c = make(CoyoteOper::LOCAL_WRITE, false);
    c.dst = {0x7f0000002000ULL, 0x40, coyote::STRM_CARD, 3};
    // stream 0 | ctid 5 << 10 | dest 3 << 16 | START | len 0x40 << 32
    EXPECT_EQ(hwabi::encode_command(c), (hwabi::CmdWords{0, 0, 0x0000004000231400ULL, 0x7f0000002000ULL}));
}

TEST(HwAbi, LocalTransferWords) {
    Command c = make(CoyoteOper::LOCAL_TRANSFER, true);
    c.src = {0x1000, 0x80, coyote::STRM_HOST, 0};
    c.dst = {0x3000, 0x80, coyote::STRM_HOST, 1};
    EXPECT_EQ(hwabi::encode_command(c),
              (hwabi::CmdWords{0x0000008000301500ULL, 0x1000, 0x0000008000311500ULL, 0x3000}));
}

Command rdma(CoyoteOper oper) {
    Command c = make(oper, true);
    c.src = {0x7f0000010000ULL, 0x100, coyote::STRM_HOST, 0}; // local side
    c.dst = {0x7f0000020000ULL, 0x100, coyote::STRM_RDMA, 1}; // remote side
    return c;
}

TEST(HwAbi, RdmaWriteWords) {
    // local: opcode 1 | stream 1 << 8 | ctid | LAST (no START); remote: opcode 1 | stream 2 << 8 | ctid |
    // dest 1 << 16 | LAST | START; len 0x100 << 32 on both. Source = local side.
    EXPECT_EQ(hwabi::encode_command(rdma(CoyoteOper::REMOTE_RDMA_WRITE)),
              (hwabi::CmdWords{0x0000010000101501ULL, 0x7f0000010000ULL, 0x0000010000311601ULL, 0x7f0000020000ULL}));
}

TEST(HwAbi, RdmaSendWords) {
    EXPECT_EQ(hwabi::encode_command(rdma(CoyoteOper::REMOTE_RDMA_SEND)),
              (hwabi::CmdWords{0x0000010000101502ULL, 0x7f0000010000ULL, 0x0000010000311602ULL, 0x7f0000020000ULL}));
}

TEST(HwAbi, RdmaReadWords) {
    // opcode 0; the source is the remote side.
    EXPECT_EQ(hwabi::encode_command(rdma(CoyoteOper::REMOTE_RDMA_READ)),
              (hwabi::CmdWords{0x0000010000311600ULL, 0x7f0000020000ULL, 0x0000010000101500ULL, 0x7f0000010000ULL}));
}

TEST(HwAbi, NoWordsForIoctlOperations) {
    for (auto op : {CoyoteOper::NOOP, CoyoteOper::LOCAL_OFFLOAD, CoyoteOper::LOCAL_SYNC, CoyoteOper::REMOTE_TCP_SEND})
        EXPECT_EQ(hwabi::encode_command(make(op, true)), hwabi::CmdWords{}) << static_cast<int>(op);
}

TEST(HwAbi, ClearWords) {
    EXPECT_EQ(hwabi::encode_clear(5), (hwabi::CmdWords{0x401400, 0, 0x401400, 0}));
}

TEST(HwAbi, LegacyStoreOrder) {
    // VADDR_WR (3) = dst addr, CTRL_2 (2) = dst ctrl, VADDR_RD (1) = src addr, CTRL (0) = src ctrl, in that order.
    const hwabi::CmdWords w{0x11, 0x22, 0x33, 0x44};
    EXPECT_EQ(hwabi::k_legacy_store_order, (std::array<uint32_t, 4>{3, 2, 1, 0}));
    EXPECT_EQ(hwabi::legacy_word(w, 3), 0x44U);
    EXPECT_EQ(hwabi::legacy_word(w, 2), 0x33U);
    EXPECT_EQ(hwabi::legacy_word(w, 1), 0x22U);
    EXPECT_EQ(hwabi::legacy_word(w, 0), 0x11U);
}

TEST(HwAbi, DefaultControlWord) {
    // avx_flow bit 0, wb_flow bit 3, pg_s_bits 12 at 25:20, pg_l_bits 21 at 31:26.
    EXPECT_EQ(hwabi::default_control_word(0x3), 0x1 | 0x8 | (12ULL << 20) | (21ULL << 26));
    EXPECT_EQ(hwabi::default_control_word(0x0), (12ULL << 20) | (21ULL << 26));
}

}  // namespace
