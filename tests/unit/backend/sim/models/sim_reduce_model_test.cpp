// The built-in `reduce` user-logic model: every supported type x op on small vectors (odd lengths included)
// through LOCAL_READ / LOCAL_WRITE and LOCAL_TRANSFER, in place, streams split inside elements, the counters,
// defaults and the errors for bad register codes and undefined combinations.
#include "unit/test_support.hpp"
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <coyote/sim/reduce_model.hpp>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace coyote; // cThread, CoyoteOper, CoyoteAllocType, localSg, Errc

using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::wait_completed;

namespace rm = coyote::sim::reduce;

namespace {

class SimReduceModel : public ::testing::Test {
protected:
    coyote_test::SimDefaults sim_defaults;
    EnvGuard model{"COYOTE_SIM_MODEL", "reduce"};
};

/// The expected result, computed independently of the model (integers in 64-bit unsigned arithmetic).
template <typename T>
T expected(uint64_t op, T a, T b) {
    if constexpr (std::is_integral_v<T>) {
        const auto x = static_cast<uint64_t>(a);
        const auto y = static_cast<uint64_t>(b);
        switch (op) {
        case rm::k_op_sum: return static_cast<T>(x + y);
        case rm::k_op_prod: return static_cast<T>(x * y);
        case rm::k_op_min: return a < b ? a : b;
        case rm::k_op_max: return a > b ? a : b;
        case rm::k_op_band: return static_cast<T>(x & y);
        case rm::k_op_bor: return static_cast<T>(x | y);
        case rm::k_op_bxor: return static_cast<T>(x ^ y);
        }
    } else {
        switch (op) {
        case rm::k_op_sum: return a + b;
        case rm::k_op_prod: return a * b;
        case rm::k_op_min: return a < b ? a : b;
        case rm::k_op_max: return a > b ? a : b;
        }
    }
    ADD_FAILURE() << "no expectation for op " << op;
    return T{};
}

template <typename T>
std::vector<T> random_values(std::mt19937_64& rng, std::size_t n) {
    std::vector<T> v(n);
    for (auto& x : v) {
        if constexpr (std::is_integral_v<T>)
            x = static_cast<T>(rng());
        else
            x = static_cast<T>(static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000) / 8.0);
    }
    return v;
}

enum class Path { read_write, reads_first, transfer };

/// Reduces a and b on the vFPGA of `t` along `path` and returns the output.
template <typename T>
std::vector<T> reduce_on(cThread& t, const std::vector<T>& a, const std::vector<T>& b, Path path) {
    std::vector<T> out(a.size(), T{});
    const auto len = static_cast<uint32_t>(a.size() * sizeof(T));
    const uint32_t before = t.checkCompleted(CoyoteOper::LOCAL_WRITE);
    auto* pa = const_cast<T*>(a.data());
    auto* pb = const_cast<T*>(b.data());
    switch (path) {
    case Path::read_write:
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = out.data(), .len = len, .dest = 0});
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = pa, .len = len, .dest = 0});
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = pb, .len = len, .dest = 1});
        break;
    case Path::reads_first: // output produced before the write is posted: buffered by the shell
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = pb, .len = len, .dest = 1});
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = pa, .len = len, .dest = 0});
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = out.data(), .len = len, .dest = 0});
        break;
    case Path::transfer:
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = pb, .len = len, .dest = 1});
        t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = pa, .len = len, .dest = 0},
                 localSg{.addr = out.data(), .len = len, .dest = 0});
        break;
    }
    EXPECT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, before + 1));
    return out;
}

template <typename T>
void check_type(cThread& t, uint64_t type_code, std::mt19937_64& rng) {
    const uint64_t last_op = std::is_integral_v<T> ? rm::k_op_bxor : rm::k_op_max;
    t.setCSR(type_code, rm::k_csr_type);
    int path_i = 0;
    for (uint64_t op = rm::k_op_sum; op <= last_op; ++op) {
        t.setCSR(op, rm::k_csr_op);
        for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{64}, std::size_t{1001}}) {
            const auto a = random_values<T>(rng, n);
            const auto b = random_values<T>(rng, n);
            const auto path = static_cast<Path>(path_i++ % 3);
            const uint64_t elems = t.getCSR(rm::k_csr_elements);
            const auto out = reduce_on(t, a, b, path);
            for (std::size_t i = 0; i < n; ++i)
                ASSERT_EQ(out[i], expected<T>(op, a[i], b[i]))
                    << "type " << type_code << " op " << op << " n " << n << " path " << static_cast<int>(path)
                    << " element " << i;
            EXPECT_EQ(t.getCSR(rm::k_csr_elements), elems + n);
            EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 0u);
        }
    }
}

