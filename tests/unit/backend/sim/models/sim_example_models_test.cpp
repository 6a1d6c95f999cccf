// The sim models of Coyote's example vFPGAs (examples 03, 04, 07, 08, 10, 11, 12), each driven through the Coyote
// API as the example's host program drives it and checked against an independent reference: the published AES
// test vectors (FIPS-197 appendix C.1, NIST SP 800-38A F.1.1 / F.2.1) and CPU computations.
#include "unit/test_support.hpp"
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/models/examples/packet_tap.hpp"

using coyote::CoyoteAllocType;
using coyote::CoyoteOper;
using coyote::cThread;
using coyote::localSg;

using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::eventually;
using coyote_test::wait_completed;

namespace {

class SimExampleModels : public ::testing::Test {
protected:
    EnvGuard backend{"COYOTE_BACKEND", "sim"};
    EnvGuard shell{"COYOTE_SIM_SHELL", nullptr};
    EnvGuard config{"COYOTE_SIM_CONFIG", nullptr};
};

// ---- AES helpers ------------------------------------------------------------------------------------

std::vector<uint8_t> from_hex(const std::string& h) {
    std::vector<uint8_t> v;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) v.push_back(static_cast<uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
    return v;
}

/// A 128-bit value given as 32 hex digits, as the example's 64-bit register pair {high, low}.
std::pair<uint64_t, uint64_t> regs_of(const std::string& hex) {
    return {std::stoull(hex.substr(16, 16), nullptr, 16), std::stoull(hex.substr(0, 16), nullptr, 16)};
}

/// The example's AES pipeline takes bits [127:120] of a 128-bit stream word as the first AES byte, and a stream
/// word holds memory bytes 0..15 in bits [7:0] .. [127:120]: an AES block (FIPS byte order) sits in memory
/// byte-reversed. These write and read blocks of the published vectors that way.
void put_block(char* mem, const std::string& hex) {
    const auto b = from_hex(hex);
    for (std::size_t i = 0; i < 16; ++i) mem[i] = static_cast<char>(b[15 - i]);
}
std::string get_block(const char* mem) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (int i = 15; i >= 0; --i) {
        const auto c = static_cast<uint8_t>(mem[i]);
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

// NIST SP 800-38A, F.1.1 (ECB-AES128) and F.2.1 (CBC-AES128).
const std::string k_sp_key = "2b7e151628aed2a6abf7158809cf4f3c";
const std::array<std::string, 4> k_sp_plain = {"6bc1bee22e409f96e93d7e117393172a", "ae2d8a571e03ac9c9eb76fac45af8e51",
                                               "30c81c46a35ce411e5fbc1191a0a52ef", "f69f2445df4f9b17ad2b417be66c3710"};
const std::array<std::string, 4> k_sp_ecb = {"3ad77bb40d7a3660a89ecaf32466ef97", "f5d3d58503b9699de785895a96fdbaaf",
                                             "43b1cd7f598ece23881b00e3ed030688", "7b0c785e27e8ad3f8223207104725dd4"};
const std::string k_sp_iv = "000102030405060708090a0b0c0d0e0f";
const std::array<std::string, 4> k_sp_cbc = {"7649abac8119b246cee98e9b12e9197d", "5086cb9b507219ee95db113a917678b2",
                                             "73bed6b8e3c1743b7116e69e22229516", "3ff1caa1681fac09120eca307586e1a7"};

// ---- 03: AES ECB, one vFPGA per tenant ---------------------------------------------------------------------

TEST_F(SimExampleModels, AesEcbMatchesFips197AndSp800_38aOnTwoVfpgas) {
    EnvGuard m("COYOTE_SIM_MODEL", "aes_ecb");
    EnvGuard regions("COYOTE_SIM_SHELL", "n_fpga_reg=4"); // the example's N_REGIONS
    // Example 03: one cThread per vFPGA, keys through CSRs 0 (low) and 1 (high), BATCHED LOCAL_TRANSFERs of the
    // message, completion polled with checkCompleted(LOCAL_TRANSFER).
    const unsigned n_vfpga = 2, batched = 16, message = 32 * 1024;
    const std::array<std::string, 2> keys = {"000102030405060708090a0b0c0d0e0f", k_sp_key}; // FIPS-197 C.1, SP 800-38A
    std::vector<std::unique_ptr<cThread>> threads;
    std::vector<char*> src, dst;
    for (unsigned i = 0; i < n_vfpga; ++i) {
        threads.emplace_back(new cThread(static_cast<int32_t>(i), getpid(), 20));
        src.push_back(static_cast<char*>(threads[i]->getMem({CoyoteAllocType::HPF, message})));
        dst.push_back(static_cast<char*>(threads[i]->getMem({CoyoteAllocType::HPF, message})));
        for (unsigned k = 0; k < message; k += 16)
            put_block(src[i] + k, i == 0 ? "00112233445566778899aabbccddeeff" : k_sp_plain[(k / 16) % 4]);
        std::memset(dst[i], 0, message);
        const auto [low, high] = regs_of(keys[i]);
        threads[i]->setCSR(low, 0);
        threads[i]->setCSR(high, 1);
    }
    EXPECT_EQ(threads[1]->getCSR(0), 0xabf7158809cf4f3cull); // the key registers read back
    EXPECT_EQ(threads[1]->getCSR(1), 0x2b7e151628aed2a6ull);
    for (unsigned i = 0; i < n_vfpga; ++i) threads[i]->clearCompleted();
    for (unsigned p = 0; p < batched; ++p)
        for (unsigned i = 0; i < n_vfpga; ++i)
            threads[i]->invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src[i], .len = message},
                               localSg{.addr = dst[i], .len = message});
    for (unsigned i = 0; i < n_vfpga; ++i) ASSERT_TRUE(wait_completed(*threads[i], CoyoteOper::LOCAL_TRANSFER, batched));
    for (unsigned k = 0; k < message; k += 16) {
        ASSERT_EQ(get_block(dst[0] + k), "69c4e0d86a7b0430d8cdb78070b4c55a") << k; // FIPS-197 C.1
        ASSERT_EQ(get_block(dst[1] + k), k_sp_ecb[(k / 16) % 4]) << k;            // SP 800-38A F.1.1
    }
}

