// coyote-mpi collectives engine: tuning constants and small helpers shared by the engine's own sources (not
// included by the algorithms).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "collectives/engine/channel.hpp"
#include "collectives/engine/schedule.hpp"

namespace coyote::detail::coll::engine_detail {

using Clock = std::chrono::steady_clock;

constexpr uint64_t k_spin_passes = 64;  ///< idle schedule passes before yielding
constexpr uint64_t k_flush_passes = 16; ///< yielding passes between credit flushes / p2p progress
constexpr uint32_t k_windows_per_channel = 4; ///< direct-placement windows a channel's schedules hold at once
static_assert(k_windows_per_channel <= std::tuple_size_v<decltype(Channel::wins)>,
              "windows in use occupy slots of the window cache");
constexpr uint32_t k_ring_write_min = 16u << 10; ///< copy chunks of at least this size go into the peer's ring unstaged
constexpr uint64_t k_idle_copy_piece = 64u << 10; ///< idle copy per idle schedule pass
constexpr uint64_t k_idle_copy_max = 256u << 10;  ///< larger idle copies run after the schedule
constexpr uint32_t k_send_burst = 4;              ///< chunks a send step posts per schedule pass
/// Teardown barrier: how long it still waits once a peer was found gone (one on another host that has left the
/// barrier closes its liveness connection, which reads as gone, while the barrier is about to complete here).
constexpr std::chrono::milliseconds k_teardown_grace{500};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Copies up to `max` bytes of `c` and advances it.
inline void run_idle_copy(IdleCopy& c, uint64_t max = ~0ull) noexcept {
    const uint64_t n = std::min(max, c.bytes);
    if (n != 0 && c.dst != c.src) std::memcpy(c.dst, c.src, n);
    c.dst += n;
    c.src += n;
    c.bytes -= n;
}

/// Reads a 64-bit word of the control area that a peer writes.
inline uint64_t load_u64(const std::byte* p) noexcept {
    return std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(p)).load(std::memory_order_acquire);
}

}  // namespace coyote::detail::coll::engine_detail
