// AES-128 as the AES pipeline of Coyote's examples 03 and 08 applies it to stream data, with OpenSSL's cipher.
//
// The pipeline takes a 128-bit key {KEY_HIGH, KEY_LOW} and 128-bit blocks of the stream whose byte 0 (lowest
// address) is bits [7:0]; it treats bits [127:120] as the first AES byte (its key expansion takes word 0 from
// bits [127:96]). So the AES key is KEY_HIGH then KEY_LOW, most significant byte first, and a block of memory
// is encrypted byte-reversed and written back byte-reversed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/sim/models/examples/examples.hpp"

namespace coyote::detail::sim::examples {

/// 16 bytes of a stream, in memory order.
using Block = std::array<std::byte, 16>;

/// The key registers of the AES examples: CSR 0 = key bits [63:0], CSR 1 = key bits [127:64].
inline constexpr uint32_t k_key_low = 0;
inline constexpr uint32_t k_key_high = 1;

/// AES-128 encryption of stream blocks in the byte order of the examples' pipeline (OpenSSL EVP, ECB).
class HwAes {
public:
    HwAes();
    ~HwAes();
    HwAes(const HwAes&) = delete;
    HwAes& operator=(const HwAes&) = delete;

    /// Loads the key registers (the pipeline expands them when KEY_HIGH is written).
    void set_key(uint64_t key_low, uint64_t key_high);
    /// After the host wrote CSR `offs`: loads the key from the shell's key registers when it was KEY_HIGH (as the
    /// examples' aes_axi_ctrl_parser raises key_valid).
    void on_key_write(const coyote::sim::Shell& shell, uint32_t offs) {
        if (offs == k_key_high) set_key(shell.csr_read(k_key_low), shell.csr_read(k_key_high));
    }
    /// Encrypts `n` whole blocks from `in` to `out` (they may be the same or overlap exactly).
    void encrypt(const std::byte* in, std::byte* out, std::size_t n);
    /// Encrypts one block.
    Block encrypt(const Block& in);

private:
    void* ctx_ = nullptr;            // EVP_CIPHER_CTX
    std::vector<std::byte> scratch_; // byte-reversed blocks
};

/// The 128-bit register pair {high, low} as a stream block (low register in bytes 0..7, little-endian).
Block block_of(uint64_t low, uint64_t high) noexcept;

}  // namespace coyote::detail::sim::examples
