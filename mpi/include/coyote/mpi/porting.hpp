// coyote-mpi: one-call replacement of Coyote's TCP initRDMA for MPI programs.
#pragma once

#include <cstdint>

#include <coyote/cThread.hpp>
#include <coyote/mpi/communicator.hpp>

namespace coyote::mpi {

/// `thread.initRDMA(buffer_size, port, ip)` for MPI programs: wires `thread`'s queue pair with `peer_rank`
/// over MPI and returns the registered buffer. Afterwards thread.connSync(comm.rank() < peer_rank) works.
void* initRDMA(cThread& thread, const Communicator& comm, int peer_rank, uint64_t buffer_size);

}  // namespace coyote::mpi
