// The names of the example models (COYOTE_SIM_MODEL=<name>) and their factories.
#include <array>
#include <utility>

#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

namespace {

using Factory = std::unique_ptr<coyote::sim::UserLogic> (*)();

constexpr std::array<std::pair<const char*, Factory>, 8> k_models{{
    {"aes_ecb", make_aes_ecb},                       // 03_multitenancy
    {"user_interrupts", make_user_interrupts},       // 04_user_interrupts
    {"perf_fpga", make_perf_fpga},                   // 07_perf_fpga
    {"aes_cbc", make_aes_cbc},                       // 08_multithreading
    {"euclidean_distance", make_euclidean_distance}, // 10_app_reconfiguration
    {"cosine_similarity", make_cosine_similarity},   // 10_app_reconfiguration
    {"packet_sniffer", make_packet_sniffer},         // 11_packet_sniffer
    {"vadd_int32", make_vadd_int32},                 // 12_spinal_hdl
}};

}  // namespace

std::unique_ptr<coyote::sim::UserLogic> make(const std::string& name) {
    for (const auto& [n, f] : k_models)
        if (name == n) return f();
    return nullptr;
}

const char* names() noexcept {
    return "aes_ecb, user_interrupts, perf_fpga, aes_cbc, euclidean_distance, cosine_similarity, packet_sniffer, "
           "vadd_int32";
}

}  // namespace coyote::detail::sim::examples
