// A two-rank program ported from Coyote's TCP initRDMA to coyote::mpi::initRDMA: write, connSync, read back.
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include "bootstrap_test_support.hpp"

#include <unistd.h>

#include <cstring>

using coyote::CoyoteOper;
using coyote_test::wait_count;

TEST(Porting, TwoRankProgramWithOneCall) {
    coyote::mpi::Communicator comm;
    ASSERT_EQ(comm.size(), 2) << "run with 2 ranks";
    const int peer = 1 - comm.rank();
    const bool client = comm.rank() == 0;
    const auto dev = coyote::mpi::select_device(comm);

    // Before: coyote::cThread t(0, getpid()); void* mem = t.initRDMA(size, DEF_PORT, client ? server_ip : nullptr);
    coyote::cThread thread(dev.vfid, ::getpid(), dev.device);
    const uint64_t size = 1 << 16;
    auto* mem = static_cast<uint8_t*>(coyote::mpi::initRDMA(thread, comm, peer, size));
    ASSERT_NE(mem, nullptr);
    ASSERT_NE(thread.getOob(), nullptr);
    EXPECT_EQ(thread.getOob()->is_client(), client);
    EXPECT_EQ(thread.getQpair()->local.vaddr, mem);
    EXPECT_EQ(thread.getQpair()->local.size, size);

    const uint32_t len = 8192;
    for (uint32_t i = 0; i < len; ++i) mem[i] = static_cast<uint8_t>(i * 3 + (client ? 1 : 2));
    std::memset(mem + len, 0, len);
    thread.clearCompleted();
    thread.connSync(client);
    if (client) {
        // Client writes its first half into the server's second half, then reads the server's first half back.
        thread.invoke(CoyoteOper::REMOTE_RDMA_WRITE, coyote::rdmaSg{.local_offs = 0, .remote_offs = len, .len = len});
        ASSERT_TRUE(wait_count(thread, CoyoteOper::REMOTE_RDMA_WRITE, 1));
        thread.connSync(client);
        thread.invoke(CoyoteOper::REMOTE_RDMA_READ, coyote::rdmaSg{.local_offs = len, .remote_offs = 0, .len = len});
        ASSERT_TRUE(wait_count(thread, CoyoteOper::LOCAL_WRITE, 1));
        for (uint32_t i = 0; i < len; ++i) ASSERT_EQ(mem[len + i], static_cast<uint8_t>(i * 3 + 2)) << "byte " << i;
    } else {
        thread.connSync(client);
        ASSERT_TRUE(wait_count(thread, CoyoteOper::LOCAL_WRITE, 1));
        for (uint32_t i = 0; i < len; ++i) ASSERT_EQ(mem[len + i], static_cast<uint8_t>(i * 3 + 1)) << "byte " << i;
    }
    thread.connSync(client);
    thread.closeConn();
    EXPECT_EQ(thread.getOob(), nullptr);
}
