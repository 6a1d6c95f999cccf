// Models of Coyote example 10's two applications (HLS kernels euclidean_distance and cosine_similarity): input
// dests 0 and 1 carry two float32 vectors, paired beat by beat; lanes count where both beats keep all 4 bytes.
// When either beat is the last of its command, the kernel writes one float32 (4 bytes) on output dest 0 and
// starts over: sqrt(sum (a - b)^2), or dot(a, b) / (sqrt(|a|^2) * sqrt(|b|^2)). Sums run in float32, lane by
// lane in order, as the kernels accumulate them.
#include <cmath>
#include <cstring>

#include "backend/sim/models/examples/beat_pair.hpp"
#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

namespace {

float lane(const std::byte* p, std::size_t i) {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
}

/// Sum of squared differences.
struct Euclidean {
    static constexpr const char* name = "euclidean_distance";
    float sum = 0;
    void add(float a, float b) {
        const float d = a - b;
        sum += d * d;
    }
    float result() const { return std::sqrt(sum); }
};

/// Dot product and the two squared norms.
struct Cosine {
    static constexpr const char* name = "cosine_similarity";
    float dot = 0, norm_a = 0, norm_b = 0;
    void add(float a, float b) {
        dot += a * b;
        norm_a += a * a;
        norm_b += b * b;
    }
    float result() const { return dot / (std::sqrt(norm_a) * std::sqrt(norm_b)); }
};

template <typename Kernel>
class VectorReduce final : public UserLogic, public InputHolder {
public:
    void spill(Shell& shell) override { pairs_.spill(shell); }
    const char* name() const noexcept override { return Kernel::name; }

    void on_input(Shell& shell, const InputChunk& in) override {
        if (in.dest > 1) return;
        pairs_.add(
            shell,
            in,
            [&](const std::byte* a, const std::byte* b, std::size_t beats) {
                for (std::size_t i = 0; i < beats * k_beat / 4; ++i) acc_.add(lane(a, i), lane(b, i));
            },
            [&](const Beat& x, const Beat& y) {
                for (std::size_t i = 0; 4 * i + 4 <= std::min(x.keep, y.keep); ++i) acc_.add(lane(x.data, i), lane(y.data, i));
                if (!x.last && !y.last) return;
                const float r = acc_.result();
                std::byte out[4];
                std::memcpy(out, &r, 4);
                shell.push(0, std::span<const std::byte>(out, 4));
                acc_ = Kernel{};
            });
    }

private:
    BeatPair pairs_;
    Kernel acc_;
};

}  // namespace

std::unique_ptr<UserLogic> make_euclidean_distance() { return std::make_unique<VectorReduce<Euclidean>>(); }
std::unique_ptr<UserLogic> make_cosine_similarity() { return std::make_unique<VectorReduce<Cosine>>(); }

}  // namespace coyote::detail::sim::examples
