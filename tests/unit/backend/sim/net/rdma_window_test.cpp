// Remote-access windows (coyote-mpi extension): a peer RDMA WRITEs into / READs from private memory of the
// target process that registerWindow exposed, on the shared-memory wire and on the forced TCP wire. Data is
// checked byte by byte, guard bytes around every window must stay untouched, and every rejection path names
// the address and the reason.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "unit/rdma_test_support.hpp"
#include "unit/test_support.hpp"

using namespace std::chrono_literals;
using coyote::CoyoteOper;
using coyote::Errc;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Peer;
using coyote_test::child_env;
using coyote_test::fill;
using coyote_test::mismatch;
using coyote_test::wait_count;
using coyote_test::wait_error;
namespace sim = coyote::detail::sim;

namespace {

constexpr uint32_t k_buf = 1u << 20;

std::string hex(const void* p) {
    char b[32];
    std::snprintf(b, sizeof(b), "%p", p);
    return b;
}

/// Runs `fn`, which must throw coyote::Error; returns it.
template <typename Fn>
coyote::Error sync_error(Fn&& fn, const std::string& what) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        return e;
    }
    throw std::runtime_error(what + ": no error thrown");
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Sends `mine` to the peer over the out-of-band channel and returns the peer's value.
uint64_t swap_u64(coyote::cThread& t, uint64_t mine) {
    std::array<std::byte, 8> b{};
    std::memcpy(b.data(), &mine, 8);
    const auto r = t.getOob()->exchange(b);
    check(r.size() == 8, "8-byte exchange");
    uint64_t v = 0;
    std::memcpy(&v, r.data(), 8);
    return v;
}

