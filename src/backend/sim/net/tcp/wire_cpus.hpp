// coyote-mpi sim backend: the CPUs the TCP wire's threads run on (COYOTE_SIM_WIRE_CPUS).
#pragma once

#include <sched.h>

#include <optional>
#include <string>

namespace coyote::detail::sim::net {

/// The CPUs the threads of the TCP wire (coyote-wire-rx, coyote-wire-tx, coyote-accept) are placed on, from
/// the setting `setting`: "inherit" (nullopt: the threads keep the binding of the thread that starts them, the
/// rank's), "all" (every CPU the process may use, its cgroup's cpuset as hwloc reads it) or a CPU list ("0-3,8"),
/// of which at least one CPU must be usable (the others are dropped). Throws a coyote::Error naming
/// COYOTE_SIM_WIRE_CPUS for a malformed or unusable list. nullopt also when the set is the caller's binding.
std::optional<cpu_set_t> wire_thread_cpus(const std::string& setting);

/// For the setting's check: what is wrong with `value`, nullopt when it is fine.
std::optional<std::string> wire_cpus_problem(const std::string& value);

/// Places the calling thread on `cpus` (a no-op for nullopt; a failure leaves it where it is: placement is a
/// matter of speed, not of correctness).
void place_wire_thread(const std::optional<cpu_set_t>& cpus) noexcept;

}  // namespace coyote::detail::sim::net
