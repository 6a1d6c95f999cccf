// coyote-mpi sim backend: who reads the TCP wire's frames: the reader thread of each connection, and any thread
// polling the vFPGA for completions (manual progress, as libfabric's manual progress model and UCX's worker
// progress have the waiting thread advance the transport). One receive turn per connection orders the two.
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"

namespace coyote::detail::sim::net {

namespace {

/// Frames one progress() call handles per connection at most: a poller returns to its caller between bursts.
constexpr int k_progress_frames = 64;
/// Connections one progress() call looks at (starting where the last call stopped).
constexpr size_t k_progress_conns = 8;

/// Whether the socket has a byte (or the end of the stream, or an error) for the reader to handle.
bool has_input(Conn& c) noexcept {
    std::byte b{};
    return !(peek_now(c.fd.get(), &b, 1, &c.sock_err) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

}  // namespace

void TcpWire::reader(ConnPtr c) {
    for (;;) {
        pollfd pf{c->fd.get(), POLLIN, 0};
        const int r = ::poll(&pf, 1, -1);
        if (r < 0 && errno != EINTR) {
            kill(c, std::string("poll failed: ") + std::strerror(errno));
            break;
        }
        if (stop_.load()) break;
        if (r <= 0) continue;
        std::unique_lock turn(c->rturn);
        {
            std::lock_guard lk(c->mtx);
            if (c->dead) break;
        }
        // A poller may have handled what woke us while we waited for the turn.
        if (has_input(*c) && !handle_frame(c)) break;
    }
    kill(c, "the wire is closing"); // no-op when already dead; ends the sender
    std::lock_guard lk(conns_mtx_);
    std::erase(conns_, c);
    n_conns_.store(conns_.size(), std::memory_order_relaxed);
}

void TcpWire::progress() noexcept {
    if (n_conns_.load(std::memory_order_relaxed) == 0) return;
    std::array<ConnPtr, k_progress_conns> picked;
    size_t n = 0;
    {
        std::unique_lock lk(conns_mtx_, std::try_to_lock);
        if (!lk.owns_lock() || conns_.empty()) return; // a connection comes or goes: the next poll serves
        const size_t first = progress_cursor_.fetch_add(1, std::memory_order_relaxed);
        for (; n < picked.size() && n < conns_.size(); ++n) picked[n] = conns_[(first + n) % conns_.size()];
    }
    for (size_t i = 0; i < n; ++i) serve_arrived(picked[i]);
}

void TcpWire::serve_arrived(const ConnPtr& c) noexcept {
    std::unique_lock turn(c->rturn, std::try_to_lock);
    if (!turn.owns_lock()) return; // its reader (or another poller) is at it
    try {
        for (int i = 0; i < k_progress_frames && frame_arrived(*c); ++i)
            if (!handle_frame(c)) return;
    } catch (const std::exception& e) { // out of memory: the frame was cut, and so is the connection
        kill(c, std::string("handling a frame failed: ") + e.what());
    }
}

bool TcpWire::next_frame_whole(Conn& c, FrameHeader& h) {
    const int fd = c.fd.get();
    std::array<std::byte, k_frame_header_size> hb{};
    if (peek_now(fd, hb.data(), hb.size(), &c.sock_err) != static_cast<ssize_t>(hb.size())) return false;
    std::string err;
    // A malformed header is the reader's to report (it drops the connection).
    if (!decode_frame(hb, h, err)) return false;
    return h.payload_len == 0 || readable_now(fd) >= k_frame_header_size + size_t{h.payload_len};
}

bool TcpWire::frame_arrived(Conn& c) {
    FrameHeader h;
    if (!next_frame_whole(c, h)) return false;
    std::lock_guard lk(c.mtx);
    // An answer to a request would wait for room in a full queue: requests are then the reader's.
    return !c.dead && !stop_.load() && c.out.size() < k_max_queued_answers;
}

}  // namespace coyote::detail::sim::net
