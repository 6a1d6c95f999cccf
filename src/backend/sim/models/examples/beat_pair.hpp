// Two input streams (dests 0 and 1) cut into 512-bit beats and paired beat by beat, as the two-input vFPGAs of
// Coyote's examples 10 and 12 consume them: every beat of a command is 64 bytes but its last, which carries the
// rest and the `last` flag. Data is read straight from the shell's chunk when the other side can pair it, and
// buffered otherwise.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <vector>

#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

/// One beat of one side: its bytes (`keep` of them valid) and whether it ends its command.
struct Beat {
    const std::byte* data;
    std::size_t keep;
    bool last;
};

class BeatPair {
public:
    /// Pairs what it can after `in` (of dest 0 or 1) arrived: calls run(a, b, n) for n whole beats of each side
    /// that do not end a command, and one(beat_a, beat_b) for a pair where at least one beat is short or last.
    template <typename Run, typename One>
    void add(const coyote::sim::InputChunk& in, Run&& run, One&& one) {
        Side& s = side_[in.dest];
        if (s.buffered() > 0)
            s.buf.insert(s.buf.end(), in.data.begin(), in.data.end());
        else
            s.live = in.data;
        s.total += in.data.size();
        if (in.end_of_command) s.ends.push_back(s.total);
        pair(run, one);
        s.keep_rest();
    }

private:
    struct Side {
        std::vector<std::byte> buf;
        std::size_t head = 0;
        std::span<const std::byte> live; // the current chunk, while its callback runs
        std::deque<uint64_t> ends;       // stream offsets where commands end
        uint64_t pos = 0;                // stream offset of the next byte
        uint64_t total = 0;              // stream bytes received

        std::size_t buffered() const { return buf.size() - head; }
        std::span<const std::byte> view() const {
            return buffered() > 0 ? std::span<const std::byte>(buf.data() + head, buffered()) : live;
        }
        uint64_t to_end() const { return ends.empty() ? std::numeric_limits<uint64_t>::max() : ends.front() - pos; }
        /// Whole beats available that do not end a command.
        std::size_t whole_beats() const {
            const uint64_t e = to_end();
            const uint64_t n = std::min<uint64_t>(view().size(), e == 0 ? 0 : e - 1);
            return static_cast<std::size_t>(n / k_beat);
        }
        /// The next beat, if all of it is there.
        bool next(Beat& b) const {
            const uint64_t e = to_end();
            const std::size_t len = static_cast<std::size_t>(std::min<uint64_t>(k_beat, e));
            if (len == 0 || view().size() < len) return false;
            b = Beat{view().data(), len, len == e};
            return true;
        }
        void consume(std::size_t n, bool last) {
            pos += n;
            if (buffered() > 0) {
                head += n;
                if (head == buf.size()) {
                    buf.clear();
                    head = 0;
                }
            } else {
                live = live.subspan(n);
            }
            if (last) ends.pop_front();
        }
        void drop_empty_commands() {
            while (!ends.empty() && ends.front() == pos) ends.pop_front();
        }
        /// Moves the unpaired rest of the chunk into the buffer (the chunk is gone after the callback).
        void keep_rest() {
            if (buffered() > 0 && head > (1u << 20) && head * 2 > buf.size()) {
                buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(head));
                head = 0;
            }
            if (!live.empty()) buf.insert(buf.end(), live.begin(), live.end());
            live = {};
        }
    };

    template <typename Run, typename One>
    void pair(Run& run, One& one) {
        Side& a = side_[0];
        Side& b = side_[1];
        for (;;) {
            a.drop_empty_commands();
            b.drop_empty_commands();
            if (const std::size_t n = std::min(a.whole_beats(), b.whole_beats()); n > 0) {
                run(a.view().data(), b.view().data(), n);
                a.consume(n * k_beat, false);
                b.consume(n * k_beat, false);
                continue;
            }
            Beat x{}, y{};
            if (!a.next(x) || !b.next(y)) return;
            one(x, y);
            a.consume(x.keep, x.last);
            b.consume(y.keep, y.last);
        }
    }

    Side side_[2];
};

}  // namespace coyote::detail::sim::examples
