// coyote-mpi: the MPI bootstrap layer (include this one header).
#pragma once

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>
#include <coyote/mpi/environment.hpp>
#include <coyote/mpi/oob.hpp>
#include <coyote/mpi/porting.hpp>
#include <coyote/mpi/topology.hpp>
#include <coyote/mpi/wiring.hpp>
