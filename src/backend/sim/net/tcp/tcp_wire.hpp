// coyote-mpi sim backend: the TCP wire of the emulated NIC: framed requests to peers on other hosts, and the
// threads that validate, apply and answer the requests of peers.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.hpp"
#include "backend/sim/net/nic_state.hpp"
#include "backend/sim/net/tcp/dead_peers.hpp"
#include "backend/sim/net/tcp/socket_io.hpp"
#include "backend/sim/net/tcp/wire_cpus.hpp"
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

/// Size of a HELLO: the frame header and the two keys.
inline constexpr size_t k_hello_size = k_frame_header_size + 16;

/// The keys of a HELLO.
struct HelloKeys {
    uint64_t target = 0; ///< the key the target issued in its endpoint
    uint64_t sender = 0; ///< the key the sender issued in its own endpoint (identifies it)
};

/// Parses the `k_hello_size` bytes a connection opens with; false (with `error`) when they are not a HELLO.
bool decode_hello(std::span<const std::byte> bytes, HelloKeys& keys, std::string& error);
/// Serializes a HELLO carrying `keys`.
std::array<std::byte, k_hello_size> encode_hello(const HelloKeys& keys) noexcept;

/// A connection accepted but not yet authenticated: its HELLO arrives into `buf` as the socket has it.
struct Handshake {
    Fd fd;
    std::string name;
    std::array<std::byte, k_hello_size> buf{};
    size_t got = 0;
    std::chrono::steady_clock::time_point deadline;
};

struct Conn;

/// An answer to a peer's request (ACK, NAK or READ response): sent by the connection's reader when nothing is
/// queued before it, else by its sender thread.
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
    /// Bytes of the frame already written: a reader that wrote part of it queues the rest for the sender thread,
    /// and the connection's write turn stays taken until the sender has written the rest.
    size_t sent = 0;
};

/// Answers one connection may have queued for its sender thread: a peer that reads none of them holds its own
/// reader (and so its requests) back once they are queued, and is dropped when the sender makes no room within
/// the I/O timeout; what a connection costs stays bounded.
inline constexpr size_t k_max_queued_answers = 1024;

/// WRITEs / SENDs one ACK may answer at most (RoCE responders coalesce ACKs likewise): the requester sees the
/// completions of a burst in a few frames, not one per request.
inline constexpr uint32_t k_max_coalesced_acks = 32;

/// Lost peers whose reason a wire keeps (DeadPeers): about 100 bytes each.
inline constexpr size_t k_max_dead_peers = 4096;

/// One connection to a peer's wire (either side may have opened it); a reader thread of its own serves it and
/// answers what it can send at once, and a sender thread of its own sends the answers that have to wait for the
/// socket, so a peer that stalls stalls only its own connection and the reader never blocks on a write.
struct Conn {
    Fd fd;
    std::string name;      ///< "a.b.c.d:port"
    uint64_t peer_key = 0;
    /// The write turn: one whole frame at a time. A semaphore, not a mutex: a reader that wrote part of an answer
    /// hands its turn to the sender thread, which releases it once the frame is complete.
    std::binary_semaphore wturn{1};
    /// The receive turn: one thread at a time reads frames, the connection's reader or a thread polling this vFPGA
    /// for completions (TcpWire::progress), which takes only frames the socket holds whole.
    std::mutex rturn;
    /// Under the receive turn: the cumulative ACK held back while the connection's next frame, already whole in
    /// the socket, is another WRITE / SEND (it answers `deferred_acks` requests; 0: none held).
    FrameHeader deferred_ack;
    uint32_t deferred_acks = 0;
    std::mutex mtx;        ///< pending, out, dead
    std::condition_variable out_cv;
    std::condition_variable room_cv; ///< the sender finished an answer of `out` (or the connection died)
    std::map<uint64_t, Pending> pending;
    /// Answers for the sender thread, at most k_max_queued_answers, in the order of the requests; the front one
    /// stays here until it is written (only the reader adds to it, so an empty queue means nothing is unsent).
    std::deque<Response> out;
    bool dead = false;
    bool accepted = false; ///< opened by the peer (counts against COYOTE_SIM_WIRE_MAX_CONNS)
    std::string death;
    /// The error the socket reported to a peek (it reports it once): the reason of its death, not the end of
    /// stream the next read sees.
    std::atomic<int> sock_err{0};
};