TEST_F(SimExampleModels, AesEcbPadsAFinalPartialBlockWithZeros) {
    EnvGuard m("COYOTE_SIM_MODEL", "aes_ecb");
    cThread t(0, getpid(), 21);
    const auto [low, high] = regs_of(k_sp_key);
    t.setCSR(low, 0);
    t.setCSR(high, 1);
    std::vector<char> in(64, 0), out(64, 0), padded(16, 0), padded_out(16, 0);
    put_block(in.data(), k_sp_plain[0]);
    for (int i = 0; i < 5; ++i) in[16 + static_cast<std::size_t>(i)] = static_cast<char>(0x41 + i);
    std::memcpy(padded.data(), in.data() + 16, 5);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = in.data(), .len = 21}, localSg{.addr = out.data(), .len = 21});
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = padded.data(), .len = 16},
             localSg{.addr = padded_out.data(), .len = 16});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 2));
    EXPECT_EQ(get_block(out.data()), k_sp_ecb[0]);
    EXPECT_EQ(std::memcmp(out.data() + 16, padded_out.data(), 5), 0); // the tail is its zero-padded block's start
    EXPECT_EQ(out[21], 0);                                            // and nothing beyond the command is written
}

// ---- 08: AES CBC, several cThreads on one vFPGA ------------------------------------------------------------

