// Two input streams (dests 0 and 1) cut into 512-bit beats and paired beat by beat, as the two-input vFPGAs of
// Coyote's examples 10 and 12 consume them: every beat of a command is 64 bytes but its last, which carries the
// rest and the `last` flag. Data is read straight from the shell's chunk when the other side can pair it; the rest
// of a host chunk is held in place (InputHold) when the shell allows it, and copied otherwise.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <vector>

#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/input_hold.hpp"

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
    void add(coyote::sim::Shell& shell, const coyote::sim::InputChunk& in, Run&& run, One&& one) {
        Side& s = side_[in.dest];
        if (s.buffered() > 0)
            s.buf.insert(s.buf.end(), in.data.begin(), in.data.end());
        else
            s.live = in.data; // behind the held chunks, if any (they end at command ends: no beat spans two)
        s.total += in.data.size();
        if (in.end_of_command) s.ends.push_back(s.total);
        shell_ = &shell;
        pair(run, one);
        s.keep_rest(shell, in.dest);
        shell_ = nullptr;
    }

    /// Copies the held chunks and releases them (InputHolder::spill).
    void spill(coyote::sim::Shell& shell) {
        for (uint32_t d = 0; d < 2; ++d) side_[d].copy_held(shell, d);
    }

private:
    struct Side {
        std::vector<std::byte> buf;
        std::size_t head = 0;
        std::span<const std::byte> live; // the current chunk, while its callback runs
        std::deque<std::span<const std::byte>> held; // held host chunks (only while buf is empty), in order
        std::deque<uint64_t> ends;       // stream offsets where commands end
        uint64_t pos = 0;                // stream offset of the next byte
        uint64_t total = 0;              // stream bytes received

        std::size_t buffered() const { return buf.size() - head; }
        std::span<const std::byte> view() const {
            if (buffered() > 0) return {buf.data() + head, buffered()};
            return held.empty() ? live : held.front();
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
        void consume(coyote::sim::Shell& shell, uint32_t d, std::size_t n, bool last) {
            pos += n;
            if (buffered() > 0) {
                head += n;
                if (head == buf.size()) {
                    buf.clear();
                    head = 0;
                }
            } else if (!held.empty()) {
                held.front() = held.front().subspan(n);
                if (held.front().empty()) {
                    held.pop_front();
                    release(shell, d);
                }
            } else {
                live = live.subspan(n);
            }
            if (last) ends.pop_front();
        }
        void copy_held(coyote::sim::Shell& shell, uint32_t d) {
            while (!held.empty()) {
                buf.insert(buf.end(), held.front().begin(), held.front().end());
                held.pop_front();
                release(shell, d);
            }
        }
        static void release(coyote::sim::Shell& shell, uint32_t d) {
            if (auto* hold = dynamic_cast<InputHold*>(&shell)) hold->release_input(d);
        }
        void drop_empty_commands() {
            while (!ends.empty() && ends.front() == pos) ends.pop_front();
        }
        /// Holds the unpaired rest of the chunk, or moves it into the buffer (behind the held chunks, copied too).
        void keep_rest(coyote::sim::Shell& shell, uint32_t d) {
            if (buffered() > 0 && head > (1u << 20) && head * 2 > buf.size()) {
                buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(head));
                head = 0;
            }
            if (!live.empty()) {
                auto* hold = dynamic_cast<InputHold*>(&shell);
                if (buffered() == 0 && hold != nullptr && hold->hold_input()) {
                    held.push_back(live);
                } else {
                    copy_held(shell, d);
                    buf.insert(buf.end(), live.begin(), live.end());
                }
            }
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
                a.consume(*shell_, 0, n * k_beat, false);
                b.consume(*shell_, 1, n * k_beat, false);
                continue;
            }
            Beat x{}, y{};
            if (!a.next(x) || !b.next(y)) return;
            one(x, y);
            a.consume(*shell_, 0, x.keep, x.last);
            b.consume(*shell_, 1, y.keep, y.last);
        }
    }

    Side side_[2];
    coyote::sim::Shell* shell_ = nullptr; ///< during add()
};

}  // namespace coyote::detail::sim::examples
