// coyote-mpi: Coyote's GPU header. Coyote declares its GPU (HIP/HSA) helpers here only when built with GPU
// support; this runtime has no GPU support in this build, so the header only keeps `#include <coyote/cGpu.hpp>`
// (which cThread.hpp does too) compiling. A CoyoteAllocType::GPU allocation fails with Errc::not_supported.
#pragma once

#include <coyote/cDefs.hpp>
