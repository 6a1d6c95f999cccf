// Input generation and comparison shared by the collective tests.
#pragma once

#include <coyote/mpi/collectives.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace coyote_test {

using coyote::mpi::Datatype;
using coyote::mpi::Op;
using coyote::mpi::size_of;
using coyote::mpi::to_bfloat16;
using coyote::mpi::to_float16;


/// Deterministic input of `rank` for (t, op), element i.
inline void gen(Datatype t, Op op, int r, uint64_t salt, void* buf, uint64_t count) {
    const std::size_t es = size_of(t);
    auto* b = static_cast<std::byte*>(buf);
    for (uint64_t i = 0; i < count; ++i) {
        const uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(r) + 1) * 0xC2B2AE3D27D4EB4Full ^ salt;
        const uint64_t m = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
        double v = 0;
        bool raw = false;
        switch (op) {
        case Op::sum: v = static_cast<double>(m % 8); break;
        case Op::prod: v = (m % 7 == 0) ? 2.0 : ((m % 3 == 0) ? -1.0 : 1.0); break;
        case Op::min:
        case Op::max: v = static_cast<double>(static_cast<int64_t>(m % 200) - 100); break;
        default: raw = true; break;
        }
        std::byte* e = b + i * es;
        if (raw) {
            std::memcpy(e, &m, es);
            continue;
        }
        switch (t) {
        case Datatype::int8: { const auto x = static_cast<int8_t>(v); std::memcpy(e, &x, 1); break; }
        case Datatype::uint8: { const auto x = static_cast<uint8_t>(static_cast<int>(v) & 0xff); std::memcpy(e, &x, 1); break; }
        case Datatype::int32: { const auto x = static_cast<int32_t>(v); std::memcpy(e, &x, 4); break; }
        case Datatype::uint32: { const auto x = static_cast<uint32_t>(static_cast<int64_t>(v)); std::memcpy(e, &x, 4); break; }
        case Datatype::int64: { const auto x = static_cast<int64_t>(v); std::memcpy(e, &x, 8); break; }
        case Datatype::uint64: { const auto x = static_cast<uint64_t>(static_cast<int64_t>(v)); std::memcpy(e, &x, 8); break; }
        case Datatype::float16: { const auto x = to_float16(static_cast<float>(v)); std::memcpy(e, &x, 2); break; }
        case Datatype::bfloat16: { const auto x = to_bfloat16(static_cast<float>(v)); std::memcpy(e, &x, 2); break; }
        case Datatype::float32: { const auto x = static_cast<float>(v); std::memcpy(e, &x, 4); break; }
        case Datatype::float64: std::memcpy(e, &v, 8); break;
        }
    }
}

/// Element-wise comparison; one failure message with the first differing element.
inline void expect_equal(const void* got, const void* want, uint64_t count, std::size_t es, const std::string& what) {
    const auto* g = static_cast<const std::byte*>(got);
    const auto* w = static_cast<const std::byte*>(want);
    uint64_t bad = 0, first = 0;
    for (uint64_t i = 0; i < count; ++i)
        if (std::memcmp(g + i * es, w + i * es, es) != 0) {
            if (bad++ == 0) first = i;
        }
    if (bad != 0) ADD_FAILURE() << what << ": " << bad << " of " << count << " elements differ, first at " << first;
}

inline int ic(uint64_t c) { return static_cast<int>(c); }
using Bytes = std::vector<std::byte>;
inline Bytes bytes(uint64_t count, Datatype t, uint8_t fill = 0xA5) { return Bytes(count * size_of(t) + 1, std::byte{fill}); }

}  // namespace coyote_test