/// A reader or sender thread of a connection; `finished` is set as its last step (joining it then does not wait).
struct ConnThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
};

/// The TCP wire of one NIC: a listener (bound at construction, listening from open()), an acceptor thread that
/// runs the handshakes of new connections without blocking on any of them, and a reader and a sender thread per
/// authenticated connection (a peer that stalls mid-frame or stops reading stalls only its own connection).
class TcpWire {
public:
    /// Binds the listener (COYOTE_SIM_WIRE_ADDR, else 127.0.0.1) without listening yet.
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
    /// `ctid` was unregistered: answers to its outstanding requests will be dropped; its key is withdrawn.
    void forget_ctid(int32_t ctid) noexcept;
    /// Starts listening (a peer needs the wire); idempotent.
    void open();
    /// True once open() ran.
    bool is_open() const noexcept { return open_.load(); }
    /// Manual progress, from a thread polling this vFPGA for completions: handles the frames that arrived whole on
    /// the connections no other thread is reading, so that a completion does not wait for a reader thread to be
    /// scheduled (on a busy core that is the poller's own). Never blocks: a frame still arriving is left to the
    /// connection's reader, and so are requests while the connection's answers are queued.
    void progress() noexcept;
    /// A fresh random key for the endpoint of `ctid` (replacing its previous one): a peer must present it in its
    /// HELLO, so a key learned from one out-of-band exchange opens no later connection to another queue pair.
    uint64_t issue_key(int32_t ctid);
    /// Why the connection to the peer of `key` was lost, if it was and no new one replaced it.
    std::optional<std::string> lost_reason(uint64_t key);

private:
    using ConnPtr = std::shared_ptr<Conn>;
    /// A frame handler (tcp_frames.cpp): false when the connection was dropped.
    using FrameHandler = bool (TcpWire::*)(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline);
    /// The handler of each frame type, indexed by FrameType.
    static const std::array<FrameHandler, 9> k_handlers;