/// Private anonymous memory (not shared with anybody): the kind of user buffer windows expose.
class Region {
public:
    explicit Region(size_t n) : size_(n) {
        void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
        p_ = static_cast<uint8_t*>(p);
    }
    ~Region() {
        if (p_ != nullptr) ::munmap(p_, size_);
    }
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;
    uint8_t* get() const { return p_; }
    size_t size() const { return size_; }
    /// Takes the memory away now (the window memory disappears from under the NIC). The range stays reserved,
    /// inaccessible (PROT_NONE, put over it in one step): no later mapping of this process (a sanitizer's allocator,
    /// a thread's stack) can land there and take the writes the NIC must refuse.
    void release() {
        if (::mmap(p_, size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            throw std::runtime_error("mmap PROT_NONE over the region failed");
    }

private:
    uint8_t* p_ = nullptr;
    size_t size_ = 0;
};

/// A window this side exposes: `guard` bytes, the window of `size` bytes and `guard` bytes of private memory, all
/// holding pattern `seed`; the window is registered on `t` and its address swapped with the peer's value.
class ExposedWindow {
public:
    ExposedWindow(coyote::cThread& t, uint64_t guard, uint64_t size, unsigned seed)
        : region_(guard + size + guard), win_(region_.get() + guard) {
        fill(region_.get(), region_.size(), seed);
        t.registerWindow(win_, size);
        peer_ = swap_u64(t, reinterpret_cast<uint64_t>(win_));
    }
    Region& region() { return region_; }
    uint8_t* get() const { return win_; }
    /// The value the peer sent in the swap (its window address, or 0).
    uint64_t peer() const { return peer_; }

private:
    Region region_;
    uint8_t* win_;
    uint64_t peer_ = 0;
};

/// What the target of a window test does once its window is exposed and the peer knows it.
using TargetBody = std::function<void(coyote::cThread& t, uint8_t* buf, ExposedWindow& exposed)>;

/// The target side of a window test: its registered buffer holds pattern `buf_seed`, a window of `w` bytes between
/// `guard` bytes on each side holds `win_seed`; it is exposed, the first connSync announces it, then `body` runs.
std::function<void(Peer&)> window_target(uint64_t guard, uint64_t w, unsigned buf_seed, unsigned win_seed,
                                         TargetBody body) {
    return [=](Peer& p) {
        fill(p.buf, k_buf, buf_seed);
        ExposedWindow exposed(p.t, guard, w, win_seed);
        p.sync(); // (1) window registered and announced
        body(p.t, p.buf, exposed);
    };
}

class RdmaWindow : public testing::TestWithParam<const char*> {};

std::string wire_name(const testing::TestParamInfo<const char*>& i) { return i.param; }

}  // namespace

// A window on private memory of the target, at an unaligned address with an odd size: WRITE chunks land in it
// (one copy), READs serve from it into a local window and into the local registered buffer; completions count
// as for the registered buffer; guard bytes on both sides stay untouched.
TEST_P(RdmaWindow, WriteAndReadPrivateMemoryThroughWindows) {
    const char* wire = GetParam();
    constexpr uint64_t guard = 4096 + 7;
    constexpr uint64_t w = (1u << 20) + 123; // window size
    constexpr uint32_t chunk = 256 * 1024;
    auto server = window_target(guard, w, 3, 1, [&](coyote::cThread& t, uint8_t* buf, ExposedWindow& exposed) {
        Region& region = exposed.region();
        uint8_t* win = exposed.get();
        // The client WRITEs its pattern 2 into the whole window (last = false), then 64 bytes into the
        // registered buffer with last = true.
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "server LOCAL_WRITE (only the last WRITE counts)");
        check(mismatch(win, 0, w, 2) < 0, "window holds the client's data, byte by byte");
        check(mismatch(region.get(), 0, guard, 1) < 0, "guard bytes before the window untouched");
        check(mismatch(region.get(), guard + w, region.size(), 1) < 0, "guard bytes after the window untouched");
        check(mismatch(buf, 0, 64, 2) < 0 && mismatch(buf, 64, k_buf, 3) < 0, "registered buffer: 64 bytes written");
        check(t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == 0, "the target initiated nothing");
        t.connSync(false); // (2) the client READs now
        t.connSync(false); // (3)
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 1, "a READ's target counts nothing");
        coyote::detail::ShmSegment seg;
        seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
        const auto* nic = static_cast<const sim::NicShared*>(seg.get());
        check(nic->counters.rejected[static_cast<size_t>(sim::Check::out_of_bounds)].load() == 0, "no rejection");
        t.unregisterWindow(win);
        t.connSync(false); // (4)
    });
    auto client = [&](Peer& p) {
        coyote::cThread& t = p.t;
        uint8_t* buf = p.buf;
        fill(buf, k_buf, 4);
        // The source is plain heap memory, neither registered nor a window.
        std::vector<uint8_t> src(w);
        fill(src.data(), w, 2);
        ExposedWindow mine(t, guard, w, 5);
        Region& landing = mine.region();
        uint8_t* mywin = mine.get();
        const uint64_t remote = mine.peer();
        t.connSync(true); // (1)
        for (uint64_t off = 0; off < w; off += chunk) {
            const auto len = static_cast<uint32_t>(std::min<uint64_t>(chunk, w - off));
            t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data() + off, remote + off, len, false);
        }
        std::memcpy(buf, src.data(), 64);
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = 64}, true);
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "client REMOTE_RDMA_WRITE (only the last counts)");
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0, "a WRITE's initiator counts no LOCAL_WRITE");
        t.connSync(true); // (2)
        t.clearCompleted();
        // READ the first half of the remote window into the local window, the rest into the registered buffer.
        const uint64_t half = w / 2;
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_READ, mywin + 1, remote, static_cast<uint32_t>(half), false);
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_READ, buf + 100, remote + half, static_cast<uint32_t>(w - half), true);
        wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "client REMOTE_RDMA_READ (only the last counts)");
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 1, "the READ response counts LOCAL_WRITE at the requester");
        check(mismatch(mywin, 1, 1 + half, 2, -1) < 0, "READ into the local window, byte by byte");
        check(mismatch(landing.get(), 0, guard + 1, 5) < 0, "bytes before the READ target untouched");
        check(mismatch(landing.get(), guard + 1 + half, landing.size(), 5) < 0, "bytes after the READ target untouched");
        check(mismatch(buf, 100, 100 + (w - half), 2, static_cast<int64_t>(half) - 100) < 0,
              "READ into the registered buffer, byte by byte");
        check(mismatch(buf, 100 + (w - half), k_buf, 4) < 0, "rest of the registered buffer untouched");
        // Zero-length operations complete at once, as invoke(rdmaSg) does.
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, nullptr, remote, 0);
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "zero-length WRITE completes");
        t.connSync(true); // (3)
        t.connSync(true); // (4)
    };
    coyote_test::run_pair([wire] { child_env(wire); }, k_buf, server, client);
}

