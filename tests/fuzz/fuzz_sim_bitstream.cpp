// Fuzz target: the sim bitstream format (decode_sim_bitstream), and the shell settings a shell bitstream carries.
// The first byte picks whether the target appends the correct CRC-32, so that the fuzzer gets past the checksum.
#include "backend/sim/shell_config.hpp"
#include "fuzz_support.hpp"
#include "rcnfg/bitstream_file.hpp"

#include <vector>

namespace rc = coyote::detail::rcnfg;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const bool fix_crc = (data[0] & 1) != 0;
    std::vector<char> image(reinterpret_cast<const char*>(data) + 1, reinterpret_cast<const char*>(data) + size);
    if (fix_crc) {
        const uint32_t c = rc::crc32(image);
        for (int i = 0; i < 4; ++i) image.push_back(static_cast<char>((c >> (8 * i)) & 0xff));
    }
    rc::SimBitstream b;
    if (!coyote::fuzz::accepted([&] { b = rc::decode_sim_bitstream(image, "fuzz input"); })) return 0;
    coyote::fuzz::require(b.model.size() <= rc::k_max_sim_text && b.shell_settings.size() <= rc::k_max_sim_text,
                          "accepted text over the limit");
    coyote::fuzz::require(rc::encode_sim_bitstream(b) == image, "decoded bitstream does not re-encode to its image");
    if (b.kind == rc::SimBitstream::Kind::shell) { // what the sim target does with a shell load
        coyote::detail::sim::ShellConfig cfg;
        (void)coyote::fuzz::accepted([&] { coyote::detail::sim::apply_shell_settings(cfg, b.shell_settings, "fuzz"); });
    }
    return 0;
}
