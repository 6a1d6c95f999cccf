// coyote-mpi collectives: checking CollectiveOptions and agreeing on them across ranks (internal).
#pragma once

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/collectives.hpp>

#include "collectives/engine/engine.hpp"

#include <exception>
#include <string>

namespace coyote::detail::coll {

/// Why `o` cannot be used ("" when it can).
std::string validate(const mpi::CollectiveOptions& o);

/// Exchanges every rank's options; throws this rank's `problem` (when not empty) or `offload_error` (when set),
/// then Errc::invalid_argument when another rank's options are invalid or differ. Returns whether any node runs
/// more ranks than it has cores.
bool agree_options(const mpi::Communicator& comm, const mpi::CollectiveOptions& o, const std::string& problem,
                   const std::exception_ptr& offload_error, const mpi::BootstrapOptions& boot);

/// What CollectiveOptions::direct_auto stands for.
uint64_t auto_direct_min(bool oversubscribed) noexcept;

/// The engine's part of the (agreed) options.
EngineConfig engine_config(const mpi::CollectiveOptions& o, bool oversubscribed) noexcept;

/// The algorithm switch points of the options.
Thresholds thresholds(const mpi::CollectiveOptions& o) noexcept;

}  // namespace coyote::detail::coll
