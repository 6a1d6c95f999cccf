// coyote-mpi: the fixed-size slots of QpSet's queue pair exchange, as other ranks fill them (internal; fuzzed).
#pragma once

#include <coyote/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace coyote::mpi::detail {

inline constexpr uint32_t k_slot_magic = 0x51505331; // "QPS1"
/// Largest exportQp blob a rank may announce (the sim's is 320 bytes); larger is a protocol error.
inline constexpr uint32_t k_max_slot_blob = 64 * 1024;

/// Header of one exchange slot; the exportQp blob follows.
struct SlotHeader {
    uint32_t magic;
    uint32_t length; ///< blob bytes (0: no queue pair for this destination)
    int32_t src;
    int32_t dst;
};

/// The blob in rank `r`'s slot for rank `me` (`slot` is the whole fixed-size slot), checked against what `me`
/// expects (`wanted`: `me` has a queue pair to `r`); nullopt where neither side has a queue pair. Throws
/// Errc::protocol on a malformed slot or asymmetric peer lists.
std::optional<std::span<const std::byte>> slot_blob(std::span<const std::byte> slot, int r, int me, bool wanted);

}  // namespace coyote::mpi::detail
