// The MPI layer's calls before MPI is initialised and after it is finalised: each must throw Errc::mpi naming the
// call (before: MPI's own abort ended the process, "MPI_Irecv() called after MPI_FINALIZE"). Own main: MPI is
// initialised and finalised inside the test. Runs with 2 ranks.
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <string>

using namespace coyote::mpi;

namespace {

/// Checks that `fn` throws Errc::mpi whose message names `call` and contains `why`.
void expect_refused(const std::function<void()>& fn, const std::string& call, const std::string& why) {
    try {
        fn();
        ADD_FAILURE() << call << " was not refused";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.code(), coyote::make_error_code(coyote::Errc::mpi)) << e.what();
        EXPECT_EQ(e.call(), call) << e.what();
        EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(CallOrder, BeforeInitAndAfterFinalizeEveryCallIsRefusedByName) {
    expect_refused([] { check_launch(); }, "check_launch", "MPI is not initialised");
    expect_refused([] { Communicator c; }, "Communicator", "MPI is not initialised");

    Environment env;
    Communicator comm;
    const int peer = 1 - comm.rank();
    ASSERT_EQ(MPI_Finalize(), MPI_SUCCESS);
    const std::string done = "MPI was finalized";
    expect_refused([&] { barrier(comm); }, "barrier", done);
    expect_refused([&] { (void)select_device(comm); }, "select_device", done);
    expect_refused([&] { conn_sync(comm, peer); }, "conn_sync", done);
    expect_refused([&] { arrive(comm, "late", BootstrapOptions{}); }, "arrive", done);
    expect_refused([&] { (void)make_mpi_oob(comm, peer); }, "make_mpi_oob", done);
    DeviceAssignment dev;
    expect_refused([&] { QpSet q(comm, dev, WiringOptions{}); }, "QpSet", done);
    expect_refused([] { Communicator c; }, "Communicator", done);
    // `comm` and `env` go out of scope after MPI_Finalize: neither calls MPI.
}
