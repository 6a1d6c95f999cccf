// The packet sniffer model's filter (example 11's --no-* options, CSR 2) against what Coyote's packet_filter does
// with the same frame: the drop bits first, then the payload bits for UDP/IPv4, UDP/IPv6, TCP/IPv4 and RoCEv2/IPv4,
// with RoCEv2 recognised only when bytes 36, 37 are 0xb7, 0x12 (the filter compares the UDP port with its bytes
// swapped). RoCEv2 frames as the emulated NIC sends them carry port 4791 in network order (0x12, 0xb7), so on the
// FPGA the RoCEv2 bits leave them alone and the UDP/IPv4 bits apply to them.
#include "unit/test_support.hpp"
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "backend/sim/models/examples/packet_tap.hpp"

using coyote::CoyoteAllocType;
using coyote::cThread;
using coyote_test::EnvGuard;
using coyote_test::eventually;

namespace {

namespace sn = coyote::detail::sim::sniffer;

constexpr uint64_t k_no_udp4 = uint64_t{1} << 22;
constexpr uint64_t k_no_udp4_payload = uint64_t{1} << 23;
constexpr uint64_t k_no_roce4 = uint64_t{1} << 30;
constexpr uint64_t k_no_roce4_payload = uint64_t{1} << 31;

class SimSnifferFilter : public ::testing::Test {
protected:
    EnvGuard backend{"COYOTE_BACKEND", "sim"};
    EnvGuard model{"COYOTE_SIM_MODEL", "packet_sniffer"};
    EnvGuard shell{"COYOTE_SIM_SHELL", "mem=0"}; // no card memory: the sniffer writes the host buffer itself
    EnvGuard config{"COYOTE_SIM_CONFIG", nullptr};
};

/// An RDMA WRITE ONLY of 100 bytes as the emulated NIC sends it: 174 bytes, UDP port 4791 as 0x12, 0xb7.
std::vector<std::byte> roce_write() {
    std::vector<std::byte> payload(100, std::byte{0x5a});
    return sn::build_roce_frame(sn::RoceHeader{.opcode = 0x0a, .dest_qp = 7, .dma_len = 100}, payload);
}

/// `f` with its UDP destination port bytes swapped (0xb7, 0x12): what Coyote's filter takes for RoCEv2.
std::vector<std::byte> port_swapped(std::vector<std::byte> f) {
    std::swap(f[36], f[37]);
    return f;
}

/// Captures `frame` once on device `device` with filter `filter` as example 11 does (buffer registers, CTRL_1,
/// filter, CTRL_0 = 1, ..., CTRL_0 = 0) and returns the bytes the sniffer reports captured (SNIFFER_SIZE).
std::vector<std::byte> capture(uint32_t device, uint64_t filter, const std::vector<std::byte>& frame) {
    cThread t(0, getpid(), device);
    const uint64_t len = 64 * 1024;
    auto* mem = static_cast<std::byte*>(t.getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(len)}));
    std::memset(mem, 0, len);
    t.setCSR(reinterpret_cast<uint64_t>(mem), 6);
    t.setCSR(len, 7);
    t.setCSR(1, 1);
    t.setCSR(filter, 2);
    t.setCSR(1, 0);
    EXPECT_TRUE(eventually([&] { return static_cast<uint8_t>(t.getCSR(3)) != 0; }));
    sn::capture(device, sn::Direction::tx, frame);
    t.setCSR(0, 0);
    EXPECT_TRUE(eventually([&] { return static_cast<uint8_t>(t.getCSR(3)) == 0; }));
    const uint64_t size = t.getCSR(4);
    EXPECT_LE(size, len);
    std::vector<std::byte> out(mem, mem + size);
    t.setCSR(0, 1);
    return out;
}

/// The record of `frame` cut to `keep` bytes: the bytes kept, zero-padded to whole 64-byte beats.
std::vector<std::byte> record_of(const std::vector<std::byte>& frame, std::size_t keep) {
    std::vector<std::byte> r((keep + 63) / 64 * 64, std::byte{0});
    std::memcpy(r.data(), frame.data(), keep);
    return r;
}

TEST_F(SimSnifferFilter, RoceBitsLeaveRoceFramesOnTheWireWhole) {
    const auto f = roce_write();
    ASSERT_EQ(f.size(), 174u);
    ASSERT_EQ(f[36], std::byte{0x12});
    ASSERT_EQ(f[37], std::byte{0xb7});
    // --no-roce-payload-v4 (example 11's documented command line) and --no-roce-v4: the frame is kept whole, so the
    // example's pcap conversion, which reads it as UDP, gets every record right.
    EXPECT_EQ(capture(41, k_no_roce4_payload, f), record_of(f, f.size()));
    EXPECT_EQ(capture(41, k_no_roce4, f), record_of(f, f.size()));
}

TEST_F(SimSnifferFilter, UdpBitsApplyToRoceFrames) {
    const auto f = roce_write();
    // --no-udp-payload-v4: Ethernet, IPv4 and UDP headers only (42 bytes), as the converter expects for UDP.
    EXPECT_EQ(capture(42, k_no_udp4_payload, f), record_of(f, 42));
    // --no-udp-v4: dropped.
    EXPECT_TRUE(capture(42, k_no_udp4, f).empty());
    // UDP bits come before the RoCEv2 ones.
    EXPECT_EQ(capture(42, k_no_udp4_payload | k_no_roce4_payload, f), record_of(f, 42));
}

TEST_F(SimSnifferFilter, RoceBitsApplyToTheSwappedPort) {
    const auto f = port_swapped(roce_write());
    // --no-roce-payload-v4: headers up to the RETH (14 + 20 + 8 + 12 + 16 = 70 bytes).
    EXPECT_EQ(capture(43, k_no_roce4_payload, f), record_of(f, 70));
    // --no-roce-v4: dropped; a drop bit wins over a payload bit.
    EXPECT_TRUE(capture(43, k_no_roce4, f).empty());
    EXPECT_TRUE(capture(43, k_no_roce4 | k_no_udp4_payload, f).empty());
}

}  // namespace