TEST_F(SimReduceModel, EveryTypeAndOp) {
    cThread t(0, getpid(), 40);
    std::mt19937_64 rng(7);
    check_type<int8_t>(t, rm::k_type_int8, rng);
    check_type<uint8_t>(t, rm::k_type_uint8, rng);
    check_type<int32_t>(t, rm::k_type_int32, rng);
    check_type<uint32_t>(t, rm::k_type_uint32, rng);
    check_type<int64_t>(t, rm::k_type_int64, rng);
    check_type<uint64_t>(t, rm::k_type_uint64, rng);
    check_type<float>(t, rm::k_type_float32, rng);
    check_type<double>(t, rm::k_type_float64, rng);
    EXPECT_EQ(t.getCSR(rm::k_csr_errors), 0u);
}

TEST_F(SimReduceModel, DefaultsAreFloat32SumAndIdentityRegisters) {
    cThread t(0, getpid(), 41);
    std::vector<float> a{1.5f, 2.0f, -3.0f}, b{0.25f, 4.0f, 3.0f};
    const auto out = reduce_on(t, a, b, Path::read_write);
    EXPECT_EQ(out, (std::vector<float>{1.75f, 6.0f, 0.0f}));
    EXPECT_EQ(t.getCSR(rm::k_csr_type), rm::k_type_float32);
    EXPECT_EQ(t.getCSR(rm::k_csr_op), rm::k_op_sum);
    EXPECT_EQ(t.getCSR(rm::k_csr_id), rm::k_model_id);
    EXPECT_EQ(t.getCSR(rm::k_csr_types), 0x33Fu); // all but float16 (6) and bfloat16 (7)
    EXPECT_EQ(t.getCSR(rm::k_csr_elements), 3u);
    // Read-only registers keep their value when the host writes them.
    t.setCSR(0, rm::k_csr_id);
    t.setCSR(0, rm::k_csr_types);
    EXPECT_EQ(t.getCSR(rm::k_csr_id), rm::k_model_id);
    EXPECT_EQ(t.getCSR(rm::k_csr_types), 0x33Fu);
    // The element counter can be reset.
    t.setCSR(0, rm::k_csr_elements);
    EXPECT_EQ(t.getCSR(rm::k_csr_elements), 0u);
}

TEST_F(SimReduceModel, InPlaceOnPlainHostMemory) {
    cThread t(0, getpid(), 42);
    t.setCSR(rm::k_type_int64, rm::k_csr_type);
    t.setCSR(rm::k_op_max, rm::k_csr_op);
    std::vector<int64_t> a(777), b(777);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<int64_t>(i % 5) - 2;
        b[i] = static_cast<int64_t>(i % 7) - 3;
    }
    const auto ref_a = a;
    const auto len = static_cast<uint32_t>(a.size() * 8);
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = a.data(), .len = len, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a.data(), .len = len, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b.data(), .len = len, .dest = 1});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], std::max(ref_a[i], b[i])) << i;
}

TEST_F(SimReduceModel, StreamsSplitInsideElements) {
    cThread t(0, getpid(), 43);
    t.setCSR(rm::k_type_uint64, rm::k_csr_type);
    t.setCSR(rm::k_op_sum, rm::k_csr_op);
    const std::size_t n = 9;
    auto* a = static_cast<uint64_t*>(t.getMem({CoyoteAllocType::REG, n * 8}));
    auto* b = static_cast<uint64_t*>(t.getMem({CoyoteAllocType::REG, n * 8}));
    auto* out = static_cast<uint64_t*>(t.getMem({CoyoteAllocType::REG, n * 8}));
    for (std::size_t i = 0; i < n; ++i) {
        a[i] = 0xffffffffffffff00ull + i;
        b[i] = 0x1000 * (i + 1);
    }
    auto* ab = reinterpret_cast<char*>(a);
    auto* bb = reinterpret_cast<char*>(b);
    auto* ob = reinterpret_cast<char*>(out);
    // Writes end inside elements (5 + 20 + 47 bytes), reads too (3 + 69 and 40 + 32 bytes).
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = ob, .len = 5, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = ob + 5, .len = 20, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = ob + 25, .len = 47, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = ab, .len = 3, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = bb, .len = 40, .dest = 1});
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
    EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 43u); // nothing pairs with a partial element
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = ab + 3, .len = 69, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = bb + 40, .len = 32, .dest = 1});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 3));
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]) << i;
    EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 0u);
}

TEST_F(SimReduceModel, OtherDestsAreIgnored) {
    cThread t(0, getpid(), 44);
    std::vector<float> x(16, 1.0f);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = x.data(), .len = 64, .dest = 2});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 0u);
    EXPECT_EQ(t.getCSR(rm::k_csr_elements), 0u);
}

