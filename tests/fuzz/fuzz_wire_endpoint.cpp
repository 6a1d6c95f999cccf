// Fuzz target: the sim NIC's endpoint bytes (what a peer sends after its ibvQ): decode_endpoint.
#include "backend/sim/net/wire_format.hpp"
#include "fuzz_support.hpp"

#include <cstring>

namespace sim = coyote::detail::sim;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    sim::Endpoint ep;
    if (!coyote::fuzz::accepted([&] { ep = sim::decode_endpoint(coyote::fuzz::bytes_of(data, size)); })) return 0;
    // Accepted: a well-formed endpoint, whose names fit and whose encoding decodes to the same fields.
    coyote::fuzz::require(size == sim::k_endpoint_size, "accepted endpoint of the wrong size");
    coyote::fuzz::require(
        ep.state_name.size() <= sim::k_segment_name_max && ep.nic_name.size() <= sim::k_segment_name_max,
        "segment name longer than the limit");
    const auto again = sim::decode_endpoint(sim::encode_endpoint(ep));
    coyote::fuzz::require(again.boot_id == ep.boot_id && again.netns == ep.netns && again.uid == ep.uid &&
                              again.pid == ep.pid && again.ip == ep.ip && again.wire_port == ep.wire_port &&
                              again.key == ep.key && again.state_name == ep.state_name &&
                              again.nic_name == ep.nic_name,
                          "endpoint does not survive encode/decode");
    return 0;
}