// The collectives protocol: a large window WRITE with last = false, then a small buffer WRITE with last = true on
// the same queue pair. When the target's counter shows the second, the first has landed, every round.
TEST_P(RdmaWindow, WindowWriteLandsBeforeTheFollowingLastWrite) {
    const char* wire = GetParam();
    constexpr uint32_t rounds = 12;
    constexpr uint64_t w = 2u << 20;
    constexpr uint32_t chunk = 512 * 1024;
    auto server = [&](Peer& p) {
        coyote::cThread& t = p.t;
        uint8_t* buf = p.buf;
        std::vector<uint8_t> win(w, 0);
        t.registerWindow(win.data(), w);
        (void)swap_u64(t, reinterpret_cast<uint64_t>(win.data()));
        t.connSync(false);
        for (uint32_t k = 1; k <= rounds; ++k) {
            wait_count(t, CoyoteOper::LOCAL_WRITE, k, "round " + std::to_string(k));
            uint32_t tag = 0;
            std::memcpy(&tag, buf, 4);
            check(tag == k, "round tag " + std::to_string(tag) + " in the buffer, expected " + std::to_string(k));
            const int64_t bad = mismatch(win.data(), 0, w, 10 + k);
            check(bad < 0, "round " + std::to_string(k) + ": window data complete when the last WRITE counted (first "
                           "difference at " + std::to_string(bad) + ")");
            t.getOob()->send_ack(k);
        }
        t.unregisterWindow(win.data());
        t.connSync(false);
    };
    auto client = [&](Peer& p) {
        coyote::cThread& t = p.t;
        uint8_t* buf = p.buf;
        std::vector<uint8_t> src(w);
        const uint64_t remote = swap_u64(t, 0);
        t.connSync(true);
        for (uint32_t k = 1; k <= rounds; ++k) {
            fill(src.data(), w, 10 + k);
            for (uint64_t off = 0; off < w; off += chunk)
                t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data() + off, remote + off, chunk, false);
            std::memcpy(buf, &k, 4);
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = 4}, true);
            check(t.getOob()->read_ack() == k, "server checked round " + std::to_string(k));
        }
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, rounds, "client completions");
        t.connSync(true);
    };
    coyote_test::run_pair([wire] { child_env(wire); }, k_buf, server, client);
}

// Every rejection names the address and the reason; the target's memory (window and guards) never changes.
TEST_P(RdmaWindow, RejectionsNameAddressAndReason) {
    const char* wire = GetParam();
    constexpr uint64_t guard = 8192;
    constexpr uint64_t w = 64 * 1024;
    auto server = window_target(guard, w, 6, 7, [&](coyote::cThread& t, uint8_t* buf, ExposedWindow& exposed) {
        uint8_t* win = exposed.get();
        t.connSync(false); // (2) the client's first rejection surfaced
        t.unregisterWindow(win);
        t.connSync(false); // (3)
        t.connSync(false); // (4) the write after unregisterWindow was rejected
        t.registerWindow(win, w);
        t.connSync(false); // (5)
        t.connSync(false); // (6) wrong rkey rejected
        check(mismatch(exposed.region().get(), 0, exposed.region().size(), 7) < 0, "window and guard bytes untouched");
        check(mismatch(buf, 0, k_buf, 6) < 0, "registered buffer untouched");
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0, "rejected requests count nothing at the target");
        coyote::detail::ShmSegment seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
        const auto* nic = static_cast<const sim::NicShared*>(seg.get());
        const auto count = [&](sim::Check c) { return nic->counters.rejected[static_cast<size_t>(c)].load(); };
        check(count(sim::Check::out_of_bounds) == 2, "two bounds rejections, got " +
                                                         std::to_string(count(sim::Check::out_of_bounds)));
        check(count(sim::Check::bad_rkey) == 1, "one rkey rejection");
        t.connSync(false); // (7)
    });
    auto client = [&](Peer& p) {
        coyote::cThread& t = p.t;
        uint8_t* buf = p.buf;
        fill(buf, k_buf, 8);
        std::vector<uint8_t> src(4096);
        fill(src.data(), src.size(), 9);
        const uint64_t remote = swap_u64(t, 0);
        t.connSync(true); // (1)

        // (a) Crossing the end of the window: in neither the buffer nor one window.
        const uint64_t crossing = remote + w - 16;
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data(), crossing, 64);
        coyote::Error e = wait_error(t);
        std::string what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "remote_rejected: " + what);
        check(contains(what, "RDMA WRITE rejected by "), "names the operation: " + what);
        check(contains(what, hex(reinterpret_cast<void*>(crossing)) + " + len 64"), "names address and length: " + what);
        check(contains(what, "is in neither the registered buffer nor a window"), "names the reason: " + what);
        check(t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == 0, "a rejected WRITE does not complete");

        // (b) A READ must land in registered memory: plain heap memory is refused at once.
        e = sync_error([&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_READ, src.data(), remote, 128); }, "READ to heap");
        what = e.what();
        check(e.code() == make_error_code(Errc::invalid_argument), "invalid_argument: " + what);
        check(contains(what, "local address " + hex(src.data())), "names the local address: " + what);
        check(contains(what, "neither the registered buffer nor a window"), "names the reason: " + what);

        // (c) An inaccessible local source fails locally. PROT_NONE rather than a page unmapped after use: an
        // allocator (ASan's among them) may map into such a hole, which is then legal memory.
        void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check(page != MAP_FAILED, "mmap");
        e = sync_error([&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, page, remote, 256); }, "inaccessible source");
        ::munmap(page, 4096);
        what = e.what();
        check(e.code() == make_error_code(Errc::not_mapped), "not_mapped: " + what);
        check(contains(what, "RDMA source"), "names the source: " + what);

        // (d) After unregisterWindow the range is refused.
        t.connSync(true); // (2)
        t.connSync(true); // (3) the server withdrew its window
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data(), remote, 256);
        e = wait_error(t);
        what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "remote_rejected after unregister: " + what);
        check(contains(what, hex(reinterpret_cast<void*>(remote)) + " + len 256"), "names the address: " + what);
        check(contains(what, "(0 windows registered)"), "no window left: " + what);
        t.connSync(true); // (4)

        // (e) A wrong rkey is refused for windows as for the registered buffer.
        t.connSync(true); // (5) the server registered the window again
        coyote::ibvQp* qp = t.getQpair();
        qp->remote.rkey ^= 0x5a5a;
        t.writeQpContext(coyote::DEF_PORT);
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data(), remote, 256);
        e = wait_error(t);
        what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "remote_rejected for the rkey: " + what);
        check(contains(what, "does not match the registered buffer's rkey"), "names the rkey check: " + what);
        check(t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == 0, "nothing completed");
        t.connSync(true); // (6)
        t.connSync(true); // (7)
    };
    coyote_test::run_pair([wire] { child_env(wire); }, k_buf, server, client);
}

