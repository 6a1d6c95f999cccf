// Model of Coyote example 03 (multitenancy): AES-128 ECB encryption of every input dest into the same output
// dest. CSR 0 = key bits [63:0], CSR 1 = key bits [127:64]; writing CSR 1 loads the key (as the example's
// aes_axi_ctrl_parser raises key_valid). A command whose length is not a multiple of 16 has its final block
// padded with zeros, and only its own bytes are written.
#include <array>
#include <cstring>

#include "backend/sim/models/examples/aes_block.hpp"
#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

namespace {

class AesEcb final : public UserLogic {
public:
    const char* name() const noexcept override { return "aes_ecb"; }

    void on_csr_write(Shell& shell, uint32_t offs, uint64_t) override {
        aes_.on_key_write(shell, offs);
    }

    void on_input(Shell& shell, const InputChunk& in) override {
        const uint32_t d = in.dest;
        auto data = in.data;
        auto& part = part_[d];
        auto& plen = part_len_[d];
        if (plen > 0) { // complete the block an earlier chunk began
            const std::size_t take = std::min<std::size_t>(16 - plen, data.size());
            std::memcpy(part.data() + plen, data.data(), take);
            plen += take;
            data = data.subspan(take);
            if (plen == 16) emit_block(shell, d, part, 16);
        }
        emit_blocks(shell, d, data.data(), data.size() / 16);
        const std::size_t rest = data.size() % 16;
        std::memcpy(part.data() + plen, data.data() + data.size() - rest, rest);
        plen += rest;
        if (in.end_of_command && plen > 0) {
            std::memset(part.data() + plen, 0, 16 - plen);
            emit_block(shell, d, part, plen);
        }
    }

private:
    /// Encrypts `n` whole blocks straight into the pending writes of `d`.
    void emit_blocks(Shell& shell, uint32_t d, const std::byte* src, std::size_t n) {
        while (n > 0) {
            auto w = shell.reserve(d, 16 * n);
            const std::size_t b = w.size() / 16;
            if (b == 0) { // the pending write ends inside a block
                shell.commit(d, 0);
                Block blk;
                std::memcpy(blk.data(), src, 16);
                emit_block(shell, d, blk, 16);
                src += 16;
                --n;
                continue;
            }
            aes_.encrypt(src, w.data(), b);
            shell.commit(d, 16 * b);
            src += 16 * b;
            n -= b;
        }
    }
    /// Encrypts one block and sends its first `keep` bytes.
    void emit_block(Shell& shell, uint32_t d, Block& blk, std::size_t keep) {
        const Block out = aes_.encrypt(blk);
        shell.push(d, std::span<const std::byte>(out.data(), keep));
        part_len_[d] = 0;
    }

    HwAes aes_;
    std::array<Block, k_n_dests> part_{};
    std::array<std::size_t, k_n_dests> part_len_{};
};

}  // namespace

std::unique_ptr<UserLogic> make_aes_ecb() { return std::make_unique<AesEcb>(); }

}  // namespace coyote::detail::sim::examples
