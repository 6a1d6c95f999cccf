// coyote-mpi: the MPI layer: bootstrap, wiring, placement and collectives (include this one header).
#pragma once

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/bootstrap_options.hpp>
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/collectives_types.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>
#include <coyote/mpi/environment.hpp>
#include <coyote/mpi/oob.hpp>
#include <coyote/mpi/porting.hpp>
#include <coyote/mpi/topology.hpp>
#include <coyote/mpi/wiring.hpp>
