// coyote-mpi sim backend: ranks on the node and the CPUs of this process (node_cores.hpp).
#include "backend/sim/node_cores.hpp"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "detail/settings.hpp"

namespace coyote::detail::sim {

int64_t local_ranks() {
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
        if (const std::optional<std::string> v = settings::foreign(name)) {
            char* end = nullptr;
            const long long n = std::strtoll(v->c_str(), &end, 10);
            if (end != v->c_str() && n > 0) return n;
        }
    return 0;
}

int64_t usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? online : 1;
}

}  // namespace coyote::detail::sim