// The target unmaps window memory without unregistering it: WRITE and READ fail with remote_rejected naming the
// address, the queue pair keeps working.
TEST_P(RdmaWindow, UnmappedWindowMemoryIsReported) {
    const char* wire = GetParam();
    constexpr uint64_t w = 256 * 1024;
    auto server = [&](Peer& p) {
        coyote::cThread& t = p.t;
        ExposedWindow exposed(t, 0, w, 0);
        exposed.region().release();
        t.connSync(false); // (1)
        t.connSync(false); // (2) WRITE and READ failed, then a buffer WRITE
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "the buffer WRITE after the failures");
        coyote::detail::ShmSegment seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
        const auto* nic = static_cast<const sim::NicShared*>(seg.get());
        check(nic->counters.rejected[static_cast<size_t>(sim::Check::unmapped)].load() == 2,
              "two requests found the window unmapped");
        t.connSync(false); // (3)
    };
    auto client = [&](Peer& p) {
        coyote::cThread& t = p.t;
        uint8_t* buf = p.buf;
        std::vector<uint8_t> src(w, 0x42);
        const uint64_t remote = swap_u64(t, 0);
        t.connSync(true); // (1)
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, src.data(), remote + 4096, 8192);
        coyote::Error e = wait_error(t);
        std::string what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "remote_rejected: " + what);
        check(contains(what, "window memory at " + hex(reinterpret_cast<void*>(remote + 4096))), "names the address: " + what);
        check(contains(what, "no longer mapped in the target"), "names the reason: " + what);
        t.invokeRdma(CoyoteOper::REMOTE_RDMA_READ, buf, remote, 4096);
        e = wait_error(t);
        what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "READ: remote_rejected: " + what);
        check(contains(what, "no longer mapped in the target"), "READ names the reason: " + what);
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = 64});
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "the queue pair still works");
        t.connSync(true); // (2)
        t.connSync(true); // (3)
    };
    coyote_test::run_pair([wire] { child_env(wire); }, k_buf, server, client);
}

INSTANTIATE_TEST_SUITE_P(Wires, RdmaWindow, testing::Values("shm", "tcp"), wire_name);

