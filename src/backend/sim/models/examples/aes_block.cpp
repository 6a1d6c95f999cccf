// AES-128 of stream blocks in the byte order of the examples' AES pipeline, with OpenSSL's EVP cipher.
#include "backend/sim/models/examples/aes_block.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace coyote::detail::sim::examples {

namespace {

/// Blocks encrypted per EVP call (bounds the scratch buffer to 64 KiB).
constexpr std::size_t k_batch_blocks = 4096;

EVP_CIPHER_CTX* evp(void* p) { return static_cast<EVP_CIPHER_CTX*>(p); }

void reverse_blocks(const std::byte* in, std::byte* out, std::size_t n) {
    for (std::size_t b = 0; b < n; ++b)
        std::reverse_copy(in + 16 * b, in + 16 * b + 16, out + 16 * b);
}

}  // namespace

HwAes::HwAes() : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr) throw std::runtime_error("OpenSSL: EVP_CIPHER_CTX_new failed");
    set_key(0, 0); // the pipeline's key registers reset to zero
}

HwAes::~HwAes() { EVP_CIPHER_CTX_free(evp(ctx_)); }

void HwAes::set_key(uint64_t key_low, uint64_t key_high) {
    unsigned char key[16];
    for (int i = 0; i < 8; ++i) {
        key[i] = static_cast<unsigned char>(key_high >> (56 - 8 * i));
        key[8 + i] = static_cast<unsigned char>(key_low >> (56 - 8 * i));
    }
    if (EVP_EncryptInit_ex(evp(ctx_), EVP_aes_128_ecb(), nullptr, key, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(evp(ctx_), 0) != 1)
        throw std::runtime_error("OpenSSL: AES-128-ECB initialisation failed");
}

void HwAes::encrypt(const std::byte* in, std::byte* out, std::size_t n) {
    scratch_.resize(16 * std::min(n, k_batch_blocks));
    auto* s = reinterpret_cast<unsigned char*>(scratch_.data());
    while (n > 0) {
        const std::size_t b = std::min(n, k_batch_blocks);
        reverse_blocks(in, scratch_.data(), b);
        int len = 0;
        if (EVP_EncryptUpdate(evp(ctx_), s, &len, s, static_cast<int>(16 * b)) != 1 ||
            static_cast<std::size_t>(len) != 16 * b)
            throw std::runtime_error("OpenSSL: AES-128-ECB encryption failed");
        reverse_blocks(scratch_.data(), out, b);
        in += 16 * b;
        out += 16 * b;
        n -= b;
    }
}

Block HwAes::encrypt(const Block& in) {
    Block out;
    encrypt(in.data(), out.data(), 1);
    return out;
}

Block block_of(uint64_t low, uint64_t high) noexcept {
    Block b;
    for (int i = 0; i < 8; ++i) {
        b[static_cast<std::size_t>(i)] = static_cast<std::byte>(low >> (8 * i));
        b[static_cast<std::size_t>(8 + i)] = static_cast<std::byte>(high >> (8 * i));
    }
    return b;
}

}  // namespace coyote::detail::sim::examples
