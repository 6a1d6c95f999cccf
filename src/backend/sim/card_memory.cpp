// coyote-mpi sim backend: emulated card memory, 2 MiB chunks shadowing host addresses, allocated on first write.
#include "backend/sim/card_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <coyote/error.hpp>

#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

/// A read-only chunk of zeros (the kernel's zero page backs it, it costs no memory).
const std::byte* zero_chunk() {
    static const Mapping zeros = [] {
        void* p = ::mmap(nullptr, CardMemory::k_chunk, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw_errno("mmap", "zero page for card memory");
        return Mapping(p, CardMemory::k_chunk);
    }();
    return zeros.bytes();
}

}  // namespace

void CardMemory::reserve(uint64_t addr, uint64_t len) {
    if (len == 0) return;
    const uint64_t first = addr / k_chunk;
    const uint64_t last = (addr + len - 1) / k_chunk;
    std::vector<uint64_t> missing;
    for (uint64_t c = first; c <= last; ++c)
        if (chunks_.find(c) == chunks_.end()) missing.push_back(c);
    if (used() + missing.size() * k_chunk > capacity_) {
        throw_error(Errc::resource_exhausted, "card memory",
                    "card memory of " + std::to_string(capacity_ >> 20) + " MiB is exhausted (" +
                        std::to_string(used() >> 20) + " MiB in use, " + std::to_string(missing.size() * 2) +
                        " MiB more needed for " + hex(addr) + ", len " + std::to_string(len) +
                        "); raise card_capacity in COYOTE_SIM_SHELL");
    }
    for (uint64_t c : missing) {
        void* p = ::mmap(nullptr, k_chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw_errno("mmap", "card memory chunk for " + hex(c * k_chunk));
        chunks_.emplace(c, Mapping(p, k_chunk));
    }
}

std::span<std::byte> CardMemory::write_window(uint64_t addr, uint64_t len) {
    const uint64_t off = addr % k_chunk;
    const uint64_t n = std::min(len, k_chunk - off);
    auto it = chunks_.find(addr / k_chunk);
    if (it == chunks_.end()) {
        reserve(addr, n);
        it = chunks_.find(addr / k_chunk);
    }
    return {it->second.bytes() + off, static_cast<size_t>(n)};
}

std::span<const std::byte> CardMemory::read_window(uint64_t addr, uint64_t len) const {
    const uint64_t off = addr % k_chunk;
    const uint64_t n = std::min(len, k_chunk - off);
    auto it = chunks_.find(addr / k_chunk);
    const std::byte* base = it == chunks_.end() ? zero_chunk() : it->second.bytes();
    return {base + off, static_cast<size_t>(n)};
}

void CardMemory::release(uint64_t addr, uint64_t len) noexcept {
    if (len == 0) return;
    const uint64_t end = addr + len;
    for (uint64_t c = addr / k_chunk; c <= (end - 1) / k_chunk; ++c) {
        auto it = chunks_.find(c);
        if (it == chunks_.end()) continue;
        const uint64_t cs = c * k_chunk;
        const uint64_t s = std::max(cs, addr);
        const uint64_t e = std::min(cs + k_chunk, end);
        if (s == cs && e == cs + k_chunk)
            chunks_.erase(it);
        else
            std::memset(it->second.bytes() + (s - cs), 0, static_cast<size_t>(e - s));
    }
}

}  // namespace coyote::detail::sim
