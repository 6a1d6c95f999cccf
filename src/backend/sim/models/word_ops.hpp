// coyote-mpi sim backend: the 32-bit lane operations of the copy-like models (+1, int32 add, float32 add) over byte
// buffers (word_ops.cpp: 128 bytes a step, in AVX2 where the CPU has it). From 128 KiB on, an operation whose output
// is its input or apart from it is shared among the model threads (lane_pool.hpp); each may throw only for a
// malformed COYOTE_SIM_MODEL_THREADS.
#pragma once

#include <cstddef>

namespace coyote::detail::sim::lanes {

/// out = a + 1 per uint32 lane (wrapping); n is a multiple of 4.
void increment_u32(const std::byte* a, std::byte* out, std::size_t n);

/// out = a + b per uint32 lane (two's complement wrap-around, as int32); n is a multiple of 4.
void add_u32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n);

/// out = a + b per float32 lane; n is a multiple of 4.
void add_f32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n);

}  // namespace coyote::detail::sim::lanes
