// The packet sniffer (Coyote example 11) of one process captures the RDMA traffic of the user's other processes
// whose NIC is the same sim device, as the hardware's sniffer captures all traffic of its card: a server and a
// client process on device k_device run rounds of traffic (WRITE ONLYs and a READ) while a third process captures,
// over the shm and the TCP wire. Each frame passes two NICs of the device (the client's and the server's), so the
// capture holds it twice. Also: a rendezvous left by a killed sniffer and malformed rendezvous contents are ignored
// (nothing is written to the buffers they name, nor past the end of a buffer) and replaced by the next sniffer, a
// child forked by a sniffer does not keep its rendezvous, and a second sniffer of the device captures the NICs of its
// own process only.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/models/examples/capture_ring.hpp"
#include "backend/sim/models/examples/rendezvous.hpp"
#include "backend/sim/segments.hpp"
#include "unit/backend/sim/net/roce_capture.hpp"
#include "unit/rdma_test_support.hpp"

namespace sn = coyote::detail::sim::sniffer;

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::Capture;
using coyote_test::check;
using coyote_test::Child;
using coyote_test::Frame;

namespace {

/// The device of every process of these tests (a number no other test uses: the sniffers here capture every NIC
/// of it on the host).
constexpr uint32_t k_device = 62;
constexpr uint32_t k_buf = 1u << 20;
constexpr uint32_t k_writes = 3;       ///< WRITE ONLYs per round
constexpr uint32_t k_write_len = 100;  ///< one packet
constexpr uint32_t k_read_len = 64;    ///< one READ RESPONSE ONLY per round
constexpr uint32_t k_read_from = 8192; ///< remote offset of round 0's READ (round r: + r * k_read_len)
constexpr uint32_t k_read_into = 65536;
constexpr auto k_deadline = std::chrono::seconds(60);

/// Longer than a NIC's period between two reads of the rendezvous (plus a coarse clock tick): the NICs see a change
/// made before it at their next packet.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

/// One-way signal between processes of the test: a pipe, one byte per event.
class Signal {
public:
    Signal() { check(::pipe(fds_) == 0, "pipe"); }
    Signal(const Signal&) = delete;
    Signal& operator=(const Signal&) = delete;
    ~Signal() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    void post() {
        const char c = 1;
        check(::write(fds_[1], &c, 1) == 1, "signal");
    }
    /// Waits at most k_deadline for an event; false when none came.
    bool wait() {
        pollfd p{fds_[0], POLLIN, 0};
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(k_deadline);
        char c = 0;
        return ::poll(&p, 1, static_cast<int>(ms.count())) == 1 && ::read(fds_[0], &c, 1) == 1;
    }

private:
    int fds_[2] = {-1, -1};
};

/// The frames of round `round` as a sniffer captured them: `copies` of each (one per captured NIC that passed it),
/// the WRITE ONLYs with consecutive PSNs, their ACKs, the READ with the next PSN and its response; RETHs, lengths
/// and payloads as the client posted them, and the copies of a packet alike.
void check_round(const std::vector<Frame>& frames, unsigned round, unsigned copies, const std::string& who) {
    const auto what = [&](const std::string& s) { return who + ", round " + std::to_string(round) + ": " + s; };
    check(frames.size() == copies * (2 * k_writes + 2),
          what(std::to_string(frames.size()) + " frames, expected " + std::to_string(copies * (2 * k_writes + 2))));
    std::map<unsigned, std::map<uint32_t, std::vector<const Frame*>>> by; // opcode -> PSN -> its copies
    for (const Frame& f : frames) by[f.opcode()][f.psn()].push_back(&f);
    check(by[0x0a].size() == k_writes && by[0x11].size() == k_writes && by[0x0c].size() == 1 && by[0x10].size() == 1,
          what("k_writes WRITE ONLY, ACK, one READ request, one READ RESPONSE ONLY (by PSN)"));
    for (const auto& [op, psns] : by)
        for (const auto& [psn, same] : psns) {
            check(same.size() == copies,
                  what("copies of opcode " + std::to_string(op) + " PSN " + std::to_string(psn)));
            for (const Frame* f : same)
                check(f->len == same[0]->len && std::memcmp(f->p, same[0]->p, f->len) == 0, what("the copies agree"));
        }
    uint32_t first = 0; // the PSN of the first WRITE: the one whose predecessor is no WRITE
    for (const auto& kv : by[0x0a])
        if (by[0x0a].count((kv.first - 1) & 0xffffff) == 0) first = kv.first;
    const Frame& w0 = *by[0x0a][first][0];
    const uint64_t base = w0.reth_vaddr() - uint64_t{round} * k_writes * k_write_len; // the server's buffer
    for (uint32_t i = 0; i < k_writes; ++i) {
        const uint32_t psn = (first + i) & 0xffffff;
        check(by[0x0a].count(psn) == 1 && by[0x11].count(psn) == 1,
              what("WRITE and ACK of PSN first + " + std::to_string(i)));
        const Frame& w = *by[0x0a][psn][0];
        const uint64_t offs = (uint64_t{round} * k_writes + i) * k_write_len;
        check(w.reth_vaddr() == base + offs && w.reth_len() == k_write_len && w.ack_req(), what("WRITE RETH"));
        const auto pl = w.payload(70);
        check(pl.second == k_write_len &&
                  coyote_test::mismatch(pl.first, 0, k_write_len, 3, static_cast<int64_t>(offs)) < 0,
              what("WRITE payload"));
        check(by[0x11][psn][0]->aeth_syndrome() == 0, what("ACK, no NAK"));
    }
    const uint32_t read_psn = (first + k_writes) & 0xffffff;
    check(by[0x0c].count(read_psn) == 1 && by[0x10].count(read_psn) == 1,
          what("READ and its response take the next PSN"));
    const Frame& rq = *by[0x0c][read_psn][0];
    const uint32_t from = k_read_from + round * k_read_len;
    check(rq.reth_vaddr() == base + from && rq.reth_len() == k_read_len, what("READ RETH"));
    const auto rr = by[0x10][read_psn][0]->payload(58);
    check(rr.second == k_read_len && coyote_test::mismatch(rr.first, 0, k_read_len, 7, from) < 0, what("READ payload"));
    check(rq.dest_qp() == w0.dest_qp(), what("requests go to one queue pair"));
}

/// The environment of a process of these tests.
void env(const char* wire, bool sniffs) {
    coyote_test::child_env(wire);
    if (sniffs) ::setenv("COYOTE_SIM_MODEL", "packet_sniffer", 1);
}

/// A server and a client on k_device, each in a process of its own, that run a round of traffic whenever the test
/// says go: the client WRITEs k_writes WRITE ONLYs and READs once. With `client_sniffs`, the client captures each
/// round on its own vFPGA too (a second sniffer of the device) and checks that it holds one copy of each frame.
class Pair {
public:
    Pair(const char* wire, unsigned rounds, bool client_sniffs = false)
        : wire_(wire), rounds_(rounds), sniffs_(client_sniffs), port_(coyote_test::free_port()),
          server_([this] { return server(); }, 120), client_([this] { return client(); }, 120) {}