TEST_F(SimExampleModels, AesCbcMatchesSp800_38aForEachThread) {
    EnvGuard m("COYOTE_SIM_MODEL", "aes_cbc");
    // Example 08: n cThreads on vFPGA 0, thread i on dest i; key and IV through thread 0 (CSRs 0..3); before each
    // run, every thread writes its dest to CSR 4 and invokes a LOCAL_TRANSFER; repeated runs with clearCompleted.
    const unsigned n_threads = 3, size = 64, runs = 3;
    std::vector<std::unique_ptr<cThread>> threads;
    std::vector<char*> src, dst;
    for (unsigned i = 0; i < n_threads; ++i) {
        threads.emplace_back(new cThread(0, getpid(), 22));
        src.push_back(static_cast<char*>(threads[i]->getMem({CoyoteAllocType::HPF, size + 1})));
        dst.push_back(static_cast<char*>(threads[i]->getMem({CoyoteAllocType::HPF, size + 1})));
        for (unsigned b = 0; b < 4; ++b) put_block(src[i] + 16 * b, k_sp_plain[b]);
        std::memset(dst[i], 0, size + 1);
    }
    const auto [key_low, key_high] = regs_of(k_sp_key);
    const auto [iv_low, iv_high] = regs_of(k_sp_iv);
    threads[0]->setCSR(key_low, 0);
    threads[0]->setCSR(key_high, 1);
    threads[0]->setCSR(iv_low, 2);
    threads[0]->setCSR(iv_high, 3);
    for (unsigned r = 0; r < runs; ++r) {
        for (auto& t : threads) t->clearCompleted();
        for (unsigned i = 0; i < n_threads; ++i) {
            threads[i]->setCSR(i, 4);
            threads[i]->invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src[i], .len = size, .dest = i},
                               localSg{.addr = dst[i], .len = size, .dest = i});
        }
        for (auto& t : threads) ASSERT_TRUE(wait_completed(*t, CoyoteOper::LOCAL_TRANSFER, 1));
        for (unsigned i = 0; i < n_threads; ++i)
            for (unsigned b = 0; b < 4; ++b) EXPECT_EQ(get_block(dst[i] + 16 * b), k_sp_cbc[b]) << "thread " << i << " block " << b;
    }
}

TEST_F(SimExampleModels, AesCbcWaitsForTheIvOfItsDest) {
    EnvGuard m("COYOTE_SIM_MODEL", "aes_cbc");
    cThread t(0, getpid(), 23);
    std::vector<char> src(64), dst(64, 0);
    for (unsigned b = 0; b < 4; ++b) put_block(src.data() + 16 * b, k_sp_plain[b]);
    const auto [key_low, key_high] = regs_of(k_sp_key);
    const auto [iv_low, iv_high] = regs_of(k_sp_iv);
    t.setCSR(key_low, 0);
    t.setCSR(key_high, 1);
    t.setCSR(iv_low, 2);
    t.setCSR(iv_high, 3);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src.data(), .len = 64, .dest = 2},
             localSg{.addr = dst.data(), .len = 64, .dest = 2});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_TRANSFER), 0u); // no IV for dest 2 yet: the stream stalls
    t.setCSR(1, 4);                                              // an IV for dest 1 does not help
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_TRANSFER), 0u);
    t.setCSR(2, 4);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1));
    for (unsigned b = 0; b < 4; ++b) EXPECT_EQ(get_block(dst.data() + 16 * b), k_sp_cbc[b]) << b;
    EXPECT_EQ(t.getCSR(4), 0u);
}

// ---- 04: user interrupts ------------------------------------------------------------------------------------

TEST_F(SimExampleModels, UserInterruptsFireForEveryBeatStartingWith73) {
    EnvGuard m("COYOTE_SIM_MODEL", "user_interrupts");
    coyote_test::InterruptLog log;
    cThread t(0, getpid(), 24, log.callback());
    ASSERT_EQ(t.getCtid(), 0); // the example's vFPGA sends to Coyote thread 0
    // Example 04: 64 bytes of ints i, data[0] = 73, LOCAL_READ, poll, clear; then data[0] = 1024: no interrupt.
    auto* data = static_cast<int*>(t.getMem({CoyoteAllocType::REG, 256}));
    for (int i = 0; i < 64; ++i) data[i] = i;
    data[0] = 73;
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data, .len = 64});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    t.clearCompleted();
    ASSERT_TRUE(log.wait_for(1));
    EXPECT_EQ(log.values()[0], 73);
    data[0] = 1024;
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data, .len = 64});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    t.clearCompleted();
    // Four beats, 73 at the start of beats 1 and 3 (and inside beat 0, which does not count).
    data[0] = 5;
    data[3] = 73;
    data[16] = 73;
    data[48] = 73;
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data, .len = 256});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    t.clearCompleted();
    // The same through two commands that split beat 1 (at byte 66): the beat count runs per command.
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data, .len = 66});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data + 16, .len = 190});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 2));
    // Beat 1 of the first command (data[16]) and beats 0 and 2 of the second (data[16], data[48]).
    ASSERT_TRUE(log.wait_for(6));
    EXPECT_FALSE(log.more_than(6, std::chrono::milliseconds(100)));
    EXPECT_EQ(log.values(), (std::vector<int>(6, 73)));
}

