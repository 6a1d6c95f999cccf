// coyote-mpi sim backend: the 32-bit lane operations of the copy-like models (+1, int32 add, float32 add) over byte
// buffers (word_ops.cpp: 128 bytes a step, in AVX2 where the CPU has it; large outputs stored past the caches).
// From 128 KiB on, an operation whose output is its input or apart from it is shared among the model threads
// (lane_pool.hpp); each may throw only for a malformed COYOTE_SIM_MODEL_THREADS.
#pragma once

#include <cstddef>

namespace coyote::detail::sim::lanes {

/// The length from which an operation of `operands` inputs (1 or 2) stores an output that does not overlap its
/// inputs past the caches (non-temporal, where the CPU has AVX2): where the bytes it touches exceed a core's L2.
std::size_t stream_from(unsigned operands) noexcept;

/// out = a + 1 per uint32 lane (wrapping); n is a multiple of 4.
void increment_u32(const std::byte* a, std::byte* out, std::size_t n);

/// out = a + b per uint32 lane (two's complement wrap-around, as int32); n is a multiple of 4.
void add_u32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n);

/// out = a + b per float32 lane; n is a multiple of 4.
void add_f32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n);

}  // namespace coyote::detail::sim::lanes
