// Model of Coyote example 04 (user interrupts): reads host data on dest 0 and, for every 512-bit beat whose
// first 32-bit word is 73, raises a user interrupt with value 73 for Coyote thread 0 (the example's vFPGA
// hard-wires both). Data is consumed and produces no output; other dests and card streams are ignored.
#include <algorithm>
#include <array>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

namespace {

constexpr uint32_t k_trigger = 73;
constexpr int32_t k_ctid = 0;

class UserInterrupts final : public UserLogic {
public:
    const char* name() const noexcept override { return "user_interrupts"; }

    void on_input(Shell& shell, const InputChunk& in) override {
        if (in.dest != 0 || in.kind != StreamKind::host) return;
        // Visit only the first word of each beat: bytes 0..3 of the beat, wherever the chunk starts.
        std::size_t i = 0;
        while (i < in.data.size()) {
            const std::size_t at = offset_ % k_beat;
            if (at >= 4) { // skip to the next beat
                const std::size_t step = std::min(k_beat - at, in.data.size() - i);
                i += step;
                offset_ += step;
                continue;
            }
            word_[at] = in.data[i++];
            ++offset_;
            if (at == 3) check(shell);
        }
        if (in.end_of_command) {
            if (offset_ % k_beat != 0 && offset_ % k_beat < 4) { // a last beat shorter than a word
                for (std::size_t j = offset_ % k_beat; j < 4; ++j) word_[j] = std::byte{0};
                check(shell);
            }
            offset_ = 0;
        }
    }

private:
    void check(Shell& shell) {
        uint32_t v;
        std::memcpy(&v, word_.data(), 4);
        if (v != k_trigger) return;
        try {
            shell.raise_interrupt(k_ctid, static_cast<int32_t>(k_trigger));
        } catch (const coyote::Error&) {
            // No Coyote thread 0 on this vFPGA: the interrupt has nowhere to go, as on the hardware.
        }
    }

    std::size_t offset_ = 0; // bytes of the current command seen
    std::array<std::byte, 4> word_{};
};

}  // namespace

std::unique_ptr<UserLogic> make_user_interrupts() { return std::make_unique<UserInterrupts>(); }

}  // namespace coyote::detail::sim::examples
