// Unit tests of cBench: call protocol (prep before every run, warm-ups untimed) and nearest-rank statistics.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <coyote/cBench.hpp>
#include <coyote/error.hpp>

namespace {

using coyote::cBench;
using coyote::detail::nearest_rank_percentile;

TEST(CBench, DefaultsMatchCoyote) {
    cBench bench;
    EXPECT_EQ(bench.getRuns(), 1000u);
    EXPECT_EQ(bench.getWarmups(), 100u);
    EXPECT_TRUE(bench.getAll().empty());
    EXPECT_TRUE(std::isnan(bench.getAvg()));
}

TEST(CBench, PrepRunsBeforeEveryRunIncludingWarmups) {
    cBench bench(7, 3);
    std::string log;
    bench.execute([&] { log += 'B'; }, [&] { log += 'P'; });
    std::string expected;
    for (int i = 0; i < 10; ++i) expected += "PB";
    EXPECT_EQ(log, expected);
}

TEST(CBench, WarmupsAreNotRecorded) {
    cBench bench(5, 4);
    int bench_calls = 0;
    int prep_calls = 0;
    bench.execute([&] { ++bench_calls; }, [&] { ++prep_calls; });
    EXPECT_EQ(bench_calls, 9);
    EXPECT_EQ(prep_calls, 9);
    EXPECT_EQ(bench.getAll().size(), 5u);
}

TEST(CBench, StatisticsAreOrdered) {
    cBench bench(200, 10);
    volatile unsigned sink = 0;
    unsigned call = 0;
    // Work that grows with the call index, so the runs are not all equal.
    bench.execute(
        [&] {
            for (unsigned i = 0; i < call * 50; ++i) sink = sink + i;
        },
        [&] { ++call; });
    ASSERT_EQ(bench.getAll().size(), 200u);
    for (double v : bench.getAll()) EXPECT_GE(v, 0.0);
    EXPECT_LE(bench.getMin(), bench.getP25());
    EXPECT_LE(bench.getP25(), bench.getP50());
    EXPECT_LE(bench.getP50(), bench.getP75());
    EXPECT_LE(bench.getP75(), bench.getP95());
    EXPECT_LE(bench.getP95(), bench.getP99());
    EXPECT_LE(bench.getP99(), bench.getMax());
    EXPECT_LE(bench.getMin(), bench.getAvg());
    EXPECT_GE(bench.getMax(), bench.getAvg());
    // Statistics are the nearest-rank values of the recorded runs.
    EXPECT_EQ(bench.getP95(), nearest_rank_percentile(bench.getAll(), 95.0));
    EXPECT_EQ(bench.getMin(), nearest_rank_percentile(bench.getAll(), 0.0));
    EXPECT_EQ(bench.getMax(), nearest_rank_percentile(bench.getAll(), 100.0));
}

TEST(CBench, ZeroRunsGivesNanNotACrash) {
    cBench bench(0, 3);
    int calls = 0;
    bench.execute([&] { ++calls; }, [] {});
    EXPECT_EQ(calls, 3);
    EXPECT_TRUE(bench.getAll().empty());
    EXPECT_TRUE(std::isnan(bench.getAvg()));
    EXPECT_TRUE(std::isnan(bench.getMin()));
    EXPECT_TRUE(std::isnan(bench.getMax()));
    EXPECT_TRUE(std::isnan(bench.getP25()));
    EXPECT_TRUE(std::isnan(bench.getP50()));
    EXPECT_TRUE(std::isnan(bench.getP75()));
    EXPECT_TRUE(std::isnan(bench.getP95()));
    EXPECT_TRUE(std::isnan(bench.getP99()));
}

TEST(CBench, PrepArgumentsAreForwarded) {
    cBench bench(2, 1);
    std::vector<int> seen;
    bench.execute([] {}, [&](int a, int b) { seen.push_back(a + b); }, 3, 4);
    EXPECT_EQ(seen, (std::vector<int>{7, 7, 7}));
}

TEST(CBench, BenchArgumentsWithExplicitTemplateArguments) {
    cBench bench(2, 0);
    int total = 0;
    auto bench_fn = [&](int v) { total += v; };
    auto prep_fn = [] {};
    bench.execute<decltype(bench_fn), int>(bench_fn, 5, prep_fn);
    EXPECT_EQ(total, 10);
}

TEST(CBench, ExecuteWithoutPrep) {
    cBench bench(3, 2);
    int calls = 0;
    bench.execute([&] { ++calls; });
    EXPECT_EQ(calls, 5);
    EXPECT_EQ(bench.getAll().size(), 3u);
}

TEST(CBench, SecondExecuteReplacesResults) {
    cBench bench(4, 0);
    bench.execute([] {}, [] {});
    bench.execute([] {}, [] {});
    EXPECT_EQ(bench.getAll().size(), 4u);
}

TEST(CBench, ThrowingBenchKeepsPreviousResults) {
    cBench bench(4, 1);
    bench.execute([] {}, [] {});
    ASSERT_EQ(bench.getAll().size(), 4u);
    int calls = 0;
    EXPECT_THROW(bench.execute(
                     [&] {
                         if (++calls == 3) throw std::runtime_error("boom");
                     },
                     [] {}),
                 std::runtime_error);
    EXPECT_EQ(bench.getAll().size(), 4u);
}

TEST(NearestRank, OneToHundred) {
    std::vector<double> v;
    for (int i = 100; i >= 1; --i) v.push_back(i); // reverse order: the helper sorts
    EXPECT_EQ(nearest_rank_percentile(v, 0.0), 1.0);
    EXPECT_EQ(nearest_rank_percentile(v, 25.0), 25.0);
    EXPECT_EQ(nearest_rank_percentile(v, 50.0), 50.0);
    EXPECT_EQ(nearest_rank_percentile(v, 75.0), 75.0);
    EXPECT_EQ(nearest_rank_percentile(v, 95.0), 95.0);
    EXPECT_EQ(nearest_rank_percentile(v, 99.0), 99.0);
    EXPECT_EQ(nearest_rank_percentile(v, 100.0), 100.0);
}

TEST(NearestRank, SmallSets) {
    const std::vector<double> three{30.0, 10.0, 20.0};
    EXPECT_EQ(nearest_rank_percentile(three, 0.0), 10.0);
    EXPECT_EQ(nearest_rank_percentile(three, 33.0), 10.0);  // ceil(0.99) = 1
    EXPECT_EQ(nearest_rank_percentile(three, 34.0), 20.0);  // ceil(1.02) = 2
    EXPECT_EQ(nearest_rank_percentile(three, 50.0), 20.0);  // ceil(1.5) = 2
    EXPECT_EQ(nearest_rank_percentile(three, 99.0), 30.0);
    const std::vector<double> one{42.0};
    EXPECT_EQ(nearest_rank_percentile(one, 0.0), 42.0);
    EXPECT_EQ(nearest_rank_percentile(one, 50.0), 42.0);
    EXPECT_EQ(nearest_rank_percentile(one, 100.0), 42.0);
    const std::vector<double> four{4.0, 1.0, 3.0, 2.0};
    EXPECT_EQ(nearest_rank_percentile(four, 50.0), 2.0);  // rank 2
    EXPECT_EQ(nearest_rank_percentile(four, 75.0), 3.0);  // rank 3
    EXPECT_EQ(nearest_rank_percentile(four, 76.0), 4.0);  // ceil(3.04) = 4
}

TEST(NearestRank, EmptyIsNan) {
    EXPECT_TRUE(std::isnan(nearest_rank_percentile({}, 50.0)));
}

TEST(NearestRank, RejectsOutOfRangePercentile) {
    const std::vector<double> v{1.0, 2.0};
    EXPECT_THROW(nearest_rank_percentile(v, -1.0), coyote::Error);
    EXPECT_THROW(nearest_rank_percentile(v, 100.5), coyote::Error);
    EXPECT_THROW(nearest_rank_percentile(v, std::nan("")), coyote::Error);
    try {
        nearest_rank_percentile(v, 101.0);
        FAIL() << "expected coyote::Error";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.code(), coyote::make_error_code(coyote::Errc::invalid_argument));
    }
}

}  // namespace
