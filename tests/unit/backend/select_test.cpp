// Backend selection: COYOTE_BACKEND wins; unset, a host with any Coyote device file uses hw (a vFPGA without a file
// is then the hw backend's error, not a silent run on the simulator), a host without one uses sim.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "backend/device.hpp"

namespace fs = std::filesystem;
using coyote::detail::choose_backend;

namespace {

/// A scratch stand-in for /dev, and COYOTE_BACKEND unset for the test (restored after).
class Select : public ::testing::Test {
protected:
    void SetUp() override {
        if (const char* v = std::getenv("COYOTE_BACKEND")) saved_ = v;
        ::unsetenv("COYOTE_BACKEND");
        char tmpl[] = "/tmp/coyote-select-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        if (saved_) ::setenv("COYOTE_BACKEND", saved_->c_str(), 1);
        fs::remove_all(dir_);
    }
    void touch(const std::string& name) { std::ofstream(dir_ + "/" + name).put('\n'); }

    std::string dir_;
    std::optional<std::string> saved_;
};

} // namespace

TEST_F(Select, NoDeviceFileMeansSim) {
    touch("null");
    touch("coyote"); // not a device file of the driver
    EXPECT_EQ(choose_backend(dir_, 0, 0), "sim");
    EXPECT_EQ(choose_backend(dir_ + "/missing", 0, 0), "sim");
}

TEST_F(Select, AHostWithADeviceFileUsesHwForEveryVfpga) {
    touch("coyote_fpga_0_v0");
    touch("coyote_fpga_0_reconfig");
    EXPECT_EQ(choose_backend(dir_, 0, 0), "hw");
    EXPECT_EQ(choose_backend(dir_, 0, 3), "hw"); // a vFPGA the shell lacks: the hw backend's open names it
    EXPECT_EQ(choose_backend(dir_, 1, 0), "hw"); // a device the host lacks, likewise
}

TEST_F(Select, CoyoteBackendOverridesTheDeviceFiles) {
    touch("coyote_fpga_0_v0");
    ::setenv("COYOTE_BACKEND", "sim", 1);
    EXPECT_EQ(choose_backend(dir_, 0, 0), "sim");
    fs::remove(dir_ + "/coyote_fpga_0_v0");
    ::setenv("COYOTE_BACKEND", "hw", 1);
    EXPECT_EQ(choose_backend(dir_, 0, 0), "hw");
}
