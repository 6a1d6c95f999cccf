// coyote-mpi sim backend: the user-logic models of Coyote's example vFPGAs (examples 03 - 12), by name.
#pragma once

#include <memory>
#include <string>

#include <coyote/sim/user_logic.hpp>

namespace coyote::detail::sim::examples {

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
