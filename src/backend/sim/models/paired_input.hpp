// coyote-mpi sim backend: the input side of the two-operand models (vadd, reduce): input dests 0 and 1 as
// byte streams, combined pairwise in order. Host input that has no partner yet is held in place (InputHold) when
// the shell allows it, else copied.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "backend/sim/models/input_hold.hpp"

namespace coyote::detail::sim {

/// The byte streams of input dests 0 and 1 and their pairing. Each stream is: copied bytes, then held chunks,
/// then (during feed) the chunk being fed.
class PairedInput {
public:
    /// Bytes not yet paired on dest `d` (0 or 1).
    std::size_t avail(uint32_t d) const {
        std::size_t n = buf_[d].size() - head_[d] + live_[d].size();
        for (const auto& h : held_[d]) n += h.size();
        return n;
    }
    /// Bytes not yet paired on both dests.
    std::size_t buffered() const { return avail(0) + avail(1); }

    /// Drops everything not yet paired (held chunks are released).
    void clear(coyote::sim::Shell& shell) {
        for (uint32_t d = 0; d < 2; ++d) {
            buf_[d].clear();
            head_[d] = 0;
            release_all(shell, d);
        }
    }

    /// Copies the held chunks and releases them (InputHolder::spill).
    void spill(coyote::sim::Shell& shell) {
        for (uint32_t d = 0; d < 2; ++d) copy_held(shell, d);
    }

    /// Adds `data` of dest `d` (0 or 1) and calls `combine(a, b, n)` for every run of `n` paired bytes (a multiple
    /// of `unit`), `a` from dest 0 and `b` from dest 1, straight from the chunks where they are contiguous.
    template <typename Combine>
    void feed(coyote::sim::Shell& shell, uint32_t d, std::span<const std::byte> data, std::size_t unit,
              Combine&& combine) {
        live_[d] = data;
        for (;;) {
            const auto a = front(0), b = front(1);
            const std::size_t n = std::min(a.size(), b.size()) / unit * unit;
            if (n > 0) {
                combine(a.data(), b.data(), n);
                consume(shell, 0, n);
                consume(shell, 1, n);
                continue;
            }
            // A front shorter than a unit with more behind it (odd chunk sizes): make that stream contiguous.
            bool merged = false;
            for (uint32_t s = 0; s < 2; ++s) {
                if (front(s).size() < unit && avail(s) >= unit && avail(1 - s) >= unit) {
                    copy_held(shell, s);
                    copy_live(s);
                    merged = true;
                }
            }
            if (!merged) break;
        }
        if (live_[d].empty()) return;
        auto* hold = dynamic_cast<InputHold*>(&shell);
        if (hold != nullptr && hold->hold_input()) {
            held_[d].push_back(live_[d]);
            live_[d] = {};
            return;
        }
        copy_held(shell, d); // copied bytes come first in the stream
        copy_live(d);
    }

private:
    std::span<const std::byte> front(uint32_t d) const {
        if (head_[d] < buf_[d].size()) return {buf_[d].data() + head_[d], buf_[d].size() - head_[d]};
        if (!held_[d].empty()) return held_[d].front();
        return live_[d];
    }

    void consume(coyote::sim::Shell& shell, uint32_t d, std::size_t n) {
        if (head_[d] < buf_[d].size()) {
            head_[d] += n;
            if (head_[d] == buf_[d].size()) {
                buf_[d].clear();
                head_[d] = 0;
            } else if (head_[d] > (1u << 20) && head_[d] * 2 > buf_[d].size()) {
                buf_[d].erase(buf_[d].begin(), buf_[d].begin() + static_cast<std::ptrdiff_t>(head_[d]));
                head_[d] = 0;
            }
        } else if (!held_[d].empty()) {
            held_[d].front() = held_[d].front().subspan(n);
            if (held_[d].front().empty()) {
                held_[d].pop_front();
                release(shell, d);
            }
        } else {
            live_[d] = live_[d].subspan(n);
        }
    }

    void copy_live(uint32_t d) {
        buf_[d].insert(buf_[d].end(), live_[d].begin(), live_[d].end());
        live_[d] = {};
    }

    void copy_held(coyote::sim::Shell& shell, uint32_t d) {
        while (!held_[d].empty()) {
            buf_[d].insert(buf_[d].end(), held_[d].front().begin(), held_[d].front().end());
            held_[d].pop_front();
            release(shell, d);
        }
    }

    void release_all(coyote::sim::Shell& shell, uint32_t d) {
        while (!held_[d].empty()) {
            held_[d].pop_front();
            release(shell, d);
        }
        live_[d] = {};
    }

    static void release(coyote::sim::Shell& shell, uint32_t d) {
        if (auto* hold = dynamic_cast<InputHold*>(&shell)) hold->release_input(d);
    }

    std::array<std::vector<std::byte>, 2> buf_;
    std::array<std::size_t, 2> head_{};
    std::array<std::deque<std::span<const std::byte>>, 2> held_;
    std::array<std::span<const std::byte>, 2> live_;
};

}  // namespace coyote::detail::sim
