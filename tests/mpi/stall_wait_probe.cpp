// Stall-doctor probe for the MPI layer's waits: rank 1 reaches the out-of-band exchange late, so rank 0 waits in
// it past COYOTE_STALL_WARN_MS and its doctor must report that wait (the CTest registration's regular expression
// checks the report; under Slurm the test runs as any other 2-rank GoogleTest program).
#include <coyote/mpi/mpi.hpp>
#include <coyote/mpi/oob.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <thread>
#include <vector>

TEST(MpiStallWait, ARankLateToTheExchangeIsWaitedFor) {
    coyote::mpi::Communicator comm;
    ASSERT_EQ(comm.size(), 2) << "the probe needs 2 ranks";
    if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto oob = coyote::mpi::make_mpi_oob(comm, 1 - comm.rank());
    const std::vector<std::byte> mine(16, std::byte{static_cast<unsigned char>(comm.rank())});
    const auto theirs = oob->exchange(mine);
    ASSERT_EQ(theirs.size(), mine.size());
    EXPECT_EQ(theirs[0], std::byte{static_cast<unsigned char>(1 - comm.rank())}) << "wrong exchange payload";
    std::printf("stall wait probe rank %d done\n", comm.rank());
    std::fflush(stdout);
}
