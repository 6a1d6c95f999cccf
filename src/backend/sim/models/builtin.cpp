// The built-in user-logic models: passthrough, perf_local (+1 on every 32-bit word), vadd (float32 a + b).
#include <array>
#include <cstring>
#include <vector>

#include "backend/sim/models/models.hpp"
#include "backend/sim/models/paired_input.hpp"

namespace coyote::detail::sim {

namespace {

using coyote::sim::InputChunk;
using coyote::sim::k_n_dests;
using coyote::sim::Shell;
using coyote::sim::UserLogic;

/// Writes `n` (a multiple of 4) output bytes to `dest`, produced word by word by `word(i)` (i = word
/// index), directly into the pending write when the shell offers a window.
template <typename WordFn>
void emit_words(Shell& shell, uint32_t dest, size_t n, WordFn&& word) {
    size_t done = 0;
    while (done < n) {
        auto w = shell.reserve(dest, n - done);
        const size_t words = w.size() / 4;
        if (words == 0) {
            // The window ends inside a word (the pending write has fewer than 4 bytes left).
            shell.commit(dest, 0);
            const uint32_t v = word(done / 4);
            std::byte tmp[4];
            std::memcpy(tmp, &v, 4);
            shell.push(dest, std::span<const std::byte>(tmp, 4));
            done += 4;
            continue;
        }
        for (size_t i = 0; i < words; ++i) {
            const uint32_t v = word(done / 4 + i);
            std::memcpy(w.data() + 4 * i, &v, 4);
        }
        shell.commit(dest, words * 4);
        done += words * 4;
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
                emit_words(shell, d, 4, [&](size_t) { return load(carry.data()) + 1; });
                clen = 0;
            }
        }
        const size_t whole = data.size() & ~size_t{3};
        const std::byte* src = data.data();
        emit_words(shell, d, whole, [&](size_t i) { return load(src + 4 * i) + 1; });
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
    static uint32_t load(const std::byte* p) {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
    }

    std::array<std::array<std::byte, 4>, k_n_dests> carry_{};
    std::array<size_t, k_n_dests> carry_len_{};
};

/// float32 vector addition: output dest 0 = input dest 0 + input dest 1, element by element. Input that
/// has no partner yet is buffered; other dests are ignored.
class Vadd final : public UserLogic {
public:
    const char* name() const noexcept override { return "vadd"; }

    void on_input(Shell& shell, const InputChunk& in) override {
        if (in.dest > 1) return;
        input_.feed(in.dest, in.data, 4,
                    [&](const std::byte* a, const std::byte* b, size_t n) { add(shell, a, b, n); });
    }

private:
    static void add(Shell& shell, const std::byte* a, const std::byte* b, size_t n) {
        emit_words(shell, 0, n, [&](size_t i) {
            float x, y;
            std::memcpy(&x, a + 4 * i, 4);
            std::memcpy(&y, b + 4 * i, 4);
            const float z = x + y;
            uint32_t v;
            std::memcpy(&v, &z, 4);
            return v;
        });
    }

    PairedInput input_;
};

}  // namespace

std::unique_ptr<UserLogic> make_passthrough() { return std::make_unique<Passthrough>(); }
std::unique_ptr<UserLogic> make_perf_local() { return std::make_unique<PerfLocal>(); }
std::unique_ptr<UserLogic> make_vadd() { return std::make_unique<Vadd>(); }

}  // namespace coyote::detail::sim
