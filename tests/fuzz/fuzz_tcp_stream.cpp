// Fuzz target: the byte stream the sim NIC's TCP wire reads from a connection. Input byte 0, bit 0: send a valid
// HELLO (the NIC's access key) first, so that the rest reaches the frame handlers of an authenticated peer
// (WRITE, READ, answers); otherwise the rest is what a stranger sends. The NIC must answer a new HELLO after
// every input.
#include <coyote/cThread.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "backend/sim/net/wire_format.hpp"
#include "fuzz_stream_support.hpp"
#include "fuzz_support.hpp"

namespace sim = coyote::detail::sim;

namespace {

struct Target {
    std::unique_ptr<coyote::cThread> thread;
    sim::Endpoint ep;
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
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        coyote::fuzz::finding("cannot reach the wire");
    return fd;
}

/// Sends HELLO with the NIC's key (and a key of ours) and checks the HELLO_ACK.
void hello(int fd, const sim::Endpoint& ep) {
    sim::FrameHeader h;
    h.type = sim::FrameType::hello;
    h.payload_len = 16;
    const auto hb = sim::encode_frame(h);
    std::array<std::byte, 16> keys{};
    const uint64_t k[2] = {ep.key, 0x66757a7a66757a7aULL};
    for (size_t i = 0; i < 16; ++i) keys[i] = static_cast<std::byte>((k[i / 8] >> (8 * (i % 8))) & 0xff);
    std::array<std::byte, sim::k_frame_header_size> rb{};
    sim::FrameHeader r;
    std::string err;
    if (!coyote::fuzz::send_all(fd, hb.data(), hb.size()) || !coyote::fuzz::send_all(fd, keys.data(), keys.size()) ||
        !coyote::fuzz::read_exact(fd, rb.data(), rb.size(), 10000) || !sim::decode_frame(rb, r, err) ||
        r.type != sim::FrameType::hello_ack)
        coyote::fuzz::finding("the wire no longer answers a valid HELLO", err.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const Target& t = target();
    const int fd = dial(t.ep);
    if ((data[0] & 1) != 0) hello(fd, t.ep);
    (void)coyote::fuzz::send_all(fd, data + 1, size - 1);
    coyote::fuzz::finish(fd, 200);
    const int check = dial(t.ep); // the wire still serves a well-behaved peer
    hello(check, t.ep);
    ::close(check);
    return 0;
}
