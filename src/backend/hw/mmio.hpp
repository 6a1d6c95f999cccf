// The one MMIO seam of the hw backend: every register store of the backend goes through Mmio. In production it is
// the volatile store into the mapped region and a test of one pointer that is null; the fake driver (an LD_PRELOAD
// library) exports `coyote_fake_mmio_stored`, and when that symbol is present the seam tells it what was just stored
// where, so that the fake can act on the store like the hardware would.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace coyote::detail::hw {

/// Called after a store of the `bytes` bytes at `data` to `addr` (fake driver only).
using MmioHook = void (*)(const volatile void* addr, const void* data, size_t bytes) noexcept;

/// Name of the symbol the fake driver exports (a function of type MmioHook).
inline constexpr const char* k_mmio_hook_symbol = "coyote_fake_mmio_stored";

/// The hook when the fake driver is loaded in this process, else null (looked up once per Device).
MmioHook find_mmio_hook() noexcept;

/// Register stores and loads into mapped device regions.
class Mmio {
public:
    Mmio() noexcept = default;
    explicit Mmio(MmioHook hook) noexcept : hook_(hook) {}

    /// One 64-bit store.
    void store(volatile uint64_t* reg, uint64_t value) const noexcept {
        *reg = value;
        if (hook_ != nullptr) [[unlikely]]
            hook_(reg, &value, sizeof(uint64_t));
    }
    /// One 256-bit store of w[0..3] (w[0] at the lowest address), as the AVX layout needs: the shell acts on the
    /// whole word, so four 64-bit stores would not do.
    void store256(volatile uint64_t* reg, const uint64_t (&w)[4]) const noexcept {
        store256_avx(reg, w);
        if (hook_ != nullptr) [[unlikely]]
            hook_(reg, w, 4 * sizeof(uint64_t));
    }
    static uint64_t load(const volatile uint64_t* reg) noexcept { return *reg; }
    static uint32_t load32(const volatile uint32_t* reg) noexcept { return *reg; }
    /// A 256-bit register read with one 256-bit load, as stock cThread does (the AVX slave answers whole words).
    __attribute__((target("avx"))) static void load256(const volatile uint64_t* reg, uint64_t (&out)[4]) noexcept {
        const __m256i v = _mm256_load_si256(const_cast<const __m256i*>(reinterpret_cast<const volatile __m256i*>(reg)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v);
    }
    /// 32-bit lane `lane` (0..7) of a 256-bit register (stock: _mm256_extract_epi32 of the loaded word).
    static uint32_t load256_lane(const volatile uint64_t* reg, unsigned lane) noexcept {
        uint64_t w[4];
        load256(reg, w);
        const uint64_t word = w[(lane & 7) / 2];
        return static_cast<uint32_t>((lane & 1) != 0 ? word >> 32 : word);
    }

    bool hooked() const noexcept { return hook_ != nullptr; }

private:
    __attribute__((target("avx"))) static void store256_avx(volatile uint64_t* reg, const uint64_t (&w)[4]) noexcept {
        const __m256i v = _mm256_set_epi64x(static_cast<long long>(w[3]), static_cast<long long>(w[2]),
                                            static_cast<long long>(w[1]), static_cast<long long>(w[0]));
        _mm256_store_si256(const_cast<__m256i*>(reinterpret_cast<volatile __m256i*>(reg)), v);
    }

    MmioHook hook_ = nullptr;
};

}  // namespace coyote::detail::hw
