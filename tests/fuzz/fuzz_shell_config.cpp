// Fuzz target: the sim shell configuration, as the COYOTE_SIM_SHELL string (first byte even) or as the text of a
// COYOTE_SIM_CONFIG file (first byte odd).
#include "backend/sim/shell_config.hpp"
#include "fuzz_support.hpp"

#include <string>

namespace sim = coyote::detail::sim;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view text = coyote::fuzz::text_of(data + 1, size - 1);
    sim::ShellConfig cfg;
    const bool ok = coyote::fuzz::accepted([&] {
        if ((data[0] & 1) != 0) sim::apply_shell_config_text(cfg, text, "fuzz file");
        else sim::apply_shell_settings(cfg, std::string(text), "fuzz string");
    });
    if (!ok) return 0;
    // Whatever was accepted stays inside the documented ranges.
    coyote::fuzz::require(cfg.n_xdma_chan >= 1 && cfg.n_xdma_chan <= 4, "n_xdma_chan out of 1..4");
    coyote::fuzz::require(cfg.n_fpga_reg >= 1 && cfg.n_fpga_reg <= 16, "n_fpga_reg out of 1..16");
    coyote::fuzz::require(cfg.card_capacity >= (2ULL << 20) && cfg.card_capacity <= (1ULL << 46),
                          "card_capacity out of 2 MiB..64 TiB");
    (void)cfg.shell_word();
    (void)cfg.control_word();
    return 0;
}
