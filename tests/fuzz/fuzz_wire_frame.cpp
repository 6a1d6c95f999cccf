// Fuzz target: the TCP wire's frame header (decode_frame), as the engine reads it from any connection.
#include "backend/sim/net/wire_format.hpp"
#include "fuzz_support.hpp"

#include <cstring>
#include <string>

namespace sim = coyote::detail::sim;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::array<std::byte, sim::k_frame_header_size> hb{};
    std::memcpy(hb.data(), data, std::min(size, hb.size()));
    sim::FrameHeader h;
    std::string error;
    bool ok = false;
    // decode_frame reports a malformed header through its result; it must never throw.
    try {
        ok = sim::decode_frame(hb, h, error);
    } catch (...) {
        coyote::fuzz::finding("decode_frame threw");
    }
    if (!ok) {
        coyote::fuzz::require(!error.empty(), "rejected frame without a reason");
        return 0;
    }
    // Accepted: the header re-encodes to a frame that decodes to the same fields.
    sim::FrameHeader again;
    std::string error2;
    coyote::fuzz::require(sim::decode_frame(sim::encode_frame(h), again, error2), "re-encoded frame rejected");
    coyote::fuzz::require(again.type == h.type && again.payload_len == h.payload_len && again.req_id == h.req_id &&
                              again.vaddr == h.vaddr && again.len == h.len && again.rkey == h.rkey &&
                              again.last == h.last,
                          "frame does not survive encode/decode");
    return 0;
}