    /// The connection requests of `ctid` to `ep` go on (opened on first use); throws peer_gone when it was lost.
    ConnPtr connect_to(const Endpoint& ep, int32_t ctid);
    /// Opens a connection to `ep` and runs the HELLO handshake presenting `mine` (retries a refused connection:
    /// the peer opens its listener when it learns our endpoint).
    Fd dial(const Endpoint& ep, uint64_t mine, const std::string& who, Clock::time_point deadline);
    /// The TCP connection of dial(): retries a refused one (automatic wire) and one the network cannot carry yet
    /// (no route, link down: a flap) until `deadline`.
    Fd connect_socket(const Endpoint& ep, const std::string& who, Clock::time_point deadline);
    /// The acceptor thread (tcp_accept.cpp): accepts connections and advances every handshake as bytes arrive.
    void acceptor();
    /// Accepts the pending connections into `hs` (dropping the oldest handshake beyond the cap).
    void accept_new(std::vector<Handshake>& hs);
    /// Reads what `h` has of its HELLO; true when the handshake is over (authenticated or refused).
    bool advance(Handshake& h);
    /// Adds an authenticated connection and starts its reader and sender threads; joins those of connections
    /// that ended.
    void adopt(ConnPtr c);
    /// Starts `body` as a connection thread named `name` (conns_mtx_ held).
    void start_conn_thread(const char* name, std::function<void()> body);
    /// The reader thread of `c`: waits for each frame and handles it, until the connection dies.
    void reader(ConnPtr c);
    /// The key of `ctid`'s endpoint, 0 when none was issued.
    uint64_t key_of(int32_t ctid);
    /// True when `key` is the key of one of our endpoints.
    bool key_issued(uint64_t key);
    /// The sender thread of `c`: sends the answers queued by respond(), until the connection dies.
    void sender(ConnPtr c);
    /// Reads one frame header from `c` and dispatches it to its handler; false: connection dropped.
    bool handle_frame(const ConnPtr& c);
    /// Handles the frames `c` holds whole, up to k_progress_frames, if its receive turn is free (progress()).
    void serve_arrived(const ConnPtr& c) noexcept;
    /// Whether the next frame of `c` is in its socket whole and can be handled without waiting (receive turn held).
    bool frame_arrived(Conn& c);
    /// Peeks the header of the next frame of `c` into `h`: true when the frame is in the socket whole.
    static bool next_frame_whole(Conn& c, FrameHeader& h);
    /// Drops `c`: its pending requests fail with peer_gone on their queue pairs.
    void kill(const ConnPtr& c, const std::string& reported) noexcept;
    /// Answers a request (the reader of its connection): written at once when nothing is queued before it and the
    /// socket takes it without waiting, else (the rest of it) queued for the sender thread, waiting (up to the I/O
    /// timeout) for room when k_max_queued_answers are queued; false when the connection was dropped (then too,
    /// when the peer read none).
    bool respond(Response r);
    /// respond() without the held-back ACK.
    bool answer(Response r);
    /// Queues `r` for the sender thread of its connection (respond()).
    bool enqueue(Response r);
    /// Authenticated connections the peers opened that are still alive.
    size_t accepted_conns();
    /// Wakes the acceptor (stop).
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
    /// A WRITE / SEND's payload `r` arrived whole: captures it for the sniffers, then completes it when `last`.
    void received(const RdmaRequest& r, const Verdict& v, bool last);
    /// Sends `resp` unless `err` (then drops the connection); the handler's result.
    bool finish_request(const ConnPtr& c, Response resp, const std::string& err);
    /// Acknowledges an accepted WRITE / SEND: held back (cumulatively, up to k_max_coalesced_acks requests) while
    /// the next frame is another whole WRITE / SEND, else sent at once, answering the held ones too.
    bool acknowledge(Response resp);
    /// Sends the ACK held back on the connection of `r`, if any, ahead of `r` (respond()).
    bool flush_deferred_ack(const Response& r);
    /// Takes the pending requests a (cumulative) ACK `h` answers; false (connection dropped) when it names none.
    bool take_acked(const ConnPtr& c, const FrameHeader& h, std::vector<Pending>& acked);
    /// Takes the pending request `h` answers; false (connection dropped) when there is none.
    bool take_pending(const ConnPtr& c, const FrameHeader& h, Pending& p);
    /// Receives a READ response into the local buffer or window it was requested for.
    std::string receive_read_data(int fd, const Pending& p, Clock::time_point deadline);
    /// Ends the handling of an answer: the request leaves the in-flight count of its generation; drops the
    /// connection on `err`.
    bool finish_answer(const ConnPtr& c, const Pending& p, const std::string& err);
    /// Writes `r` from byte r.sent on (the write turn held), waiting for the socket with `wait`, else only what it
    /// takes now; returns an error text.
    std::string send_response(Response& r, Clock::time_point deadline, bool wait);
    /// Writes a READ response from the buffer or window it was validated against, or a NAK when it went away
    /// before its first byte (an error when it went away in the middle).
    std::string send_read_data(Response& r, Clock::time_point deadline, bool wait);

    NicImpl& nic_;
    WireConfig cfg_;
    Fd listener_;
    Fd event_;
    uint32_t addr_ = 0;
    uint16_t port_ = 0;
    std::string congestion_; ///< the congestion control of every connection (the listener's: tcp/congestion.hpp)
    /// Where the wire's threads run (tcp/wire_cpus.hpp; nullopt: where the thread that starts them runs); set by
    /// open(), before the first thread starts.
    std::optional<cpu_set_t> thread_cpus_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> open_{false};
    std::mutex open_mtx_;

    std::mutex keys_mtx_;
    std::map<int32_t, uint64_t> keys_;           ///< ctid -> key of its current endpoint
    std::atomic<uint64_t> next_req_{1};

    std::mutex conns_mtx_;
    std::vector<ConnPtr> conns_;                 ///< live connections (each has a reader thread)
    std::atomic<size_t> n_conns_{0};             ///< conns_.size(), for progress() to skip the lock
    std::atomic<size_t> progress_cursor_{0};     ///< the connection progress() starts at (rotates)
    /// Readers and senders: a finished one is joined by the next adopt(), the rest by the destructor, so that a
    /// wire whose peers come and go keeps only the threads of live connections.
    std::vector<ConnThread> readers_;
    std::map<uint64_t, ConnPtr> by_key_;         ///< peer key -> connection used for requests
    DeadPeers dead_keys_{k_max_dead_peers};     ///< peers whose connection was lost (the latest ones)

    std::thread acceptor_;
};

}  // namespace coyote::detail::sim::net