// A handler that does not return within COYOTE_HANDLER_WAIT_MS no longer hangs the cThread's destructor (it
// joined forever); its thread runs on detached and ends cleanly once the handler returns.
TEST_F(SimExampleModels, AHandlerThatDoesNotReturnDoesNotHangTheClose) {
    EnvGuard m("COYOTE_SIM_MODEL", "user_interrupts"), w("COYOTE_HANDLER_WAIT_MS", "300");
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto entered = std::make_shared<std::atomic<bool>>(false);
    auto left = std::make_shared<std::atomic<bool>>(false);
    const auto t0 = std::chrono::steady_clock::now();
    {
        cThread t(0, getpid(), 25, [release, entered, left](int) {
            *entered = true;
            while (!*release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            *left = true;
        });
        auto* data = static_cast<int*>(t.getMem({CoyoteAllocType::REG, 64}));
        data[0] = 73;
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = data, .len = 64});
        ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!*entered && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        ASSERT_TRUE(entered->load());
    } // the destructor waits 300 ms for the handler, then lets it go
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    EXPECT_FALSE(left->load());
    *release = true;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!*left && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(left->load());
}

// ---- 07: perf_fpga --------------------------------------------------------------------------------------------

/// One benchmark run as example 07's run_bench does it; returns the timer in ns.
double perf_fpga_run(cThread& t, unsigned size, int* mem, unsigned transfers, uint64_t oper) {
    const uint64_t n_beats = transfers * ((size + 64 - 1) / 64);
    t.setCSR(reinterpret_cast<uint64_t>(mem), 3);
    t.setCSR(size, 4);
    t.setCSR(static_cast<uint64_t>(t.getCtid()), 5);
    t.setCSR(transfers, 6);
    t.setCSR(n_beats, 7);
    t.setCSR(oper, 0);
    EXPECT_TRUE(eventually([&] { return t.getCSR(1) != 0; }));
    return static_cast<double>(t.getCSR(2)) * 4.0;
}

TEST_F(SimExampleModels, PerfFpgaReadsAndWritesTheBufferItself) {
    EnvGuard m("COYOTE_SIM_MODEL", "perf_fpga");
    cThread t(0, getpid(), 25);
    const unsigned max_size = 1u << 20;
    auto* mem = static_cast<int*>(t.getMem({CoyoteAllocType::HPF, max_size}));
    for (unsigned size = 64; size <= max_size; size *= 16) {
        for (unsigned i = 0; i < size / 4; ++i) mem[i] = static_cast<int>(i * 7) - 512;
        // READ: the buffer is left as it is; 32 and 1 repetitions complete.
        EXPECT_GT(perf_fpga_run(t, size, mem, 32, 0x1), 0.0);
        EXPECT_EQ(t.getCSR(1), 32u);
        EXPECT_EQ(t.getCSR(0), 0u); // the start bit is a pulse
        for (uint32_t r = 3; r < 9; ++r) EXPECT_EQ(t.getCSR(r), 0u) << r; // the parser reads back only 1 and 2
        for (unsigned i = 0; i < size / 4; ++i) ASSERT_EQ(mem[i], static_cast<int>(i * 7) - 512) << i;
        EXPECT_GT(perf_fpga_run(t, size, mem, 1, 0x1), 0.0);
        EXPECT_EQ(t.getCSR(1), 1u);
        // WRITE: beat b of repetition r carries r * beats + b + 1 in its first 8 bytes (the last repetition stays).
        const unsigned reps = 32, beats = size / 64;
        EXPECT_GT(perf_fpga_run(t, size, mem, reps, 0x2), 0.0);
        EXPECT_EQ(t.getCSR(1), reps);
        for (unsigned b = 0; b < beats; ++b) {
            uint64_t v;
            std::memcpy(&v, reinterpret_cast<char*>(mem) + 64 * b, 8);
            ASSERT_EQ(v, uint64_t{reps - 1} * beats + b + 1) << "size " << size << " beat " << b;
            for (unsigned k = 2; k < 16; ++k) ASSERT_EQ(mem[16 * b + k], 0) << b;
        }
    }
    // The host cannot overwrite the read-only registers; an unmapped buffer fails the start, naming the address.
    t.setCSR(99, 1);
    EXPECT_EQ(t.getCSR(1), 32u);
    t.setCSR(0x10, 3);
    t.setCSR(64, 4);
    t.setCSR(1, 6);
    auto [code, what] = error_of([&] { t.setCSR(0x2, 0); });
    EXPECT_NE(code, 0);
    EXPECT_NE(what.find("0x10"), std::string::npos) << what;
}

