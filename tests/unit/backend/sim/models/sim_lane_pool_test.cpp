// The model threads of the sim's word operations (models/lane_pool.hpp): every piece runs exactly once, helpers
// take part when configured (and the statistics count their pieces) and never when not, concurrent callers and a forked child get correct results, the
// automatic thread count follows the node's ranks, and a malformed COYOTE_SIM_MODEL_THREADS is an error.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/models/lane_pool.hpp"
#include "backend/sim/node_cores.hpp"
#include "coyote/error.hpp"
#include "support/env_guard.hpp"

namespace lanes = coyote::detail::sim::lanes;
using coyote_test::EnvGuard;

namespace {

/// A job that counts how often each byte offset was covered and which threads ran pieces.
struct Coverage {
    explicit Coverage(std::size_t n, std::chrono::microseconds piece_work = {}) : hits(n), work(piece_work) {}
    std::vector<std::atomic<int>> hits;
    std::chrono::microseconds work; ///< busy time per piece
    std::thread::id caller = std::this_thread::get_id();
    std::atomic<int> foreign_pieces{0};

    static void piece(const void* ctx, std::size_t from, std::size_t to) noexcept {
        auto& c = *const_cast<Coverage*>(static_cast<const Coverage*>(ctx));
        for (std::size_t i = from; i < to; ++i) c.hits[i].fetch_add(1, std::memory_order_relaxed);
        if (std::this_thread::get_id() != c.caller) c.foreign_pieces.fetch_add(1);
        const auto until = std::chrono::steady_clock::now() + c.work;
        while (std::chrono::steady_clock::now() < until) {
        }
    }

    /// The first offset not covered exactly once, or hits.size().
    std::size_t first_wrong() const {
        for (std::size_t i = 0; i < hits.size(); ++i)
            if (hits[i].load() != 1) return i;
        return hits.size();
    }
};

}  // namespace

TEST(SimLanePool, EveryPieceRunsOnceAtEveryShape) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "3");
    for (std::size_t n : {0u, 1u, 63u, 64u, 65u, 640u, 1000u, 4099u}) {
        for (std::size_t grain : {1u, 7u, 64u, 5000u}) {
            Coverage c(n);
            lanes::parallel_for(n, grain, &Coverage::piece, &c);
            EXPECT_EQ(c.first_wrong(), n) << "n " << n << " grain " << grain;
        }
    }
}

TEST(SimLanePool, HelpersTakePiecesWhenConfigured) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "3");
    EXPECT_EQ(lanes::model_threads(), 3u);
    const lanes::PoolStats before = lanes::pool_stats();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int foreign = 0, jobs = 0;
    while (foreign == 0 && std::chrono::steady_clock::now() < deadline) {
        Coverage c(16 * 64, std::chrono::microseconds(200));
        lanes::parallel_for(c.hits.size(), 64, &Coverage::piece, &c);
        ASSERT_EQ(c.first_wrong(), c.hits.size()) << "job " << jobs;
        foreign += c.foreign_pieces.load();
        ++jobs;
    }
    EXPECT_GT(foreign, 0) << "no helper ran a piece in " << jobs << " jobs of 16 pieces of 200 us";
    EXPECT_EQ(lanes::helpers_started(), 2u);
    // The statistics, whole when the last job returned: every job and piece, and the pieces the helpers ran (a
    // helper counts a piece before marking it done, so none of an earlier job's arrive late).
    const lanes::PoolStats after = lanes::pool_stats();
    EXPECT_EQ(after.jobs - before.jobs, static_cast<uint64_t>(jobs));
    EXPECT_EQ(after.pieces - before.pieces, 16u * static_cast<uint64_t>(jobs));
    EXPECT_EQ(after.helper_pieces - before.helper_pieces, static_cast<uint64_t>(foreign));
}

TEST(SimLanePool, OneThreadKeepsEveryPieceOnTheCaller) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "1");
    for (int job = 0; job < 20; ++job) {
        Coverage c(16 * 64, std::chrono::microseconds(50));
        lanes::parallel_for(c.hits.size(), 64, &Coverage::piece, &c);
        ASSERT_EQ(c.first_wrong(), c.hits.size());
        ASSERT_EQ(c.foreign_pieces.load(), 0) << "job " << job;
    }
}

TEST(SimLanePool, ConcurrentCallersEachGetTheirWholeJob) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "2");
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t)
        callers.emplace_back([&, t] {
            for (int job = 0; job < 200; ++job) {
                Coverage c(257 + static_cast<std::size_t>(t * 97 + job % 13));
                lanes::parallel_for(c.hits.size(), 16, &Coverage::piece, &c);
                if (c.first_wrong() != c.hits.size()) wrong.fetch_add(1);
            }
        });
    for (auto& t : callers) t.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(SimLanePool, AForkedChildRunsJobsWithItsOwnHelpers) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "2");
    Coverage warm(1024);
    lanes::parallel_for(warm.hits.size(), 64, &Coverage::piece, &warm); // the parent's helper exists
    ASSERT_EQ(warm.first_wrong(), warm.hits.size());
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::alarm(20); // a hang is a failure, not a stuck test
        int bad = 0;
        for (int job = 0; job < 50; ++job) {
            Coverage c(4096, std::chrono::microseconds(20));
            lanes::parallel_for(c.hits.size(), 64, &Coverage::piece, &c);
            if (c.first_wrong() != c.hits.size()) ++bad;
        }
        ::_exit(bad == 0 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child ended by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SimLanePool, AutomaticCountSharesTheCpusAmongTheNodesRanks) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", nullptr);
    EnvGuard mpich("MPI_LOCALNRANKS", nullptr);
    EnvGuard slurm("SLURM_NTASKS_PER_NODE", nullptr);
    const int64_t cpus = coyote::detail::sim::usable_cpus();
    {
        EnvGuard ranks("OMPI_COMM_WORLD_LOCAL_SIZE", "1");
        EXPECT_EQ(lanes::model_threads(), static_cast<unsigned>(std::clamp<int64_t>(cpus, 1, 4)));
    }
    {
        EnvGuard ranks("OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(cpus).c_str());
        EXPECT_EQ(lanes::model_threads(), 1u) << "one rank per CPU leaves no CPU for helpers";
    }
    EnvGuard zero("COYOTE_SIM_MODEL_THREADS", "0");
    EnvGuard ranks("OMPI_COMM_WORLD_LOCAL_SIZE", "1000");
    EXPECT_EQ(lanes::model_threads(), 1u) << "0 means automatic";
}

TEST(SimLanePool, MalformedThreadCountIsAnErrorNamingTheVariable) {
    EnvGuard threads("COYOTE_SIM_MODEL_THREADS", "many");
    Coverage c(1024);
    try {
        lanes::parallel_for(c.hits.size(), 64, &Coverage::piece, &c);
        FAIL() << "no error";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_SIM_MODEL_THREADS"), std::string::npos) << e.what();
    }
    EXPECT_EQ(c.hits[0].load(), 0) << "a piece ran before the error";
}
