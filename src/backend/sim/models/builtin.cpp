// The built-in user-logic models: passthrough, perf_local (+1 on every 32-bit word), vadd (float32 a + b).
#include <array>
#include <cstring>
#include <vector>

#include "backend/sim/models/models.hpp"
#include "backend/sim/models/paired_input.hpp"
#include "backend/sim/models/word_ops.hpp"

namespace coyote::detail::sim {

namespace {

using coyote::sim::InputChunk;
using coyote::sim::k_n_dests;
using coyote::sim::Shell;
using coyote::sim::UserLogic;

/// Writes `n` (a multiple of 4) output bytes to `dest`, produced by `fill(offset, out, m)` (output bytes
/// [offset, offset + m), m a multiple of 4), straight into the pending write when the shell offers a window.
template <typename Fill>
void emit_blocks(Shell& shell, uint32_t dest, size_t n, Fill&& fill) {
    size_t done = 0;
    while (done < n) {
        auto w = shell.reserve(dest, n - done);
        const size_t m = w.size() & ~size_t{3};
        if (m == 0) {
            // The window ends inside a word (the pending write has fewer than 4 bytes left).
            shell.commit(dest, 0);
            std::byte tmp[4];
            fill(done, tmp, size_t{4});
            shell.push(dest, std::span<const std::byte>(tmp, 4));
            done += 4;
            continue;
        }
        fill(done, w.data(), m);
        shell.commit(dest, m);
        done += m;
    }
}

/// Every input dest loops back to the same output dest.
class Passthrough final : public UserLogic {
public:
    const char* name() const noexcept override { return "passthrough"; }
    void on_input(Shell& shell, const InputChunk& in) override { shell.push(in.dest, in.data); }
};

/// Adds 1 to every 32-bit integer of each input dest and sends it to the same output dest. A command
/// whose length is not a multiple of 4 passes its trailing bytes through unchanged.
class PerfLocal final : public UserLogic {
public:
    const char* name() const noexcept override { return "perf_local"; }

    void on_input(Shell& shell, const InputChunk& in) override {
        const uint32_t d = in.dest;
        auto data = in.data;
        auto& carry = carry_[d];
        auto& clen = carry_len_[d];
        if (clen > 0) {
            const size_t take = std::min<size_t>(4 - clen, data.size());
            std::memcpy(carry.data() + clen, data.data(), take);
            clen += take;
            data = data.subspan(take);
            if (clen == 4) {
                emit_blocks(shell, d, 4, [&](size_t, std::byte* out, size_t) {
                    lanes::increment_u32(carry.data(), out, 4);
                });
                clen = 0;
            }
        }
        const size_t whole = data.size() & ~size_t{3};
        const std::byte* src = data.data();
        emit_blocks(shell, d, whole,
                    [&](size_t off, std::byte* out, size_t m) { lanes::increment_u32(src + off, out, m); });
        const size_t rest = data.size() - whole;
        if (rest > 0) {
            std::memcpy(carry.data() + clen, data.data() + whole, rest);
            clen += rest;
        }
        if (in.end_of_command && clen > 0) {
            shell.push(d, std::span<const std::byte>(carry.data(), clen));
            clen = 0;
        }
    }

private:
    std::array<std::array<std::byte, 4>, k_n_dests> carry_{};
    std::array<size_t, k_n_dests> carry_len_{};
};

/// float32 vector addition: output dest 0 = input dest 0 + input dest 1, element by element. Input that
/// has no partner yet is held (or buffered); other dests are ignored.
class Vadd final : public UserLogic, public InputHolder {
public:
    const char* name() const noexcept override { return "vadd"; }
    void spill(Shell& shell) override { input_.spill(shell); }

    void on_input(Shell& shell, const InputChunk& in) override {
        if (in.dest > 1) return;
        input_.feed(shell, in.dest, in.data, 4,
                    [&](const std::byte* a, const std::byte* b, size_t n) { add(shell, a, b, n); });
    }

private:
    static void add(Shell& shell, const std::byte* a, const std::byte* b, size_t n) {
        emit_blocks(shell, 0, n,
                    [&](size_t off, std::byte* out, size_t m) { lanes::add_f32(a + off, b + off, out, m); });
    }

    PairedInput input_;
};

}  // namespace

std::unique_ptr<UserLogic> make_passthrough() { return std::make_unique<Passthrough>(); }
std::unique_ptr<UserLogic> make_perf_local() { return std::make_unique<PerfLocal>(); }
std::unique_ptr<UserLogic> make_vadd() { return std::make_unique<Vadd>(); }

}  // namespace coyote::detail::sim
