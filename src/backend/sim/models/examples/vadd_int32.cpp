// Model of Coyote example 12 (SpinalHDL vector adder): output dest 0 = input dest 0 + input dest 1, as int32
// lanes of 512-bit beats (two's complement wrap-around). Beats pair one for one; an output beat keeps the bytes
// both inputs keep (the shorter of two final beats). Other dests are ignored.
#include <cstring>

#include "backend/sim/models/examples/beat_pair.hpp"
#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/word_ops.hpp"

namespace coyote::detail::sim::examples {

namespace {

/// Lane-wise int32 sums of `n` bytes (a multiple of 4) of a and b into out.
inline void add_lanes(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    lanes::add_u32(a, b, out, n);
}

class VaddInt32 final : public UserLogic, public InputHolder {
public:
    void spill(Shell& shell) override { pairs_.spill(shell); }
    const char* name() const noexcept override { return "vadd_int32"; }

    void on_input(Shell& shell, const InputChunk& in) override {
        if (in.dest > 1) return;
        pairs_.add(
            shell,
            in,
            [&](const std::byte* a, const std::byte* b, std::size_t beats) { emit(shell, a, b, beats * k_beat); },
            [&](const Beat& x, const Beat& y) {
                std::byte pa[k_beat]{}, pb[k_beat]{}, out[k_beat];
                std::memcpy(pa, x.data, x.keep);
                std::memcpy(pb, y.data, y.keep);
                add_lanes(pa, pb, out, k_beat);
                shell.push(0, std::span<const std::byte>(out, std::min(x.keep, y.keep)));
            });
    }

private:
    /// Sums `n` bytes straight into the pending writes of dest 0.
    static void emit(Shell& shell, const std::byte* a, const std::byte* b, std::size_t n) {
        while (n > 0) {
            auto w = shell.reserve(0, n);
            std::size_t m = w.size() & ~std::size_t{3};
            if (m == 0) { // the pending write ends inside a lane
                shell.commit(0, 0);
                std::byte out[4];
                add_lanes(a, b, out, 4);
                shell.push(0, std::span<const std::byte>(out, 4));
                m = 4;
            } else {
                add_lanes(a, b, w.data(), m);
                shell.commit(0, m);
            }
            a += m;
            b += m;
            n -= m;
        }
    }

    BeatPair pairs_;
};

}  // namespace

std::unique_ptr<UserLogic> make_vadd_int32() { return std::make_unique<VaddInt32>(); }

}  // namespace coyote::detail::sim::examples
