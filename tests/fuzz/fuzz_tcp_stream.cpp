// Fuzz target: the byte stream the sim NIC's TCP wire reads from a connection. Input byte 0, bit 0: send a valid
// HELLO (the NIC's access key) first, so that the rest reaches the frame handlers of an authenticated peer
// (WRITE, READ, answers); otherwise the rest is what a stranger sends. The NIC must answer a new HELLO after
// every input, and end the threads of every connection its peer closed: each input returns only when it has, so
// that libFuzzer's leak check never runs while a connection's thread starts or ends.
#include <coyote/cThread.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "fuzz_stream_support.hpp"
#include "fuzz_support.hpp"

namespace sim = coyote::detail::sim;

namespace {

struct Target {
    std::unique_ptr<coyote::cThread> thread;
    sim::Endpoint ep;
    coyote::detail::ShmSegment nic_segment; ///< the NIC's counters
    uint64_t authenticated = 0;             ///< connections this harness got a HELLO_ACK on
    const sim::NicCounters& counters() const { return static_cast<const sim::NicShared*>(nic_segment.get())->counters; }
};

Target& target() {
    static Target t = [] {
        ::setenv("COYOTE_BACKEND", "sim", 0);
        ::setenv("COYOTE_SIM_WIRE", "tcp", 1);
        Target x;
        x.thread = std::make_unique<coyote::cThread>(0, ::getpid());
        (void)x.thread->getMem({coyote::CoyoteAllocType::HPF, 1 << 16, true});
        const auto blob = x.thread->exportQp();
        x.ep = sim::decode_endpoint(std::span(blob).subspan(sizeof(coyote::ibvQ)));
        if (x.ep.wire_port == 0) coyote::fuzz::finding("the NIC published no TCP wire port with COYOTE_SIM_WIRE=tcp");
        x.nic_segment = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
        return x;
    }();
    return t;
}

int dial(const sim::Endpoint& ep) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ep.wire_port);
    sa.sin_addr.s_addr = htonl(ep.wire_addr != 0 ? ep.wire_addr : INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) return fd;
    int err = errno;
    if (err == EINTR) { // libFuzzer's timer interrupted it: the connection completes in the background
        pollfd pf{fd, POLLOUT, 0};
        int r;
        while ((r = ::poll(&pf, 1, 10000)) < 0 && errno == EINTR) {
        }
        socklen_t len = sizeof(err);
        err = ETIMEDOUT;
        if (r > 0) (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) return fd;
    }
    coyote::fuzz::finding("cannot reach the wire:", std::strerror(err));
}

/// Closes `fd` with a reset: the harness opens two connections per input, and a graceful close would leave each
/// in TIME_WAIT for a minute, which runs loopback out of ports in a long fuzzing run.
void abort_close(int fd) {
    const linger l{1, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd);
}

/// Waits until every connection the NIC authenticated (at least the harness's own) has ended both its threads.
void settle(Target& t) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        const uint64_t ended = t.counters().conn_threads_ended.load(std::memory_order_acquire);
        const uint64_t adopted = t.counters().conns_adopted.load(std::memory_order_acquire);
        if (adopted >= t.authenticated && ended == 2 * adopted) return;
        if (std::chrono::steady_clock::now() > deadline)
            coyote::fuzz::finding("the threads of closed connections did not end within 10 s:",
                                  (std::to_string(ended) + " of " + std::to_string(2 * adopted)).c_str());
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

/// Sends HELLO with the NIC's key (and a key of ours) and checks the HELLO_ACK.
void hello(int fd, Target& t) {
    const auto hb = sim::net::encode_hello(sim::net::HelloKeys{t.ep.key, 0x66757a7a66757a7aULL});
    std::array<std::byte, sim::k_frame_header_size> rb{};
    sim::FrameHeader r;
    std::string err;
    const auto start = std::chrono::steady_clock::now();
    const bool sent = coyote::fuzz::send_all(fd, hb.data(), hb.size());
    if (!sent) err = std::string("send failed: ") + std::strerror(errno);
    if (sent && !coyote::fuzz::read_exact(fd, rb.data(), rb.size(), 10000)) {
        char b;
        const ssize_t n = ::recv(fd, &b, 1, MSG_DONTWAIT);
        err = "no HELLO_ACK after " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                   start)
                                 .count()) +
              " ms (" + (n == 0 ? std::string("closed") : n < 0 ? std::strerror(errno) : "data") + ")";
    }
    if (!sent || !err.empty() || !sim::decode_frame(rb, r, err) || r.type != sim::FrameType::hello_ack)
        coyote::fuzz::finding("the wire no longer answers a valid HELLO:",
                              (err + "; NIC counters: " + std::to_string(t.counters().conns_adopted.load()) +
                               " connections adopted, " + std::to_string(t.counters().conn_threads_ended.load()) +
                               " threads ended, " + std::to_string(t.counters().bad_frames.load()) + " bad frames")
                                  .c_str());
    ++t.authenticated;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    Target& t = target();
    const int fd = dial(t.ep);
    if ((data[0] & 1) != 0) hello(fd, t);
    (void)coyote::fuzz::send_all(fd, data + 1, size - 1);
    coyote::fuzz::finish(fd, 200, abort_close);
    const int check = dial(t.ep); // the wire still serves a well-behaved peer
    hello(check, t);
    abort_close(check);
    settle(t);
    return 0;
}
