// coyote-mpi sim backend: emulated card memory (HBM/DDR of the FPGA card).
//
// Card memory shadows host virtual addresses, as on the real shell where the driver gives every mapped
// host page a card page: the card copy of [addr, addr+len) is what LOCAL_OFFLOAD fills, LOCAL_SYNC
// reads back, and STRM_CARD commands use. It is kept in 2 MiB chunks allocated on first write;
// reading card memory that was never written gives zeros. Not thread-safe (the vFPGA's model lock
// protects it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>

#include "detail/handles.hpp"

namespace coyote::detail::sim {

class CardMemory {
public:
    static constexpr uint64_t k_chunk = 2ULL << 20;

    explicit CardMemory(uint64_t capacity) : capacity_(capacity) {}

    /// Allocates the chunks [addr, addr+len) touches; throws resource_exhausted (allocating nothing)
    /// when the card capacity would be exceeded.
    void reserve(uint64_t addr, uint64_t len);
    /// Writable card bytes at `addr`, at most `len`, never crossing a chunk (reserve() first).
    std::span<std::byte> write_window(uint64_t addr, uint64_t len);
    /// Readable card bytes at `addr`, at most `len`, never crossing a chunk (zeros if never written).
    std::span<const std::byte> read_window(uint64_t addr, uint64_t len) const;
    /// Forgets [addr, addr+len): chunks inside are freed, partly covered ones zeroed there.
    void release(uint64_t addr, uint64_t len) noexcept;

    uint64_t capacity() const noexcept { return capacity_; }
    uint64_t used() const noexcept { return chunks_.size() * k_chunk; }

private:
    uint64_t capacity_;
    std::unordered_map<uint64_t, Mapping> chunks_; // keyed by addr / k_chunk
};

}  // namespace coyote::detail::sim
