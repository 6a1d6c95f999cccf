// coyote-mpi sim backend: the TCP wire of the emulated NIC: framed requests to peers on other hosts, and the
// engine that validates, applies and answers the requests of peers.
#pragma once

#include <poll.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.hpp"
#include "backend/sim/net/nic_state.hpp"
#include "backend/sim/net/tcp/socket_io.hpp"
#include "backend/sim/net/wire_config.hpp"

namespace coyote::detail::sim::net {

class NicImpl;

/// A request sent and not yet answered.
struct Pending {
    int32_t ctid = -1;
    uint64_t generation = 0;
    RdmaRequest req;
    uint64_t local_addr = 0;
    bool last = false;
    uint32_t target_ip = 0;
};

/// One connection to a peer's wire (either side may have opened it).
struct Conn {
    Fd fd;
    std::string name;      ///< "a.b.c.d:port"
    uint64_t peer_key = 0;
    std::mutex wmtx;       ///< one whole frame at a time
    std::mutex mtx;        ///< pending, dead
    std::map<uint64_t, Pending> pending;
    bool dead = false;
    std::string death;
};

/// An answer the responder thread sends (ACK, NAK or READ response).
struct Response {
    std::shared_ptr<Conn> conn;
    FrameHeader h;
    std::string text;          ///< NAK payload
    int32_t ctid = -1;         ///< READ response source
    uint64_t buf_generation = 0;
    bool in_window = false;    ///< the READ source is window `window` of generation win_generation
    uint32_t window = 0;
    uint64_t win_generation = 0;
    uint64_t data_addr = 0;
};

/// The TCP wire of one NIC: a listener, an engine thread polling every connection and a responder thread.
class TcpWire {
public:
    TcpWire(NicImpl& nic, const WireConfig& cfg);
    ~TcpWire();
    TcpWire(const TcpWire&) = delete;
    TcpWire& operator=(const TcpWire&) = delete;

    /// The address and port peers reach the listener at (announced in the endpoint).
    uint32_t address() const noexcept { return addr_; }
    uint16_t port() const noexcept { return port_; }
    /// Sends `req` (PSN assigned here) to the peer `ep`; busy when too many requests of `ctid` are in flight.
    PostStatus post(CtidState& cs, int32_t ctid, const RdmaRequest& req, const Endpoint& ep, uint64_t local_addr,
                    bool last);
    /// `ctid` was unregistered: answers to its outstanding requests will be dropped.
    void forget_ctid(int32_t ctid) noexcept;
    /// Manual progress for a thread waiting on completions: handles the frames already readable and sends the
    /// queued answers in the calling thread, unless another thread is doing it (try-lock); never blocks on an
    /// idle connection. False when there was nothing to do or the wire was busy elsewhere.
    bool progress() noexcept;

private:
    using ConnPtr = std::shared_ptr<Conn>;
    /// A frame handler (tcp_frames.cpp): false when the connection was dropped.
    using FrameHandler = bool (TcpWire::*)(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    /// The handler of each frame type, indexed by FrameType.
    static const std::array<FrameHandler, 9> k_handlers;

    /// The connection requests to `ep` go on (opened on first use); throws peer_gone when it was lost.
    ConnPtr connect_to(const Endpoint& ep);
    /// Opens a connection to `ep` and runs the HELLO handshake.
    Fd dial(const Endpoint& ep, const std::string& who, Clock::time_point deadline);
    /// The engine thread: polls the listener and every connection, handles each readable frame.
    void engine();
    /// The responder thread: sends the answers queued by respond().
    void responder();
    /// Sends the queued answers in order until the queue is empty (send_mtx_ held).
    void send_queued();
    /// Handles one frame of each connection `fds` reports readable (drive_mtx_ held).
    void serve_ready(const std::vector<pollfd>& fds, const std::vector<ConnPtr>& polled, size_t first);
    /// Tells the NIC whether the wire has connections (conns_mtx_ held): its polling path calls progress() then.
    void note_connections() noexcept;
    /// Accepts one connection and runs the HELLO handshake (a wrong key closes it).
    void accept_one();
    /// Reads one frame header from `c` and dispatches it to its handler; false: connection dropped.
    bool handle_frame(const ConnPtr& c);
    /// Drops `c`: its pending requests fail with peer_gone on their queue pairs.
    void kill(const ConnPtr& c, const std::string& why) noexcept;
    /// Queues an answer for the responder thread.
    void respond(Response r);
    /// Wakes the engine (a new connection to poll, or stop).
    void wake() noexcept;

    // Frame handlers (tcp_frames.cpp): requests of peers, answers to ours, stray handshakes.
    bool on_write(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    bool on_read_req(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    bool on_ack(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    bool on_nak(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    bool on_read_resp(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    bool on_handshake(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);

    // Pieces of the handlers.
    /// Receives the payload of an accepted WRITE / SEND into a window of this process; sets `resp`.
    std::string receive_into_window(int fd, const FrameHeader& h, const RdmaRequest& r, const Verdict& v,
                                    Response& resp, Clock::time_point deadline);
    /// Receives the payload of an accepted WRITE / SEND into the registered buffer; sets `resp`.
    std::string receive_into_buffer(int fd, const FrameHeader& h, const RdmaRequest& r, const Verdict& v,
                                    Response& resp, Clock::time_point deadline);
    /// Sends `resp` unless `err` (then drops the connection); the handler's result.
    bool finish_request(const ConnPtr& c, Response resp, const std::string& err);
    /// Takes the pending request `h` answers; false (connection dropped) when there is none.
    bool take_pending(const ConnPtr& c, const FrameHeader& h, Pending& p);
    /// Receives a READ response into the local buffer or window it was requested for.
    std::string receive_read_data(int fd, const Pending& p, bool current, Clock::time_point deadline);
    /// Ends the handling of an answer: the request leaves the in-flight count; drops the connection on `err`.
    bool finish_answer(const ConnPtr& c, const Pending& p, bool current, const std::string& err);
    /// Sends one response (the responder thread); returns an error text.
    std::string send_response(Response& r, Clock::time_point deadline);
    /// Sends a READ response from the buffer or window it was validated against, or a NAK when it went away.
    std::string send_read_data(Response& r, Clock::time_point deadline);

    NicImpl& nic_;
    WireConfig cfg_;
    Fd listener_;
    Fd event_;
    uint32_t addr_ = 0;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> next_req_{1};

    std::mutex conns_mtx_;
    std::vector<ConnPtr> conns_;                 ///< polled by the engine
    std::map<uint64_t, ConnPtr> by_key_;         ///< peer key -> connection used for requests
    std::map<uint64_t, std::string> dead_keys_;  ///< peers whose connection was lost

    std::mutex resp_mtx_;
    std::condition_variable resp_cv_;
    std::deque<Response> responses_;

    // Manual progress: whoever holds drive_mtx_ reads frames, whoever holds send_mtx_ sends answers (the engine
    // and the responder thread, or a thread polling for completions).
    std::mutex drive_mtx_;
    std::mutex send_mtx_;
    std::vector<pollfd> progress_fds_;     ///< drive_mtx_
    std::vector<ConnPtr> progress_conns_;  ///< drive_mtx_

    std::thread engine_;
    std::thread responder_;
};

}  // namespace coyote::detail::sim::net
