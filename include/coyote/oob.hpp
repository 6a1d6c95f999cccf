// coyote-mpi: the out-of-band channel used to wire queue pairs (exchange, ack/barrier, close).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace coyote {

/// A point-to-point out-of-band channel between two cThreads.
///
/// initRDMA sends the local 64-byte ibvQ followed by the backend's endpoint bytes and receives the peer's.
/// Implementations: stock-compatible TCP (below) and MPI (coyote::mpi).
class OobChannel {
public:
    virtual ~OobChannel() = default;

    /// True on the side that plays Coyote's client (connects, sends first).
    virtual bool is_client() const noexcept = 0;
    /// Sends `mine` and returns the peer's message, which has the same length (both sides run the same
    /// backend). The client sends first, the server receives first. Blocks up to the channel's deadline.
    virtual std::vector<std::byte> exchange(std::span<const std::byte> mine) = 0;
    /// Sends a 4-byte ack.
    virtual void send_ack(uint32_t ack) = 0;
    /// Receives a 4-byte ack.
    virtual uint32_t read_ack() = 0;
    /// Coyote's connSync: the client sends then reads an ack, the server reads then sends.
    void sync() {
        if (is_client()) {
            send_ack(1);
            (void)read_ack();
        } else {
            (void)read_ack();
            send_ack(1);
        }
    }
    /// Ends the connection (stock: the client sends int32 0 and closes). Never throws.
    virtual void close() noexcept = 0;
    /// Whether the peer has ended the connection (it closed it, or its process exited); never blocks. Data the
    /// peer sent before that may still be unread. A channel that cannot tell answers false (the MPI channel:
    /// the job ends with a rank that dies).
    virtual bool peer_closed() const noexcept { return false; }
};

/// Checks a client's first message (what it sends to exchange()); returns why it is refused, empty to accept.
using OobClientCheck = std::function<std::string(std::span<const std::byte> message)>;

/// Timeouts, address and client check of the TCP out-of-band channel.
struct TcpOobOptions {
    std::chrono::milliseconds connect_timeout{60000}; ///< client: keep retrying until this passes
    std::chrono::milliseconds accept_timeout{120000}; ///< server: wait for the client this long
    std::chrono::milliseconds io_timeout{120000};     ///< every read/write after connecting
    std::string bind_address;                         ///< server: IPv4 address to listen on (empty: all)
    /// Server: when set, every client must first send `client_message_size` bytes that `check_client` accepts
    /// before the server sends anything; a refused client is closed and the server keeps accepting until
    /// accept_timeout. exchange() then returns those bytes.
    OobClientCheck check_client;
    size_t client_message_size = 0;
    /// Reads COYOTE_OOB_CONNECT_TIMEOUT_MS, COYOTE_OOB_ACCEPT_TIMEOUT_MS, COYOTE_OOB_IO_TIMEOUT_MS and
    /// COYOTE_OOB_BIND_ADDR.
    static TcpOobOptions from_env();
};

/// Stock-compatible TCP channel: server when `server_address` is null, else client of it.
std::unique_ptr<OobChannel> make_tcp_oob(uint16_t port, const char* server_address,
                                         const TcpOobOptions& options = TcpOobOptions::from_env());

}  // namespace coyote
