// coyote-mpi sim backend: the packet sniffer's capture buffer in shared memory (see packet_tap.hpp): a header and
// the image of the host buffer. Writers of any process reserve whole records with one CAS on the header's state
// word, copy the frame and then count it as committed; the model copies out what is reserved once every
// reservation is committed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "backend/sim/models/examples/packet_tap.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim::sniffer {

/// The header of a capture buffer; the image starts k_ring_data bytes into the segment.
struct RingHead {
    uint64_t magic = 0;
    uint64_t filter = 0;   ///< the filter CSR at the start
    uint64_t capacity = 0; ///< the image's length (the host buffer's, at most k_ring_max)
    /// Bits 0..31: bytes reserved; 32..62: bytes committed; 63: closed (no more reservations).
    std::atomic<uint64_t> state{0};
};
inline constexpr std::size_t k_ring_data = 64;
static_assert(sizeof(RingHead) <= k_ring_data);
/// The largest capture (the state word counts committed bytes in 31 bits).
inline constexpr uint64_t k_ring_max = (uint64_t{1} << 31) - 64;

/// "/coyote-sim.<uid>.<pid>.sniff<id>": the capture buffer `id` of process `pid`.
std::string ring_name(int32_t pid, uint64_t id);
/// Creates capture buffer `id` of this process for a host buffer of `len` bytes (cut at k_ring_max).
ShmSegment create_ring(uint64_t id, uint64_t len, uint64_t filter);
/// Maps capture buffer `id` of process `pid`; an empty segment when it is gone or not a capture buffer.
ShmSegment open_ring(int32_t pid, uint64_t id) noexcept;

/// Appends `frame`, as the filter keeps it, zero-padded to whole beats and cut at the capacity (beats past the
/// end are dropped, as the example's vFPGA drops them). Lock-free; safe from any process. Never writes past the
/// mapping, whatever the header says.
void ring_append(const ShmSegment& ring, std::span<const std::byte> frame) noexcept;
/// Whether the ring takes no more frames (its capture stopped).
bool ring_closed(const ShmSegment& ring) noexcept;
/// The length of the image every byte of which is written, or false while a writer is mid-frame.
bool ring_settled(const ShmSegment& ring, uint64_t& end) noexcept;
/// Takes no more frames and waits (at most `wait`) for writers mid-frame; returns the image's length.
uint64_t ring_close(const ShmSegment& ring, std::chrono::milliseconds wait) noexcept;

/// A FrameSink that appends to a capture buffer.
class RingSink final : public FrameSink {
public:
    explicit RingSink(const ShmSegment& ring) noexcept : ring_(ring) {}
    void put(std::span<const std::byte> frame) noexcept override { ring_append(ring_, frame); }

private:
    const ShmSegment& ring_;
};

}  // namespace coyote::detail::sim::sniffer