    /// Runs the next round; false when the client did not finish it in time.
    bool round() {
        go_.post();
        return done_.wait();
    }
    /// Both processes exited 0.
    void finish() {
        EXPECT_EQ(client_.wait(std::chrono::seconds(90)), 0) << "client";
        EXPECT_EQ(server_.wait(std::chrono::seconds(90)), 0) << "server";
    }

private:
    int server() {
        env(wire_, false);
        coyote::cThread t(0, ::getpid(), k_device);
        auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port_));
        coyote_test::fill(buf, k_buf, 7);
        t.connSync(false); // (1) ready
        t.connSync(false); // (2) the client is done
        return 0;
    }
    int client() {
        env(wire_, sniffs_);
        coyote::cThread t(0, ::getpid(), k_device);
        auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port_, "127.0.0.1"));
        coyote_test::fill(buf, k_buf, 3);
        t.connSync(true); // (1)
        for (unsigned r = 0; r < rounds_; ++r) {
            check(go_.wait(), "go for round " + std::to_string(r));
            std::optional<Capture> cap;
            if (sniffs_) cap.emplace(t);
            traffic(t, buf, r);
            if (cap) check_round(cap->stop(), r, 1, "the client's own sniffer");
            done_.post();
        }
        t.connSync(true); // (2)
        return 0;
    }
    static void traffic(coyote::cThread& t, const uint8_t* buf, unsigned r) {
        t.clearCompleted();
        for (uint32_t i = 0; i < k_writes; ++i) {
            const uint64_t offs = (uint64_t{r} * k_writes + i) * k_write_len;
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                     rdmaSg{.local_offs = offs, .remote_offs = offs, .len = k_write_len});
        }
        coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, k_writes, "WRITEs");
        const uint32_t from = k_read_from + r * k_read_len;
        t.invoke(CoyoteOper::REMOTE_RDMA_READ,
                 rdmaSg{.local_offs = k_read_into, .remote_offs = from, .len = k_read_len});
        coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "READ");
        check(coyote_test::mismatch(buf + k_read_into, 0, k_read_len, 7, from) < 0, "the READ brought the bytes");
    }

    const char* wire_;
    unsigned rounds_;
    bool sniffs_;
    uint16_t port_;
    Signal go_, done_;
    Child server_, client_;
};

