// coyote-mpi: Coyote's GPU header. Coyote declares its HIP/HSA helpers here when built with GPU support; this
// runtime has no HIP path, so the header only keeps `#include <coyote/cGpu.hpp>` (which cThread.hpp does too)
// compiling. GPU memory comes from getMem(CoyoteAllocType::GPU) in a build with COYOTE_ENABLE_GPU=ON (CUDA);
// without it the allocation fails with Errc::not_supported naming the option (docs/hardware.md, "GPU memory").
#pragma once

#include <coyote/cDefs.hpp>