// Registration errors, the published table, and windows going away with their ctid (no peer needed).
TEST(RdmaWindowRegistration, ErrorsLimitsAndLifetime) {
    coyote_test::EnvGuard backend("COYOTE_BACKEND", "sim");
    coyote::cThread keeper(0, ::getpid()); // keeps the device (and its NIC segment) alive throughout
    coyote::detail::ShmSegment seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
    const auto* nic = static_cast<const sim::NicShared*>(seg.get());
    std::vector<uint8_t> mem(64 * 1024);
    uint8_t* m = mem.data();
    int32_t ctid = -1;
    {
        coyote::cThread t(0, ::getpid());
        ctid = t.getCtid();
        auto err = coyote_test::error_of([&] { t.registerWindow(nullptr, 64); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("null window address"), std::string::npos) << err.second;
        err = coyote_test::error_of([&] { t.registerWindow(m, 0); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("empty window at " + hex(m)), std::string::npos) << err.second;
        err = coyote_test::error_of([&] { t.registerWindow(reinterpret_cast<void*>(~uint64_t(0) - 100), 4096); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("wraps around the address space"), std::string::npos) << err.second;

        t.registerWindow(m, 4096);
        EXPECT_EQ(nic->win_mask[ctid].load(), 1u);
        const sim::WinView v = sim::read_win(nic->win[ctid][0]);
        EXPECT_TRUE(v.valid);
        EXPECT_EQ(v.vaddr, reinterpret_cast<uint64_t>(m));
        EXPECT_EQ(v.size, 4096u);
        // Overlaps: inside, across the start, identical.
        for (auto [addr, len] : {std::pair<uint8_t*, uint64_t>{m + 100, 10}, {m + 4095, 2}, {m, 4096}}) {
            err = coyote_test::error_of([&, a = addr, l = len] { t.registerWindow(a, l); });
            EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
            EXPECT_NE(err.second.find("overlaps the window " + hex(m) + " + len 4096"), std::string::npos)
                << err.second;
        }
        // Adjacent windows fill the table; the 17th is refused naming the limit.
        for (uint32_t i = 1; i < coyote::cThread::k_max_windows; ++i) t.registerWindow(m + i * 4096, 4096);
        EXPECT_EQ(nic->win_mask[ctid].load(), 0xFFFFu);
        err = coyote_test::error_of([&] { t.registerWindow(m + 16 * 4096, 4096); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("is full: all 16 windows"), std::string::npos) << err.second;
        // Unknown addresses; a freed slot is reused.
        err = coyote_test::error_of([&] { t.unregisterWindow(m + 1); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("starts at " + hex(m + 1)), std::string::npos) << err.second;
        t.unregisterWindow(m + 3 * 4096);
        EXPECT_EQ(nic->win_mask[ctid].load(), 0xFFFFu & ~(1u << 3));
        EXPECT_FALSE(sim::read_win(nic->win[ctid][3]).valid);
        err = coyote_test::error_of([&] { t.unregisterWindow(m + 3 * 4096); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        t.registerWindow(m + 3 * 4096, 100);
        EXPECT_EQ(nic->win_mask[ctid].load(), 0xFFFFu);
        // invokeRdma argument checks.
        err = coyote_test::error_of([&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_SEND, m, 4096, 64); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        err = coyote_test::error_of(
            [&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, m, 4096, coyote::MAX_TRANSFER_SIZE + 1); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("exceeds MAX_TRANSFER_SIZE"), std::string::npos) << err.second;
        err = coyote_test::error_of([&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, m, 1ULL << 48, 64); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        err = coyote_test::error_of([&] { t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, m, 4096, 64); });
        EXPECT_EQ(err.first, static_cast<int>(Errc::invalid_argument)) << err.second;
        EXPECT_NE(err.second.find("has no QP context"), std::string::npos) << err.second;
    }
    // The ctid went away: its windows are withdrawn from the published table.
    EXPECT_EQ(nic->win_mask[ctid].load(), 0u);
    for (uint32_t i = 0; i < sim::k_nic_windows; ++i) EXPECT_FALSE(sim::read_win(nic->win[ctid][i]).valid) << i;
    // Another cThread on the same ctid starts with an empty table.
    coyote::cThread again(0, ::getpid());
    if (again.getCtid() == ctid) {
        again.registerWindow(m, 4096);
        EXPECT_EQ(nic->win_mask[ctid].load(), 1u);
    }
}