// ---- 12: int32 vector add -------------------------------------------------------------------------------------

TEST_F(SimExampleModels, VaddInt32AddsTwoIntStreams) {
    EnvGuard m("COYOTE_SIM_MODEL", "vadd_int32");
    cThread t(0, getpid(), 26);
    for (unsigned size : {1024u, 1000u, 3u}) {
        // Example 12: a (dest 0), b (dest 1) read, c (dest 0) written, poll both counters.
        auto* a = static_cast<int*>(t.getMem({CoyoteAllocType::HPF, size * 4}));
        auto* b = static_cast<int*>(t.getMem({CoyoteAllocType::HPF, size * 4}));
        auto* c = static_cast<int*>(t.getMem({CoyoteAllocType::HPF, size * 4}));
        for (unsigned i = 0; i < size; ++i) {
            a[i] = std::rand() % 1024 - 512;
            b[i] = std::rand() % 1024 - 512;
            c[i] = 0;
        }
        a[0] = 0x7fffffff; // wraps, as 32-bit hardware adders do
        b[0] = 1;
        t.clearCompleted();
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a, .len = size * 4, .dest = 0});
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b, .len = size * 4, .dest = 1});
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = c, .len = size * 4, .dest = 0});
        ASSERT_TRUE(eventually([&] {
            return t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 1 && t.checkCompleted(CoyoteOper::LOCAL_READ) == 2;
        }));
        EXPECT_EQ(c[0], static_cast<int>(0x80000000u));
        for (unsigned i = 1; i < size; ++i) ASSERT_EQ(c[i], a[i] + b[i]) << "size " << size << " element " << i;
        t.freeMem(a);
        t.freeMem(b);
        t.freeMem(c);
    }
}

// ---- 10: Euclidean distance and cosine similarity ---------------------------------------------------------

/// One task as example 10's service functions run it: a (dest 0), b (dest 1) read, 4 bytes of c written.
float vector_task(cThread& t, const float* a, const float* b, float* c, std::size_t size) {
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = const_cast<float*>(a), .len = static_cast<uint32_t>(size * 4), .dest = 0});
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = const_cast<float*>(b), .len = static_cast<uint32_t>(size * 4), .dest = 1});
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = c, .len = 4, .dest = 0});
    EXPECT_TRUE(eventually([&] {
        return t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 1 && t.checkCompleted(CoyoteOper::LOCAL_READ) == 2;
    }));
    t.clearCompleted();
    return c[0];
}

TEST_F(SimExampleModels, VectorSimilarityModelsMatchTheCpu) {
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> dis(-512.0, 512.0);
    for (const char* model : {"euclidean_distance", "cosine_similarity"}) {
        EnvGuard m("COYOTE_SIM_MODEL", model);
        cThread t(0, getpid(), 27);
        const bool cosine = std::string(model) == "cosine_similarity";
        for (std::size_t size : {1024u, 1000u, 1u}) {
            // The client's buffers come from aligned_alloc, not getMem.
            auto* a = static_cast<float*>(std::aligned_alloc(coyote::PAGE_SIZE, 4096 * 4));
            auto* b = static_cast<float*>(std::aligned_alloc(coyote::PAGE_SIZE, 4096 * 4));
            auto* c = static_cast<float*>(std::aligned_alloc(coyote::PAGE_SIZE, coyote::PAGE_SIZE));
            for (std::size_t i = 0; i < size; ++i) {
                a[i] = dis(gen);
                b[i] = dis(gen);
            }
            c[0] = 0;
            float expected = 0, norm_a = 0, norm_b = 0;
            for (std::size_t i = 0; i < size; ++i) {
                if (cosine) {
                    expected += a[i] * b[i];
                    norm_a += a[i] * a[i];
                    norm_b += b[i] * b[i];
                } else {
                    expected += (a[i] - b[i]) * (a[i] - b[i]);
                }
            }
            expected = cosine ? expected / (std::sqrt(norm_a) * std::sqrt(norm_b)) : std::sqrt(expected);
            for (int rep = 0; rep < 2; ++rep) { // the kernel starts over after each result
                const float got = vector_task(t, a, b, c, size);
                EXPECT_NEAR(got, expected, std::max(1e-3, 1e-6 * std::fabs(expected))) << model << " size " << size;
            }
            std::free(a);
            std::free(b);
            std::free(c);
        }
    }
}

