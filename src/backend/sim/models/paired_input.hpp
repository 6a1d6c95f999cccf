// coyote-mpi sim backend: the input side of the two-operand models (vadd, reduce): input dests 0 and 1 as
// byte streams, combined pairwise in order; data that has no partner yet is buffered.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace coyote::detail::sim {

/// The byte streams of input dests 0 and 1 and their pairing.
class PairedInput {
public:
    /// Bytes buffered for dest `d` (0 or 1).
    std::size_t avail(uint32_t d) const { return buf_[d].size() - head_[d]; }
    /// Bytes buffered for both dests.
    std::size_t buffered() const { return avail(0) + avail(1); }

    /// Drops everything buffered.
    void clear() {
        for (uint32_t d = 0; d < 2; ++d) {
            buf_[d].clear();
            head_[d] = 0;
        }
    }

    /// Adds `data` of dest `d` (0 or 1) and calls `combine(a, b, n)` for every run of `n` paired bytes (a multiple
    /// of `unit`), `a` from dest 0 and `b` from dest 1. New data that meets buffered data of the other dest is
    /// combined straight from `data`, without a copy.
    template <typename Combine>
    void feed(uint32_t d, std::span<const std::byte> data, std::size_t unit, Combine&& combine) {
        const uint32_t o = 1 - d;
        if (avail(d) == 0) {
            const std::size_t n = std::min(avail(o), data.size()) / unit * unit;
            if (n > 0) {
                combine(d == 0 ? data.data() : head(o), d == 0 ? head(o) : data.data(), n);
                consume(o, n);
                data = data.subspan(n);
            }
        }
        buf_[d].insert(buf_[d].end(), data.begin(), data.end());
        const std::size_t n = std::min(avail(0), avail(1)) / unit * unit;
        if (n > 0) {
            combine(head(0), head(1), n);
            consume(0, n);
            consume(1, n);
        }
    }

private:
    const std::byte* head(uint32_t d) const { return buf_[d].data() + head_[d]; }

    void consume(uint32_t d, std::size_t n) {
        head_[d] += n;
        if (head_[d] == buf_[d].size()) {
            buf_[d].clear();
            head_[d] = 0;
        } else if (head_[d] > (1u << 20) && head_[d] * 2 > buf_[d].size()) {
            buf_[d].erase(buf_[d].begin(), buf_[d].begin() + static_cast<std::ptrdiff_t>(head_[d]));
            head_[d] = 0;
        }
    }

    std::array<std::vector<std::byte>, 2> buf_;
    std::array<std::size_t, 2> head_{};
};

}  // namespace coyote::detail::sim
