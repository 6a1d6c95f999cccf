// cThread::connSync on the server side against a client that leaves: the stock close message (an int32 0, then
// the end of the connection) is not a sync. A stock client's connSync, which also sends 0, still syncs.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <chrono>
#include <string>

#include <unistd.h>

#include "unit/rdma_test_support.hpp"

using coyote_test::check;
using coyote_test::Peer;
using coyote_test::run_pair;

namespace {

void env() { coyote_test::child_env("shm"); }

/// A cThread that syncs as stock Coyote's client does (sendAck(0), then readAck: both protected).
class StockClient : public coyote::cThread {
public:
    using cThread::cThread;
    void stock_sync() {
        sendAck(0);
        (void)readAck();
    }
};

}  // namespace

TEST(CThreadConnSync, AClientThatClosesInsteadOfSyncingFailsTheServersSync) {
    run_pair(env, 4096,
             [](Peer& p) {
                 p.sync();
                 const auto start = std::chrono::steady_clock::now();
                 try {
                     p.sync(); // the client destroyed its cThread (it failed before its second sync)
                 } catch (const coyote::Error& e) {
                     check(e.code() == coyote::Errc::peer_gone, std::string("peer_gone expected: ") + e.what());
                     check(std::string(e.what()).find("closed the out-of-band connection instead of syncing") !=
                               std::string::npos,
                           std::string("the error says the client left: ") + e.what());
                     check(std::chrono::steady_clock::now() - start < std::chrono::seconds(5), "failed at once");
                     return;
                 }
                 check(false, "connSync returned as if the client had synced, though it closed the connection");
             },
             [](Peer& p) { p.sync(); });
}

TEST(CThreadConnSync, AStockClientsSyncOfZeroStillSyncs) {
    const uint16_t port = coyote_test::free_port();
    coyote_test::Child server([&] {
        env();
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(4096, port);
        t.connSync(false);
        t.connSync(false);
        return 0;
    }, 60);
    coyote_test::Child client([&] {
        env();
        StockClient t(0, ::getpid());
        (void)t.initRDMA(4096, port, "127.0.0.1");
        t.stock_sync();
        t.stock_sync();
        return 0;
    }, 60);
    EXPECT_EQ(server.wait(std::chrono::seconds(90)), 0);
    EXPECT_EQ(client.wait(std::chrono::seconds(90)), 0);
}
