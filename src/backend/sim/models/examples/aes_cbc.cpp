// Model of Coyote example 08 (multithreading): AES-128 CBC encryption, input dest i -> output dest i, one chain
// per dest. Registers as in the example's aes_axi_ctrl_parser: CSR 0 / 1 = key bits [63:0] / [127:64] (writing
// CSR 1 loads the key), CSR 2 / 3 = IV bits [63:0] / [127:64], CSR 4 = dest: writing it queues the IV as the
// chaining value of that dest. Each block is encrypted as AES(input XOR chaining value) and becomes the next
// chaining value, except the final block of a command (the hardware does not feed back a block with tlast): so a
// command needs an IV written for its dest first, and its data waits until there is one. A final partial block
// has its missing bytes set to zero after the XOR, and only its own bytes are written.
#include <array>
#include <cstring>
#include <deque>
#include <vector>

#include "backend/sim/models/examples/aes_block.hpp"
#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

namespace {

constexpr uint32_t k_iv_low = 2;
constexpr uint32_t k_iv_high = 3;
constexpr uint32_t k_iv_dest = 4;

/// The input of one dest waiting for its chaining value, and the ends of its commands.
struct Chain {
    std::deque<Block> feedback;       ///< the hardware's feedback FIFO: IVs and fed-back ciphertext
    std::vector<std::byte> pending;   ///< input not yet encrypted
    std::deque<std::size_t> ends;     ///< offsets in `pending` where commands end
};

class AesCbc final : public UserLogic {
public:
    const char* name() const noexcept override { return "aes_cbc"; }

    void on_csr_write(Shell& shell, uint32_t offs, uint64_t value) override {
        aes_.on_key_write(shell, offs);
        if (offs != k_iv_dest) return;
        const uint32_t d = static_cast<uint32_t>(value & 0x3f);
        shell.csr_write(k_iv_dest, 0); // the register reads back 0
        if (d >= k_n_dests) return;
        chains_[d].feedback.push_back(block_of(shell.csr_read(k_iv_low), shell.csr_read(k_iv_high)));
        drain(shell, d);
    }

    void on_input(Shell& shell, const InputChunk& in) override {
        auto& c = chains_[in.dest];
        c.pending.insert(c.pending.end(), in.data.begin(), in.data.end());
        if (in.end_of_command) c.ends.push_back(c.pending.size());
        drain(shell, in.dest);
    }

private:
    /// Encrypts what dest `d` can: whole blocks, and a command's final block, while a chaining value waits.
    void drain(Shell& shell, uint32_t d) {
        auto& c = chains_[d];
        std::size_t pos = 0;
        while (!c.feedback.empty()) {
            if (!c.ends.empty() && c.ends.front() == pos) { // an empty command
                c.ends.pop_front();
                continue;
            }
            const std::size_t end = c.ends.empty() ? c.pending.size() : c.ends.front();
            const std::size_t keep = std::min<std::size_t>(16, end - pos);
            const bool last = !c.ends.empty() && pos + keep == end;
            if (keep == 0 || (keep < 16 && !last)) break;
            Block x{};
            for (std::size_t j = 0; j < keep; ++j) x[j] = c.pending[pos + j] ^ c.feedback.front()[j];
            c.feedback.pop_front();
            const Block y = aes_.encrypt(x);
            shell.push(d, std::span<const std::byte>(y.data(), keep));
            if (!last) c.feedback.push_back(y);
            pos += keep;
            if (last) c.ends.pop_front();
        }
        c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<std::ptrdiff_t>(pos));
        for (auto& e : c.ends) e -= pos;
    }

    HwAes aes_;
    std::array<Chain, k_n_dests> chains_;
};

}  // namespace

std::unique_ptr<UserLogic> make_aes_cbc() { return std::make_unique<AesCbc>(); }

}  // namespace coyote::detail::sim::examples
