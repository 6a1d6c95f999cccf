// coyote-mpi sim backend: the shell configuration of a simulated vFPGA (reference section 7).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coyote::detail::sim {

/// Features and sizes of the simulated shell.
struct ShellConfig {
    bool en_avx = true;
    bool en_wb = true;
    bool en_strm = true;
    bool en_mem = true;
    bool en_pr = true;
    bool en_rdma = true;
    bool en_tcp = false;
    uint32_t n_xdma_chan = 4;
    uint32_t n_fpga_reg = 1;
    /// Emulated card memory (bytes); only what is used is allocated.
    uint64_t card_capacity = 16ULL << 30;

    /// The packed shell word (en_avx bit 0 ... n_fpga_reg bits 55:48).
    uint64_t shell_word() const noexcept;
    /// The control word: AVX/writeback flow, TLB geometry, 4 KiB small and 2 MiB large pages.
    uint64_t control_word() const noexcept;
};

/// Applies "key=value,key=value" settings (keys: avx wb strm mem pr rdma tcp n_xdma_chan n_fpga_reg
/// card_capacity) to `cfg`. `origin` names the source in error messages. Throws invalid_argument on
/// unknown keys or bad values.
void apply_shell_settings(ShellConfig& cfg, const std::string& settings, const std::string& origin);

/// Applies a configuration file: one key=value per line, '#' starts a comment.
void apply_shell_config_file(ShellConfig& cfg, const std::string& path);
/// What apply_shell_settings would refuse in `text` (applied to a default shell), nullopt when nothing.
std::optional<std::string> shell_settings_problem(const std::string& text, const std::string& origin);
/// Applies the text of a configuration file (as apply_shell_config_file); errors name `origin`:<line>.
void apply_shell_config_text(ShellConfig& cfg, std::string_view text, const std::string& origin);

/// Defaults, then COYOTE_SIM_CONFIG (file), then COYOTE_SIM_SHELL (overrides the file).
ShellConfig load_shell_config();

/// Throws Errc::no_device (naming `call`) unless vFPGA `vfid` exists in `cfg`, the shell of sim device `device`.
void check_vfid_exists(const ShellConfig& cfg, uint32_t device, int32_t vfid, const char* call);

}  // namespace coyote::detail::sim
