// The 32-bit lane operations of the copy-like sim models (models/word_ops.hpp) against a scalar computation, at
// lengths that end inside and outside a 64-byte step and at unaligned addresses; at sizes shared among the model
// threads, also in place and with an output that overlaps an input at an offset (which stays on one thread).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/sim/models/word_ops.hpp"
#include "support/env_guard.hpp"

namespace lanes = coyote::detail::sim::lanes;

namespace {

uint32_t word_at(const std::vector<std::byte>& v, std::size_t off, std::size_t i) {
    uint32_t w;
    std::memcpy(&w, v.data() + off + 4 * i, 4);
    return w;
}

float float_at(const std::vector<std::byte>& v, std::size_t off, std::size_t i) {
    float f;
    std::memcpy(&f, v.data() + off + 4 * i, 4);
    return f;
}

}  // namespace

TEST(SimWordOps, MatchScalarAtEveryLengthAndAlignment) {
    constexpr std::size_t k_max = 1000;
    std::vector<std::byte> a(k_max + 8), b(k_max + 8), out(k_max + 8);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<std::byte>(i * 37 + 250); // includes words near 2^32 (wrap-around)
        b[i] = static_cast<std::byte>(i * 11 + 3);
    }
    for (std::size_t off : {0u, 1u, 4u}) {
        for (std::size_t n : {0u, 4u, 60u, 64u, 68u, 128u, 996u}) {
            const std::size_t words = n / 4;
            std::fill(out.begin(), out.end(), std::byte{0x5a});
            lanes::increment_u32(a.data() + off, out.data() + off, n);
            for (std::size_t i = 0; i < words; ++i)
                ASSERT_EQ(word_at(out, off, i), word_at(a, off, i) + 1u) << "increment n " << n << " off " << off;
            EXPECT_EQ(out[off + n], std::byte{0x5a}) << "increment wrote past n " << n;

            lanes::add_u32(a.data() + off, b.data() + off, out.data() + off, n);
            for (std::size_t i = 0; i < words; ++i)
                ASSERT_EQ(word_at(out, off, i), word_at(a, off, i) + word_at(b, off, i)) << "add_u32 n " << n;

            lanes::add_f32(a.data() + off, b.data() + off, out.data() + off, n);
            for (std::size_t i = 0; i < words; ++i) {
                const float want = float_at(a, off, i) + float_at(b, off, i);
                const float got = float_at(out, off, i);
                if (want != want) {
                    ASSERT_NE(got, got) << "add_f32 NaN lane n " << n; // NaN stays NaN
                } else {
                    ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "add_f32 n " << n << " lane " << i;
                }
            }
        }
    }
}

TEST(SimWordOps, SharedAmongThreadsMatchScalar) {
    coyote_test::EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "2");
    constexpr std::size_t k_n = (1u << 20) + 68; // 16 pieces and a short one
    std::vector<std::byte> a(k_n), b(k_n), out(k_n + 4);
    for (std::size_t i = 0; i < k_n; ++i) {
        a[i] = static_cast<std::byte>(i * 37 + 250);
        b[i] = static_cast<std::byte>(i * 11 + 3);
    }
    std::fill(out.begin(), out.end(), std::byte{0x5a});
    lanes::add_u32(a.data(), b.data(), out.data(), k_n);
    for (std::size_t i = 0; i < k_n / 4; ++i)
        ASSERT_EQ(word_at(out, 0, i), word_at(a, 0, i) + word_at(b, 0, i)) << "add_u32 word " << i;
    EXPECT_EQ(out[k_n], std::byte{0x5a}) << "wrote past n";

    lanes::add_f32(a.data(), b.data(), out.data(), k_n);
    for (std::size_t i = 0; i < k_n / 4; ++i) {
        const float want = float_at(a, 0, i) + float_at(b, 0, i), got = float_at(out, 0, i);
        if (want == want) {
            ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "add_f32 word " << i;
        }
    }

    std::vector<std::byte> in_place = a; // out == a
    lanes::increment_u32(in_place.data(), in_place.data(), k_n);
    for (std::size_t i = 0; i < k_n / 4; ++i)
        ASSERT_EQ(word_at(in_place, 0, i), word_at(a, 0, i) + 1u) << "in-place increment word " << i;
}

TEST(SimWordOps, OverlappingOutputGivesTheOneThreadResult) {
    constexpr std::size_t k_n = 1u << 20;
    std::vector<std::byte> a(k_n + 64);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::byte>(i * 29 + 7);
    std::vector<std::byte> one = a, shared = a;
    {
        coyote_test::EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "1");
        lanes::increment_u32(one.data() + 64, one.data(), k_n); // output 64 bytes before its input
    }
    {
        coyote_test::EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "2");
        lanes::increment_u32(shared.data() + 64, shared.data(), k_n);
    }
    EXPECT_EQ(one, shared);
}

// Past stream_from, outputs apart from their inputs are stored past the caches from their first 32-byte boundary
// on: every alignment of the output (4-byte steps) and of the length's end, on one thread and shared.
TEST(SimWordOps, StreamedOutputsMatchScalarAtEveryAlignment) {
    const std::size_t base = lanes::stream_from(2) + lanes::stream_from(1); // past both thresholds
    std::vector<std::byte> a(base + 256), b(base + 256), out(base + 256);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<std::byte>(i * 37 + 250);
        b[i] = static_cast<std::byte>(i * 11 + 3);
    }
    for (const char* threads : {"1", "2"}) {
        coyote_test::EnvGuard guard("COYOTE_SIM_MODEL_THREADS", threads);
        for (std::size_t off : {0u, 4u, 12u, 28u}) {
            for (std::size_t tail : {0u, 4u, 36u}) {
                const std::size_t n = base / 128 * 128 + tail;
                std::fill(out.begin(), out.end(), std::byte{0x5a});
                lanes::add_u32(a.data() + 8, b.data() + 4, out.data() + off, n);
                for (std::size_t i = 0; i < n / 4; ++i)
                    ASSERT_EQ(word_at(out, off, i), word_at(a, 8, i) + word_at(b, 4, i))
                        << "add_u32 off " << off << " n " << n << " word " << i << " threads " << threads;
                EXPECT_EQ(out[off + n], std::byte{0x5a}) << "wrote past n " << n << " off " << off;
                if (off > 0) {
                    EXPECT_EQ(out[off - 1], std::byte{0x5a}) << "wrote before the output, off " << off;
                }

                lanes::increment_u32(a.data() + 4, out.data() + off, n);
                for (std::size_t i = 0; i < n / 4; ++i)
                    ASSERT_EQ(word_at(out, off, i), word_at(a, 4, i) + 1u) << "increment off " << off << " word " << i;

                lanes::add_f32(a.data(), b.data(), out.data() + off, n);
                for (std::size_t i = 0; i < n / 4; ++i) {
                    const float want = float_at(a, 0, i) + float_at(b, 0, i), got = float_at(out, off, i);
                    if (want == want) {
                        ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "add_f32 off " << off << " word " << i;
                    }
                }
            }
        }
    }
}
