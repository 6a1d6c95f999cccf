// One rank under a launcher environment that claims more (SLURM_NTASKS=4 set by the test): the silent
// singleton must be reported.
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

TEST(Singleton, IsDetected) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    ASSERT_EQ(size, 1);
    const char* ntasks = std::getenv("SLURM_NTASKS");
    ASSERT_NE(ntasks, nullptr) << "the test must run with SLURM_NTASKS set";
    try {
        coyote::mpi::check_launch();
        FAIL() << "silent singleton not detected";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find(std::string("SLURM_NTASKS=") + ntasks), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("singleton"), std::string::npos) << e.what();
    }
    // Environment runs the same check.
    EXPECT_THROW(coyote::mpi::Environment env, coyote::Error);
}