TEST_F(SimReduceModel, BadRegisterCodesAreRejectedAndKeepTheSetting) {
    cThread t(0, getpid(), 45);
    t.setCSR(rm::k_type_int32, rm::k_csr_type);
    t.setCSR(rm::k_op_min, rm::k_csr_op);
    const auto inval = static_cast<int>(Errc::invalid_argument);
    {
        auto [code, what] = error_of([&] { t.setCSR(rm::k_type_float16, rm::k_csr_type); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("type code 6 (float16) is not supported"), std::string::npos) << what;
        EXPECT_NE(what.find("'reduce'"), std::string::npos) << what;
    }
    for (uint64_t bad : {uint64_t{10}, uint64_t{63}, uint64_t{64}, ~uint64_t{0}}) {
        auto [code, what] = error_of([&] { t.setCSR(bad, rm::k_csr_type); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("type code " + std::to_string(bad)), std::string::npos) << what;
    }
    EXPECT_EQ(t.getCSR(rm::k_csr_type), rm::k_type_int32);
    {
        auto [code, what] = error_of([&] { t.setCSR(7, rm::k_csr_op); });
        EXPECT_EQ(code, inval);
        EXPECT_NE(what.find("op code 7 is not an operation"), std::string::npos) << what;
    }
    EXPECT_EQ(t.getCSR(rm::k_csr_op), rm::k_op_min);
    // The model still reduces with the kept setting.
    std::vector<int32_t> a{5, -1, 9}, b{2, 3, -9};
    EXPECT_EQ(reduce_on(t, a, b, Path::read_write), (std::vector<int32_t>{2, -1, -9}));
}

TEST_F(SimReduceModel, BitwiseOpOnFloatPassesInputThroughAndReportsTheError) {
    cThread t(0, getpid(), 46);
    t.setCSR(rm::k_type_float64, rm::k_csr_type);
    t.setCSR(rm::k_op_bxor, rm::k_csr_op); // accepted: the combination is checked on data
    std::vector<double> a{1.0, 2.0, 3.0}, b{4.0, 5.0, 6.0}, out(3, 0.0);
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = out.data(), .len = 24, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a.data(), .len = 24, .dest = 0});
    auto [code, what] = error_of([&] {
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b.data(), .len = 24, .dest = 1});
        // The error reaches the next checkCompleted after the model ran (bounded wait).
        (void)coyote_test::eventually([&] {
            (void)t.checkCompleted(CoyoteOper::LOCAL_WRITE);
            return false;
        });
    });
    EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument));
    EXPECT_NE(what.find("bxor is not defined for float64"), std::string::npos) << what;
    // The write still completed (no hang), with input dest 0 unchanged.
    EXPECT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(out, a);
    EXPECT_EQ(t.getCSR(rm::k_csr_errors), 1u);
    EXPECT_EQ(t.getCSR(rm::k_csr_elements), 0u);
}

TEST_F(SimReduceModel, DiscardDropsUnpairedInput) {
    cThread t(0, getpid(), 47);
    t.setCSR(rm::k_type_uint32, rm::k_csr_type);
    std::vector<uint32_t> stale{100, 200, 300};
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = stale.data(), .len = 12, .dest = 0});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 12u);
    t.setCSR(rm::k_ctrl_discard, rm::k_csr_ctrl);
    EXPECT_EQ(t.getCSR(rm::k_csr_buffered), 0u);
    EXPECT_EQ(t.getCSR(rm::k_csr_ctrl), 0u);
    std::vector<uint32_t> a{1, 2, 3}, b{10, 20, 30};
    EXPECT_EQ(reduce_on(t, a, b, Path::read_write), (std::vector<uint32_t>{11, 22, 33}));
}

TEST_F(SimReduceModel, LargeVectorThroughHugePages) {
    cThread t(0, getpid(), 48);
    t.setCSR(rm::k_type_float64, rm::k_csr_type);
    t.setCSR(rm::k_op_sum, rm::k_csr_op);
    const std::size_t n = (3u << 20) / 8 + 5; // crosses 2 MiB pages, odd count
    const auto bytes = static_cast<uint32_t>(n * 8);
    auto* a = static_cast<double*>(t.getMem({CoyoteAllocType::HPF, bytes}));
    auto* b = static_cast<double*>(t.getMem({CoyoteAllocType::HPF, bytes}));
    auto* c = static_cast<double*>(t.getMem({CoyoteAllocType::HPF, bytes}));
    for (std::size_t i = 0; i < n; ++i) {
        a[i] = static_cast<double>(i);
        b[i] = 0.5 * static_cast<double>(i % 1000);
    }
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = c, .len = bytes, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a, .len = bytes / 2, .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b, .len = bytes, .dest = 1});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = reinterpret_cast<char*>(a) + bytes / 2, .len = bytes - bytes / 2, .dest = 0});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(c[i], a[i] + b[i]) << i;
    EXPECT_EQ(t.getCSR(rm::k_csr_elements), n);
}

}  // namespace