/// A process that captures on k_device until told to stop, then checks that it holds `copies` of round `round`'s
/// frames (copies 0: nothing is checked).
class Sniffer {
public:
    Sniffer(const char* wire, unsigned round, unsigned copies)
        : child_(
              [=, this] {
                  env(wire, true);
                  coyote::cThread t(0, ::getpid(), k_device);
                  Capture cap(t);
                  started_.post();
                  check(stop_.wait(), "told to stop");
                  const std::vector<Frame> frames = cap.stop();
                  if (copies > 0)
                      check_round(frames, round, copies, "the sniffer of process " + std::to_string(::getpid()));
                  return 0;
              },
              120) {}
    /// Waits until the capture runs.
    bool started() { return started_.wait(); }
    /// Stops the capture; the process checked it and exited 0.
    void stop_and_check() {
        stop_.post();
        EXPECT_EQ(child_.wait(std::chrono::seconds(90)), 0) << "sniffer";
    }
    pid_t pid() const { return child_.pid(); }
    void kill() { child_.kill(SIGKILL); }

private:
    Signal started_, stop_;
    Child child_;
};

/// The rendezvous record of k_device as it is in /dev/shm (all zeros when there is none).
sn::RendezvousRecord published() {
    sn::RendezvousRecord r{};
    const int fd = ::shm_open(sn::rendezvous_name(k_device).c_str(), O_RDONLY, 0);
    if (fd < 0) return r;
    if (::pread(fd, &r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) r = {};
    ::close(fd);
    return r;
}

/// The permission bits of the rendezvous of k_device (-1: there is none).
int rendezvous_mode() {
    struct stat st {};
    const std::string path = "/dev/shm" + sn::rendezvous_name(k_device);
    return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

bool rendezvous_exists() {
    const int fd = ::shm_open(sn::rendezvous_name(k_device).c_str(), O_RDONLY, 0);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
}

/// Puts `bytes` in the rendezvous of k_device, as a broken program might, and announces the change (a program that
/// does not announce it is seen within k_watch_idle_period).
void put_rendezvous(const void* bytes, std::size_t n) {
    const int fd = ::shm_open(sn::rendezvous_name(k_device).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0, "open the rendezvous");
    check(::write(fd, bytes, n) == static_cast<ssize_t>(n), "write the rendezvous");
    ::close(fd);
    sn::announce(k_device);
}

class RdmaSnifferAcrossProcesses : public ::testing::Test {
protected:
    void SetUp() override { ::shm_unlink(sn::rendezvous_name(k_device).c_str()); } // a leftover of an aborted run
    void TearDown() override { EXPECT_FALSE(rendezvous_exists()) << "the last sniffer's stop removes the rendezvous"; }
};

/// Round 0 runs while nobody captures; a sniffer starts; round 1 is captured, twice (client and server NIC).
void captures_the_traffic_of_other_processes(const char* wire) {
    Pair pair(wire, 2);
    ASSERT_TRUE(pair.round());
    Sniffer sniffer(wire, 1, 2);
    ASSERT_TRUE(sniffer.started());
    const sn::RendezvousRecord r = published();
    EXPECT_TRUE(sn::record_valid(r));
    EXPECT_EQ(r.pid, sniffer.pid());
    EXPECT_EQ(rendezvous_mode(), 0600) << "readable by the user only";
    settle();
    ASSERT_TRUE(pair.round());
    sniffer.stop_and_check();
    pair.finish();
}

}  // namespace

TEST_F(RdmaSnifferAcrossProcesses, CapturesTheTrafficOfTwoOtherProcessesOverShm) {
    captures_the_traffic_of_other_processes("shm");
}

TEST_F(RdmaSnifferAcrossProcesses, CapturesTheTrafficOfTwoOtherProcessesOverTheTcpWire) {
    captures_the_traffic_of_other_processes("tcp");
}

TEST_F(RdmaSnifferAcrossProcesses, ASecondSnifferOfTheDeviceCapturesItsOwnProcessOnly) {
    // The first sniffer holds the rendezvous: it gets the server NIC's frames, the client's own sniffer the client
    // NIC's (each one copy).
    Sniffer first("shm", 0, 1);
    ASSERT_TRUE(first.started());
    Pair pair("shm", 1, true);
    settle();
    ASSERT_TRUE(pair.round());
    EXPECT_EQ(published().pid, first.pid());
    first.stop_and_check();
    pair.finish();
}

TEST_F(RdmaSnifferAcrossProcesses, ARendezvousLeftByAKilledSnifferIsIgnoredAndTakenOver) {
    Pair pair("shm", 3);
    std::optional<Sniffer> dead;
    dead.emplace("shm", 0, 0);
    ASSERT_TRUE(dead->started());
    const sn::RendezvousRecord left = published();
    ASSERT_TRUE(sn::record_valid(left));
    ASSERT_EQ(left.pid, dead->pid());
    const coyote::detail::ShmSegment ring = sn::open_ring(left.pid, left.id);
    ASSERT_TRUE(ring);
    settle();
    ASSERT_TRUE(pair.round()); // captured by the sniffer while it lives
    uint64_t captured = 0;
    EXPECT_TRUE(sn::ring_settled(ring, captured));
    const auto* image = reinterpret_cast<const uint8_t*>(ring.bytes() + sn::k_ring_data);
    EXPECT_NO_THROW(check_round(coyote_test::parse(image, captured), 0, 2, "the sniffer killed later"));

    dead->kill(); // no stop: its record and capture buffer stay behind, its lock goes
    EXPECT_TRUE(rendezvous_exists());
    EXPECT_EQ(published().pid, left.pid);
    settle();
    ASSERT_TRUE(pair.round()); // the record names a dead process: nothing goes to its buffer
    uint64_t after = 0;
    EXPECT_TRUE(sn::ring_settled(ring, after));
    EXPECT_EQ(after, captured) << "frames were appended to the capture buffer of a dead sniffer";

    Sniffer next("shm", 2, 2); // takes the rendezvous over
    ASSERT_TRUE(next.started());
    EXPECT_EQ(published().pid, next.pid());
    settle();
    ASSERT_TRUE(pair.round());
    next.stop_and_check();
    pair.finish();
    ::shm_unlink(ring.name().c_str()); // the dead sniffer's leftover
}

TEST_F(RdmaSnifferAcrossProcesses, AChildForkedByASnifferDoesNotKeepItsRendezvous) {
    // The sniffer forks a child that outlives it (sharing its open files, which carry the rendezvous lock), then
    // dies without a stop: the next sniffer still takes the rendezvous over.
    int child_pid[2] = {-1, -1};
    ASSERT_EQ(::pipe(child_pid), 0);
    Signal started;
    Child sniffer(
        [&]() -> int {
            env("shm", true);
            coyote::cThread t(0, ::getpid(), k_device);
            Capture cap(t);
            const pid_t idle = ::fork();
            if (idle == 0) { // async-signal-safe calls only
                ::alarm(60);
                for (;;) ::pause();
            }
            check(::write(child_pid[1], &idle, sizeof idle) == sizeof idle, "tell the test the child's pid");
            started.post();
            for (;;) ::pause(); // until killed
        },
        120);
    ASSERT_TRUE(started.wait());
    pid_t idle = -1;
    ASSERT_EQ(::read(child_pid[0], &idle, sizeof idle), static_cast<ssize_t>(sizeof idle));
    ::close(child_pid[0]);
    ::close(child_pid[1]);
    ASSERT_GT(idle, 0);
    EXPECT_EQ(published().pid, sniffer.pid());
    sniffer.kill(SIGKILL);
    EXPECT_EQ(::kill(idle, 0), 0) << "the forked child lives on";
    {
        Sniffer next("shm", 0, 0);
        ASSERT_TRUE(next.started());
        EXPECT_EQ(published().pid, next.pid()) << "the rendezvous stayed locked by the forked child";
        next.stop_and_check();
    }
    ::kill(idle, SIGKILL);
}

TEST_F(RdmaSnifferAcrossProcesses, MalformedRendezvousContentIsIgnoredAndReplaced) {
    // Two capture buffers of this (live) process that no sniffer owns: one whose header claims more room than the
    // segment has, one that takes 128 bytes of its 4096, the rest a canary.
    const pid_t me = ::getpid();
    const uint64_t started = coyote::detail::sim::process_start_time(me);
    const coyote::detail::ShmSegment oversized = sn::create_ring(7, 4096, 0);
    static_cast<sn::RingHead*>(oversized.get())->capacity = uint64_t{1} << 30;
    const coyote::detail::ShmSegment small = sn::create_ring(8, 4096, 0);
    static_cast<sn::RingHead*>(small.get())->capacity = 128;
    for (auto* seg : {&oversized, &small}) std::memset(seg->bytes() + sn::k_ring_data, 0xee, 4096);
    const auto untouched = [](const coyote::detail::ShmSegment& seg, std::size_t from) {
        uint64_t end = 0;
        if (!sn::ring_settled(seg, end) || end != from) return false;
        for (std::size_t i = sn::k_ring_data + from; i < seg.size(); ++i)
            if (seg.bytes()[i] != std::byte{0xee}) return false;
        return true;
    };

    struct Variant {
        std::string what;
        std::vector<std::byte> bytes;
    };
    const auto bytes_of = [](sn::RendezvousRecord r, std::size_t extra = 0) {
        std::vector<std::byte> b(sizeof r + extra, std::byte{0x5a});
        std::memcpy(b.data(), &r, sizeof r);
        return b;
    };
    sn::RendezvousRecord bad_check = sn::make_record(me, started, 8);
    bad_check.check ^= 1;
    std::vector<std::byte> noise(sizeof(sn::RendezvousRecord));
    std::mt19937 gen(11);
    for (auto& b : noise) b = static_cast<std::byte>(gen());
    const std::vector<Variant> variants = {
        {"an empty segment", {}},
        {"one byte", {std::byte{1}}},
        {"random bytes", noise},
        {"a record whose check does not match", bytes_of(bad_check)},
        {"a record one byte too long", bytes_of(sn::make_record(me, started, 8), 1)},
        {"a record with id 0", bytes_of(sn::make_record(me, started, 0))},
        {"a record whose id does not fit 32 bits", bytes_of(sn::make_record(me, started, (uint64_t{1} << 32) + 8))},
        {"a record of this process with another start time", bytes_of(sn::make_record(me, started + 1, 8))},
        {"a record of pid 0", bytes_of(sn::make_record(0, started, 8))},
        {"a record naming a buffer whose header claims too much", bytes_of(sn::make_record(me, started, 7))},
    };
    Pair pair("shm", static_cast<unsigned>(variants.size()) + 3);
    unsigned round = 0;
    // A FIFO at the name: the NICs must not block opening it.
    const std::string path = "/dev/shm" + sn::rendezvous_name(k_device);
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    sn::announce(k_device);
    settle();
    ASSERT_TRUE(pair.round());
    ++round;
    ::unlink(path.c_str());
    sn::announce(k_device);
    for (const Variant& v : variants) {
        put_rendezvous(v.bytes.data(), v.bytes.size());
        settle();
        ASSERT_TRUE(pair.round()) << v.what;
        ++round;
        EXPECT_TRUE(untouched(oversized, 0)) << v.what;
        EXPECT_TRUE(untouched(small, 0)) << v.what;
    }
    // Well formed, naming a live process's buffer: the frames go there, cut at its end.
    const auto good = bytes_of(sn::make_record(me, started, 8));
    put_rendezvous(good.data(), good.size());
    settle();
    ASSERT_TRUE(pair.round());
    ++round;
    EXPECT_TRUE(untouched(small, 128)) << "two beats taken, nothing past them";
    EXPECT_TRUE(untouched(oversized, 0));

    Sniffer sniffer("shm", round, 2); // replaces the record
    ASSERT_TRUE(sniffer.started());
    EXPECT_EQ(published().pid, sniffer.pid());
    settle();
    ASSERT_TRUE(pair.round());
    sniffer.stop_and_check();
    pair.finish();
}
