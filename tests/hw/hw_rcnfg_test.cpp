// cRcnfg on the hw backend against the fake driver: loads through the reconfiguration device, file checks first.
#include <coyote/cRcnfg.hpp>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>

#include "rcnfg/bitstream_file.hpp"
#include "unit/test_support.hpp"

namespace {

std::string write_file(const std::string& name, const std::vector<char>& bytes) {
    return coyote_test::write_scratch_file("coyote-hw-rcnfg", name, bytes);
}

/// A small .bin: padding words, the sync word, then some configuration words.
std::vector<char> fake_bin() {
    std::vector<char> b(4096 + 68, '\x20');
    std::fill(b.begin(), b.begin() + 64, '\xff');
    const char sync[4] = {'\xaa', '\x99', '\x55', '\x66'};
    std::copy(sync, sync + 4, b.begin() + 64);
    return b;
}

std::string error_text(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        return e.what();
    }
    return "";
}

TEST(HwRcnfg, LoadsAppAndShellThroughTheReconfigurationDevice) {
    coyote::cRcnfg rcnfg(0);
    const std::string bin = write_file("app.bin", fake_bin());
    EXPECT_EQ(error_text([&] { rcnfg.reconfigureApp(bin, 0); }), "");
    EXPECT_EQ(error_text([&] { rcnfg.reconfigureShell(bin); }), "");
    EXPECT_EQ(rcnfg.getReconfigurationCount(), 2u);
}

TEST(HwRcnfg, FileChecksComeFirst) {
    coyote::cRcnfg rcnfg(0);
    auto cut = fake_bin();
    cut.pop_back();
    EXPECT_NE(error_text([&] { rcnfg.reconfigureApp(write_file("cut.bin", cut), 0); }).find("truncated"), std::string::npos);
    EXPECT_NE(error_text([&] { rcnfg.reconfigureApp(write_file("zeros.bin", std::vector<char>(4096, 0)), 0); })
                  .find("sync word"),
              std::string::npos);
    const auto sim = coyote::detail::rcnfg::encode_sim_bitstream({coyote::detail::rcnfg::SimBitstream::Kind::app, "vadd", ""});
    EXPECT_NE(error_text([&] { rcnfg.reconfigureApp(write_file("sim.bin", sim), 0); }).find("sim bitstream"),
              std::string::npos);
    EXPECT_NE(error_text([&] { rcnfg.reconfigureShell("/nonexistent/shell.bin"); }).find("no such file"),
              std::string::npos);
    // A .bit with Vivado's header is named as such (it read as "truncated: not whole 32-bit words").
    std::vector<char> bit = {0x00, 0x09, 0x0f, static_cast<char>(0xf0), 0x0f, static_cast<char>(0xf0), 0x0f,
                             static_cast<char>(0xf0), 0x0f, static_cast<char>(0xf0), 0x00, 0x00, 0x01, 'a'};
    const auto bin = fake_bin();
    bit.insert(bit.end(), bin.begin(), bin.end());
    EXPECT_NE(error_text([&] { rcnfg.reconfigureApp(write_file("app.bit", bit), 0); }).find("a .bit file"),
              std::string::npos);
    // A vFPGA the shell lacks is refused before the driver gets it (the real driver loads into any region number).
    const std::string e = error_text([&] { rcnfg.reconfigureApp(write_file("app5.bin", bin), 5); });
    EXPECT_NE(e.find("/dev/coyote_fpga_0_v5"), std::string::npos) << e;
    EXPECT_EQ(rcnfg.getReconfigurationCount(), 0u);
}

}  // namespace
