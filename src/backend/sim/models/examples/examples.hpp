// coyote-mpi sim backend: the user-logic models of Coyote's example vFPGAs (examples 03 - 12), by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <coyote/sim/user_logic.hpp>

namespace coyote::detail::sim::examples {

// The user-logic interface the models of this folder implement.
using coyote::sim::InputChunk;
using coyote::sim::k_n_dests;
using coyote::sim::Shell;
using coyote::sim::StreamKind;
using coyote::sim::UserLogic;

/// Bytes of one 512-bit stream beat.
inline constexpr std::size_t k_beat = 64;
/// Nanoseconds per cycle of the examples' timers (250 MHz).
inline constexpr uint64_t k_clock_ns = 4;

/// The model of a Coyote example vFPGA called `name` ("aes_ecb", ...), or null if there is none.
std::unique_ptr<coyote::sim::UserLogic> make(const std::string& name);

/// The names make() knows, comma separated (for error messages).
const char* names() noexcept;

/// Factories, one per file of this folder.
std::unique_ptr<coyote::sim::UserLogic> make_aes_ecb();
std::unique_ptr<coyote::sim::UserLogic> make_aes_cbc();
std::unique_ptr<coyote::sim::UserLogic> make_user_interrupts();
std::unique_ptr<coyote::sim::UserLogic> make_perf_fpga();
std::unique_ptr<coyote::sim::UserLogic> make_vadd_int32();
std::unique_ptr<coyote::sim::UserLogic> make_euclidean_distance();
std::unique_ptr<coyote::sim::UserLogic> make_cosine_similarity();
std::unique_ptr<coyote::sim::UserLogic> make_packet_sniffer();

}  // namespace coyote::detail::sim::examples