// ---- 11: packet sniffer --------------------------------------------------------------------------------------

/// Stands in for the card memory of the device: records what the sniffer writes where.
struct RecordingCard final : coyote::detail::sim::sniffer::CardPort {
    std::mutex mtx;
    std::vector<std::pair<uint64_t, std::vector<std::byte>>> writes;
    void write(uint64_t vaddr, std::span<const std::byte> data) override {
        std::lock_guard lk(mtx);
        writes.emplace_back(vaddr, std::vector<std::byte>(data.begin(), data.end()));
    }
};

/// The captured length of the frame at `p`, as example 11's pcap conversion computes it for IPv4 and ARP frames
/// (its RoCEv2 branch compares bytes 36, 37 with 0xb7, 0x12, as Coyote's packet filter does, so it takes RoCEv2
/// frames on the wire, 0x12, 0xb7, for plain UDP: their whole IPv4 length).
std::size_t converter_caplen(const std::byte* p) {
    const auto u = [&](std::size_t i) { return static_cast<unsigned>(p[i]); };
    if (u(12) == 0x08 && u(13) == 0x06) return 14 + 28; // ARP
    return std::max<std::size_t>(64, 14 + u(16) * 256 + u(17));
}

TEST_F(SimExampleModels, PacketSnifferCapturesNicFramesInTheExamplesFormat) {
    namespace sn = coyote::detail::sim::sniffer;
    EnvGuard m("COYOTE_SIM_MODEL", "packet_sniffer");
    const uint32_t device = 28;
    RecordingCard card;
    sn::attach_card_port(device, 0, &card); // what the sim device does for its card memory
    cThread t(0, getpid(), device);
    // Example 11: a huge-page buffer offloaded to the card, CSRs reset, buffer registers, CTRL_1 = 1, filter,
    // CTRL_0 = 1, wait for the state to leave idle; ... CTRL_0 = 0, wait for idle, LOCAL_SYNC, read SNIFFER_SIZE.
    const uint64_t len = coyote::HUGE_PAGE_SIZE;
    void* mem = t.getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(len)});
    std::memset(mem, 0, len);
    coyote::syncSg sg{.addr = mem, .len = len};
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, sg);
    t.setCSR(0, 0);
    t.setCSR(0, 1);
    t.setCSR(reinterpret_cast<uint64_t>(mem), 6);
    t.setCSR(len, 7);
    t.setCSR(static_cast<uint64_t>(t.getCtid()), 8);
    t.setCSR(0, 9);
    t.setCSR(1, 1);
    // --no-roce-payload-v4, --no-arp: the RoCEv2 bit leaves the NIC's frames whole, as on the FPGA (see
    // sim_sniffer_filter_test.cpp); the ARP frame is dropped.
    const uint64_t filter = (1ull << 31) | (1ull << 16);
    t.setCSR(filter, 2);
    EXPECT_FALSE(sn::active(device));
    t.setCSR(1, 0);
    ASSERT_TRUE(eventually([&] { return static_cast<uint8_t>(t.getCSR(3)) != 0; }));
    ASSERT_TRUE(sn::active(device));

    // What the NIC hands over: an RDMA WRITE ONLY with 100 bytes, its ACK, a READ RESPONSE ONLY, and an ARP.
    std::vector<std::byte> payload(100);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i);
    sn::RoceHeader h{.src_mac = 0x0a0000000001, .dst_mac = 0x0a0000000002, .src_ip = 0x0a000001, .dst_ip = 0x0a000002,
                     .opcode = 0x0a, .dest_qp = 17, .psn = 5, .ack_req = true, .vaddr = 0x1000, .rkey = 9, .dma_len = 100};
    const auto write = sn::build_roce_frame(h, payload);
    h.opcode = 0x11;
    const auto ack = sn::build_roce_frame(h, {});
    h.opcode = 0x10;
    const auto read_resp = sn::build_roce_frame(h, std::span<const std::byte>(payload.data(), 32));
    std::vector<std::byte> arp(42, std::byte{0});
    arp[12] = std::byte{0x08};
    arp[13] = std::byte{0x06};
    sn::capture(device, sn::Direction::tx, write);
    sn::capture(device, sn::Direction::rx, ack);
    sn::capture(device, sn::Direction::tx, arp); // filtered out
    sn::capture(device, sn::Direction::rx, read_resp);
    sn::capture(device + 1, sn::Direction::rx, write); // another device: no sniffer there

    t.setCSR(0, 0);
    ASSERT_TRUE(eventually([&] { return static_cast<uint8_t>(t.getCSR(3)) == 0; }));
    EXPECT_FALSE(sn::active(device));
    sn::capture(device, sn::Direction::tx, write); // after the stop: not captured
    t.invoke(CoyoteOper::LOCAL_SYNC, sg);
    const uint64_t size = t.getCSR(4);

    // The IPv4 header checksum of the frames holds.
    uint32_t sum = 0;
    for (std::size_t i = 14; i < 34; i += 2) sum += (static_cast<uint32_t>(write[i]) << 8) | static_cast<uint32_t>(write[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    EXPECT_EQ(sum, 0xffffu);

    // The records: each frame whole, as the converter reads it, padded to whole 64-byte beats, back to back.
    std::vector<std::byte> buf(len, std::byte{0});
    {
        std::lock_guard lk(card.mtx);
        for (const auto& [va, bytes] : card.writes) {
            ASSERT_GE(va, reinterpret_cast<uint64_t>(mem));
            ASSERT_LE(va - reinterpret_cast<uint64_t>(mem) + bytes.size(), len);
            std::memcpy(buf.data() + (va - reinterpret_cast<uint64_t>(mem)), bytes.data(), bytes.size());
        }
    }
    const std::vector<std::vector<std::byte>> expected = {write, ack, read_resp};
    std::size_t off = 0;
    for (const auto& f : expected) {
        const std::size_t cap = converter_caplen(buf.data() + off);
        EXPECT_EQ(cap, std::max<std::size_t>(64, f.size())) << "record at " << off;
        EXPECT_EQ(std::memcmp(buf.data() + off, f.data(), std::min(cap, f.size())), 0) << "record at " << off;
        const std::size_t kept = std::min(cap, f.size());
        for (std::size_t i = kept; i < (cap - 1) / 64 * 64 + 64; ++i) ASSERT_EQ(buf[off + i], std::byte{0}) << off + i;
        off += (cap - 1) / 64 * 64 + 64;
    }
    EXPECT_EQ(off, 64u * 6); // WRITE ONLY of 100 bytes: 174 bytes -> 3 beats; ACK: 62 -> 1; READ RESPONSE: 94 -> 2
    EXPECT_EQ(size, off);
    t.setCSR(0, 0);
    t.setCSR(0, 1);
    sn::attach_card_port(device, 0, nullptr);
}

/// Example 11's host buffer for a capture: `len` zeroed bytes of HPF memory, given to the sniffer as its host
/// buffer and length (CSRs 6, 7) and marked valid (CTRL_1), with no filter (CSR 2).
std::byte* zeroed_capture_buffer(cThread& t, uint64_t len) {
    auto* mem = static_cast<std::byte*>(t.getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(len)}));
    std::memset(mem, 0, len);
    t.setCSR(reinterpret_cast<uint64_t>(mem), 6);
    t.setCSR(len, 7);
    t.setCSR(1, 1);
    t.setCSR(0, 2);
    return mem;
}

TEST_F(SimExampleModels, PacketSnifferTakesFramesFromAnotherThreadIntoTheHostBufferWithoutACardPort) {
    namespace sn = coyote::detail::sim::sniffer;
    EnvGuard m("COYOTE_SIM_MODEL", "packet_sniffer");
    EnvGuard no_card("COYOTE_SIM_SHELL", "mem=0"); // no card memory: the device offers the sniffer no card port
    const uint32_t device = 29;
    cThread t(0, getpid(), device);
    const uint64_t len = 64 * 1024;
    std::byte* mem = zeroed_capture_buffer(t, len);
    std::vector<std::byte> payload(300, std::byte{0x5a});
    const auto frame = sn::build_roce_frame(sn::RoceHeader{.opcode = 0x0a, .dest_qp = 3, .dma_len = 300}, payload);
    const std::size_t record = (frame.size() + 63) / 64 * 64; // 366 bytes -> 6 beats
    std::atomic<bool> go{true};
    std::thread nic([&] {
        while (go.load()) sn::capture(device, sn::Direction::tx, frame);
    });
    t.setCSR(1, 0);
    EXPECT_TRUE(eventually([&] { // register writes flush what the NIC queued
        t.setCSR(1, 1);
        return t.getCSR(4) >= 8 * record;
    }));
    t.setCSR(0, 0);
    go.store(false);
    nic.join();
    const uint64_t size = t.getCSR(4);
    EXPECT_GT(size, 0u);
    EXPECT_LE(size, len);
    EXPECT_EQ(size % record, len % record == 0 ? 0u : size % record); // whole records, but for one cut at the end
    for (uint64_t off = 0; off + record <= size; off += record)
        ASSERT_EQ(std::memcmp(mem + off, frame.data(), frame.size()), 0) << off;
}

TEST_F(SimExampleModels, PacketSnifferKeepsWholeRecordsFromConcurrentNicsAndStopsAtTheBuffersEnd) {
    namespace sn = coyote::detail::sim::sniffer;
    EnvGuard m("COYOTE_SIM_MODEL", "packet_sniffer");
    EnvGuard no_card("COYOTE_SIM_SHELL", "mem=0");
    const uint32_t device = 30;
    cThread t(0, getpid(), device);
    const uint64_t len = 64 * 1024;
    std::byte* mem = zeroed_capture_buffer(t, len);
    // Two NIC threads, each with its own frame (queue pair and payload), 200 frames each: more than the buffer holds.
    std::vector<std::vector<std::byte>> frames;
    for (uint32_t qp : {1u, 2u}) {
        std::vector<std::byte> payload(300, static_cast<std::byte>(0x40 + qp));
        frames.push_back(sn::build_roce_frame(sn::RoceHeader{.opcode = 0x0a, .dest_qp = qp, .dma_len = 300}, payload));
    }
    const std::size_t record = (frames[0].size() + 63) / 64 * 64;
    t.setCSR(1, 0);
    std::vector<std::thread> nics;
    for (std::size_t i = 0; i < 2; ++i)
        nics.emplace_back([&, i] {
            for (int n = 0; n < 200; ++n) sn::capture(device, sn::Direction::rx, frames[i]);
        });
    for (auto& n : nics) n.join();
    t.setCSR(0, 0);
    sn::capture(device, sn::Direction::rx, frames[0]); // after the stop: dropped
    const uint64_t size = t.getCSR(4);
    EXPECT_EQ(size, len) << "the capture fills the buffer and stops at its end";
    std::size_t whole = 0;
    for (uint64_t off = 0; off + record <= size; off += record, ++whole) {
        const bool first = std::memcmp(mem + off, frames[0].data(), frames[0].size()) == 0;
        const bool second = std::memcmp(mem + off, frames[1].data(), frames[1].size()) == 0;
        ASSERT_TRUE(first || second) << "record at " << off << " is one whole frame";
        for (std::size_t i = frames[0].size(); i < record; ++i) ASSERT_EQ(mem[off + i], std::byte{0}) << off + i;
    }
    EXPECT_EQ(whole, len / record);
    // The cut record at the end: the beginning of a frame, up to the buffer's end.
    const uint64_t cut = whole * record;
    EXPECT_TRUE(std::memcmp(mem + cut, frames[0].data(), len - cut) == 0 ||
                std::memcmp(mem + cut, frames[1].data(), len - cut) == 0);
}

}  // namespace
