// coyote-mpi collectives: the transport engine (internal; included by the library's sources only).
//
// One channel per connected peer, on that peer's queue pair and registered buffer (size S, identical on all
// ranks):
//
//   [0, 4096)                control: +0 credit (written by the peer: how many of our messages it consumed),
//                            +8 credit staging, +16 liveness probe target, +24 probe source
//   [4096, 4096 + K*slot)    receive ring: the peer's messages, message n in slot n % K
//   [4096 + K*slot, ...)     send staging: our message n is built in slot n % K, then one RDMA WRITE (last = true)
//                            copies header + payload into the peer's receive ring slot n % K. A chunk of a pure
//                            copy stream of at least 16 KiB skips the staging copy: one WRITE (last = false) from
//                            the source into the peer's slot, then the header alone (last = true)
//
// Arrival is the receiver's LOCAL_WRITE completion count (only data messages use last = true, and only this
// peer writes into this queue pair's buffer). Credits and liveness probes are WRITEs with last = false.
//
// Direct placement (steps of at least EngineConfig::direct_min bytes that are pure copies): the receiver
// registers the destination range as a remote-access window of the queue pair and sends a ready-to-receive
// message (its address); the sender writes each chunk straight from its source into the window (last = false)
// and then posts a header-only message marked direct (last = true), which proves that the chunk landed.
//
// Links (point-to-point to a rank outside the wired peer set): the first send or receive between two such
// ranks opens a queue pair on demand. Each side sends a hello (its exportQp blob) over MPI on the engine's own
// communicator, connects to the peer's blob when it arrives and answers with ready; a side writes into the
// link only after it connected and received the peer's ready. Crossing hellos need no tie-break: each side
// connects to the other's blob. A rank that cannot open the queue pair answers with a refusal (its reason).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <coyote/cThread.hpp>
#include <coyote/mpi/collectives_types.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>
#include <coyote/mpi/wiring.hpp>

namespace coyote::mpi {
struct CollectiveOptions;
}

namespace coyote::detail::coll {

/// Reduction kernels of one (type, op): acc: d op= s; red3: d = a op b (no overlap).
struct Kernels {
    void (*acc)(void*, const void*, std::size_t) = nullptr;
    void (*red3)(void*, const void*, const void*, std::size_t) = nullptr;
};
Kernels kernels(mpi::Datatype t, mpi::Op o) noexcept;

constexpr uint64_t k_control_bytes = 4096;
constexpr uint32_t k_header_bytes = 64;
constexpr uint32_t k_kind_coll = 0x4c4c4f43; // "COLL"
constexpr uint32_t k_kind_p2p = 0x50325031;  // "1P2P"
constexpr uint32_t k_kind_rtr = 0x31525452;  // "RTR1": ready to receive (direct placement)
constexpr uint32_t k_first_direct = 2;       ///< MsgHeader::first of a collective chunk placed directly
constexpr int k_link_tag = 0x4c4e;           ///< MPI tag of link messages on Engine::link_comm()

/// The operation a collective message belongs to.
enum class CollKind : uint32_t {
    barrier = 1, broadcast, reduce, allreduce, gather, allgather, scatter, reduce_scatter, alltoall
};
const char* kind_name(CollKind k) noexcept;

/// What every rank must agree on for one collective call; carried in every message and checked on arrival.
struct Signature {
    CollKind kind = CollKind::barrier;
    uint32_t dtype = 0;
    uint64_t count = 0;
    int32_t root = -1;
    uint32_t op = 0;
};
std::string describe(const Signature& s);

/// Header of every message (64 bytes, in front of the payload in the slot).
struct MsgHeader {
    uint32_t kind = 0;  ///< k_kind_coll or k_kind_p2p
    uint32_t len = 0;   ///< payload bytes of this message
    uint64_t seq = 0;   ///< message number on this channel (checked)
    uint64_t epoch = 0; ///< collective: call number; p2p: message number
    int32_t tag = 0;    ///< p2p tag
    uint32_t first = 0; ///< p2p: first chunk of a message; collective: k_first_direct (payload placed directly)
    uint64_t total = 0; ///< p2p: message bytes; collective: signature count
    uint32_t sig_kind = 0;
    uint32_t sig_dtype = 0;
    int32_t sig_root = 0;
    uint32_t sig_op = 0;
    uint64_t addr = 0;  ///< ready-to-receive: window address (0: send through the ring)
};
static_assert(sizeof(MsgHeader) == k_header_bytes);

/// A collective message taken off the ring before its call consumed it (another call was at the head).
struct Stashed {
    MsgHeader h;
    std::vector<std::byte> data;
};

/// A ready-to-receive message: the `index`-th direct stream of call `epoch` on this channel goes to `addr`.
struct ReadyToReceive {
    MsgHeader h; ///< epoch, tag = index, addr, signature
};

/// A point-to-point message that arrived before a matching receive was posted.
struct Unexpected {
    int tag = 0;
    uint64_t total = 0;
    uint64_t got = 0;
    bool complete = false;
    std::vector<std::byte> data;
};

/// Shared state of a non-blocking operation.
struct OpState {
    std::atomic<bool> done{false};
    std::exception_ptr error;
    std::string what; ///< e.g. "isend to rank 2 (tag 5, 4096 bytes)"
    // point-to-point
    bool is_p2p = false;
    bool is_send = false;
    int peer = -1;
    int tag = 0;
    const std::byte* sbuf = nullptr;
    std::byte* rbuf = nullptr;
    uint64_t bytes = 0;    ///< send: message bytes; receive: capacity
    uint64_t progress = 0; ///< bytes posted (send)
    bool started = false;
    uint64_t received = 0; ///< bytes of the matched message (receive)
    uint64_t msg_id = 0;
    std::shared_ptr<Unexpected> from_unexpected;
};

/// A remote-access window over a caller's destination range, kept registered after its call (a later call with
/// the same range offers it again without registering).
struct CachedWindow {
    std::byte* addr = nullptr;
    uint64_t len = 0;     ///< 0: slot empty
    bool in_use = false;  ///< offered to the peer by a running schedule
    uint64_t stamp = 0;   ///< last use (least recently used idle windows are replaced first)
};

/// One peer's channel (see the file comment for the buffer layout).
struct Channel {
    int peer = -1;
    cThread* thread = nullptr;
    std::byte* buf = nullptr;
    uint32_t slots = 0;
    uint64_t slot_bytes = 0;
    uint64_t recv_base = 0;
    uint64_t send_base = 0;
    // sending
    uint64_t sent = 0;
    uint32_t write_base = 0;
    uint64_t p2p_msgs_out = 0;
    // receiving
    uint64_t consumed = 0;
    uint64_t credited = 0;
    uint32_t arrive_base = 0;
    std::deque<Stashed> stash;
    std::deque<ReadyToReceive> rtrs; ///< received, not yet used by a send
    uint32_t windows = 0;            ///< windows in use by running schedules
    std::array<CachedWindow, 4> wins; ///< registered windows (in use or cached)
    uint64_t win_clock = 0;
    // point-to-point
    std::deque<std::shared_ptr<OpState>> sendq;
    std::deque<std::shared_ptr<OpState>> posted;
    std::deque<std::shared_ptr<Unexpected>> unexpected;
    bool in_active = false;
    uint64_t in_total = 0;
    uint64_t in_got = 0;
    int in_tag = 0;
    std::shared_ptr<OpState> in_req;
    std::shared_ptr<Unexpected> in_unexp;
    bool in_discard = false;
    // liveness
    std::chrono::steady_clock::time_point last_probe{};
    // links
    bool lazy = false;  ///< opened on demand (a Link), not part of the wired peer set
    bool ready = true;  ///< may be written and read (a link: connected and the peer's ready received)
};

/// A queue pair opened on demand for point-to-point messages (see the file comment).
struct Link {
    std::unique_ptr<cThread> thread;
    std::vector<std::byte> blob; ///< our exportQp
    bool hello_sent = false;
    bool connected = false;      ///< connectQp to the peer's blob done
    bool peer_ready = false;     ///< the peer connected to ours
    std::exception_ptr error;    ///< refused or failed: operations with this peer fail with it
};

/// An MPI send of a link message (the buffer lives until the send completes).
struct LinkSend {
    std::vector<std::byte> data;
    MPI_Request req = MPI_REQUEST_NULL;
};

/// One step of a collective schedule: a stream of chunks to one peer, from one peer, or from one peer
/// transformed and forwarded to another. Steps on the same outgoing (incoming) channel post (consume) in
/// schedule order; steps on different channels proceed concurrently.
struct Step {
    enum class Kind { send, recv, forward } kind = Kind::send;
    int to = -1;
    int from = -1;
    uint64_t bytes = 0;
    /// send: write payload [off, off+len) of the stream into dst (the staging slot).
    std::function<void(uint64_t off, std::byte* dst, uint32_t len)> produce;
    /// recv: take payload [off, off+len) from src (the receive slot).
    std::function<void(uint64_t off, const std::byte* src, uint32_t len)> consume;
    /// forward: src (received) -> dst (staging of the next message).
    std::function<void(uint64_t off, const std::byte* src, std::byte* dst, uint32_t len)> forward;
    /// forward, optional: when the outgoing side is blocked, take the chunk into local memory (absorb) and send
    /// it from there later (emit). Needed where forwards close a cycle (rings).
    std::function<void(uint64_t off, const std::byte* src, uint32_t len)> absorb;
    std::function<void(uint64_t off, std::byte* dst, uint32_t len)> emit;
    /// Chunk gate: chunk [off, off+len) waits until steps[gate] moved gate_shift + off + len bytes.
    int gate = -1;
    uint64_t gate_shift = 0;
    /// Steps that must be complete before the first chunk.
    std::vector<int> after;
    /// Pure copies moved by the engine (then produce / consume / forward / absorb-emit are not used, except
    /// absorb of a forward without direct_in): recv / forward: the stream lands at direct_in[0, bytes);
    /// send / forward: the stream is read from direct_out[0, bytes) (a forward without direct_out sends from
    /// direct_in; a forward with direct_out but no direct_in must absorb each chunk into direct_out). At
    /// EngineConfig::direct_min bytes and more the peer places the data directly, so both sides of a channel
    /// must mark their steps alike.
    std::byte* direct_in = nullptr;
    const std::byte* direct_out = nullptr;
    // progress (engine), in chunks
    uint64_t chunks = 0;
    uint64_t done = 0;    ///< chunks posted (send, forward) or consumed (recv)
    uint64_t in_done = 0; ///< forward: chunks taken from the incoming side
    bool finished = false;
    Channel* out = nullptr;
    Channel* in = nullptr;
    int prev_out = -1;
    int prev_in = -1;
    int rtr_in = -1;       ///< index of the ready-to-receive this step sends (-1: none)
    int rtr_out = -1;      ///< index of the ready-to-receive this step waits for (-1: none)
    bool rtr_sent = false;
    bool window = false;   ///< direct_in is registered as a window (Channel::wins[win_slot])
    int win_slot = -1;
    bool out_known = false;
    uint64_t out_addr = 0; ///< peer window of the stream (0: through the ring)
};

/// A local copy a schedule leaves to the engine: done in pieces while the schedule waits for peers, once every
/// outgoing chunk is posted (so it delays no send); copies above 256 KiB, and what is left, at the end.
struct IdleCopy {
    std::byte* dst = nullptr;
    const std::byte* src = nullptr;
    uint64_t bytes = 0;
};

/// One message of an eager call (Engine::execute_eager). Trivial (arrays of them cost nothing to declare): set
/// every field but the engine's.
struct EagerOp {
    bool send;
    /// A plain copy on both sides (the receive lands at `dst`). From EngineConfig::direct_min bytes on such a
    /// message is placed directly (ready-to-receive, write into the window, header), so both sides must mark
    /// the message alike.
    bool copy;
    int peer;
    uint32_t len;          ///< payload bytes (at most Engine::payload())
    const std::byte* src;  ///< send: the payload
    std::byte* dst;        ///< copy receive: the destination
    /// Other receives: takes the payload (e.g. a reduction); `ctx` is passed through. Not called for len 0.
    void (*take)(void* ctx, const std::byte* payload, uint32_t len);
    void* ctx;
    // set by execute_eager
    int32_t rtr;  ///< placed directly: index of its ready-to-receive on the channel (-1: through the ring)
    int32_t win;  ///< direct receive: the window offered (Channel::wins slot, -1: none)
    bool offered; ///< direct receive: ready-to-receive posted
};

/// Configuration shared by all ranks (checked at construction).
struct EngineConfig {
    uint64_t buffer_size = 0;
    uint64_t chunk_bytes = 0;
    std::chrono::milliseconds timeout{120000};
    std::chrono::milliseconds probe_interval{20};
    bool all_peers = false;
    uint64_t direct_min = 0; ///< direct placement for copy steps of at least this many bytes (0: never)
    bool oversubscribed = false; ///< some node runs more ranks than it has cores (agreed by all ranks)
};

/// The transport: channels, flow control, matching, schedules, point-to-point progress.
class Engine {
public:
    Engine(const mpi::Communicator& comm, const mpi::DeviceAssignment& device, const EngineConfig& cfg);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }
    const std::vector<int>& peers() const noexcept { return qps_.peers(); }
    /// Peers wired at construction (the same on every rank's view; links opened later do not count).
    bool connected(int peer) const noexcept { return qps_.has_peer(peer); }
    bool all_connected() const noexcept { return static_cast<int>(qps_.peers().size()) == size_ - 1; }
    /// Peers reached through links opened on demand (ready or not).
    std::vector<int> link_peers();
    uint32_t payload() const noexcept { return payload_; }
    uint32_t slots() const noexcept { return slots_; }
    const EngineConfig& config() const noexcept { return cfg_; }
    /// Payload bytes written straight into peers' windows.
    uint64_t direct_bytes() const noexcept { return direct_bytes_.load(std::memory_order_relaxed); }
    /// Payload bytes written from the source straight into peers' receive rings (no staging copy).
    uint64_t unstaged_bytes() const noexcept { return unstaged_bytes_.load(std::memory_order_relaxed); }
    /// Calls run by execute_eager.
    uint64_t eager_calls() const noexcept { return eager_calls_.load(std::memory_order_relaxed); }
    MPI_Comm comm() const noexcept { return comm_->get(); }
    /// The engine's own communicator for link messages (tag k_link_tag).
    MPI_Comm link_comm() const noexcept { return link_comm_->get(); }

    /// Next collective call number (every rank numbers its calls the same way).
    uint64_t next_epoch() noexcept { return epoch_.fetch_add(1) + 1; }

    /// Runs a schedule to completion; throws on a protocol error, a mismatched call, a dead peer or the deadline.
    /// `what` names the call in errors (a string that outlives the call, e.g. a literal).
    void execute(std::vector<Step>& steps, uint64_t epoch, const Signature& sig, const char* what,
                 IdleCopy idle_copy = {});

    /// True when messages of `bytes` may go eagerly: one slot each, below direct placement (the same answer on
    /// every rank, so all ranks of a call take the same path).
    bool eager_fits(uint64_t bytes) const noexcept {
        return bytes <= payload_ && (cfg_.direct_min == 0 || bytes < cfg_.direct_min);
    }
    /// The same for calls whose messages are all marked EagerOp::copy: one slot each (larger ones are placed
    /// directly, one message each).
    bool eager_copy_fits(uint64_t bytes) const noexcept { return bytes <= payload_; }
    /// Runs the single-message operations `ops[0, n)` in order without building a schedule: a send goes out as
    /// soon as its peer has a free slot (a direct one once its ready-to-receive arrived), a receive waits for
    /// its message (each message fits eager_fits, or eager_copy_fits when marked copy). Direct receives offer
    /// their windows at the start. The order must not make two ranks wait for each other (every rank's list
    /// follows the same algorithm). `idle_copy` runs while the call waits once every send is out, the rest at
    /// the end. Errors as for execute().
    void execute_eager(EagerOp* ops, std::size_t n, uint64_t epoch, const Signature& sig, const char* what,
                       IdleCopy idle_copy = {});

    /// Point-to-point.
    std::shared_ptr<OpState> post_send(const void* buf, uint64_t bytes, int peer, int tag);
    std::shared_ptr<OpState> post_recv(void* buf, uint64_t bytes, int peer, int tag);
    /// Progresses, true when `op` is complete (throws its error).
    bool test(OpState& op);
    /// Waits for `op` up to `timeout` (nullopt: the engine deadline, then throws); false if not complete.
    bool wait(OpState& op, std::optional<std::chrono::milliseconds> timeout);

    /// Marks the engine unusable (after an error); teardown then skips the collective arrival.
    void set_broken() noexcept { broken_ = true; }
    bool broken() const noexcept { return broken_; }

    /// Queues a non-blocking collective: `job` runs on the engine's progress thread (one for all, in call
    /// order, started on first use); `op` completes with its result.
    void submit(std::shared_ptr<OpState> op, std::function<void()> job);

private:
    /// A channel on `thread`'s queue pair and registered buffer `buf` (control area cleared, counter baselines).
    Channel make_channel(int peer, cThread& thread, std::byte* buf);
    /// Throws invalid_argument unless `peer` is another rank of the communicator.
    void check_peer(int peer, const char* what) const;
    Channel& chan(int peer, const char* what);
    /// The channel to `peer` for point-to-point, opening a link when there is none (mtx_ held).
    Channel& p2p_chan(int peer, const char* what);
    // links (mtx_ held; MPI only on the owner thread)
    bool owner_thread() const noexcept { return std::this_thread::get_id() == owner_; }
    void open_link(int peer, Link& l);
    void send_link_msg(int peer, uint32_t type, const std::vector<std::byte>& blob, const std::string& text);
    /// Receives and handles link messages (`force`: ignore the poll interval; `defer_errors`: keep an error for
    /// the next point-to-point call instead of throwing it).
    void progress_links(bool force, bool defer_errors = false);
    void poll_links();
    void on_link_msg(int from, const std::byte* msg, std::size_t bytes);
    void fail_link(int peer, std::exception_ptr error);
    /// Frees the link message sends that completed.
    void reap_link_sends();
    // all below: caller holds mtx_
    uint32_t arrived(Channel& c);
    uint32_t free_slots(Channel& c);
    bool can_send(Channel& c, uint32_t reserve);
    /// Offset of the slot of the next message (c.sent) within the send staging area and the peer's ring.
    static uint64_t slot_offset(const Channel& c) noexcept { return (c.sent % c.slots) * c.slot_bytes; }
    std::byte* staging(Channel& c) noexcept;
    void post(Channel& c, MsgHeader h, bool header_only = false);
    /// Posts message h (payload h.len bytes at `src`) through the ring: from 16 KiB on written from `src` straight
    /// into the peer's slot, then the header; below that (or where the backend writes only from the registered
    /// buffer) staged. One message: the caller checked can_send.
    void post_copy(Channel& c, const MsgHeader& h, const std::byte* src);
    /// WRITE (last = false) of [src, src + len) from the caller's memory to `remote`; false, and `denied` set for
    /// good, when the backend refuses such writes (not_supported). Other errors: peer_failed.
    bool write_from_source(Channel& c, const std::byte* src, uint64_t remote, uint32_t len, bool& denied);
    /// Writes [src, src + len) into the peer's window at `remote` (last = false; the caller posts the header).
    /// False when the wire cannot reach the peer's memory: then this and every later stream go through the ring.
    bool write_direct(Channel& c, const std::byte* src, uint64_t remote, uint32_t len);
    /// Offers a window over [dst, dst + len) (or the ring, when none is free) to c's peer as ready-to-receive
    /// `index` of call `epoch`; returns the window slot or -1. The caller checked can_send.
    int offer_window(Channel& c, const MsgHeader& proto, int index, std::byte* dst, uint64_t len);
    /// The receive that offered window `slot` of c is done: the window stays cached, no longer in use.
    void end_offer(Channel& c, int slot) noexcept;
    /// Takes ready-to-receive `index` of call `epoch` from c's peer (signature checked): true with the window
    /// address in `addr` (0: through the ring), false if it has not arrived.
    bool take_rtr(Channel& c, const MsgHeader& proto, uint64_t epoch, const Signature& sig, const char* what,
                  int index, uint64_t& addr);
    /// Posts message h (payload h.len bytes at `src`): into the peer's window at `remote` and then the header,
    /// or through the ring (post_copy) when `remote` is 0 or the wire cannot reach the peer's memory.
    void post_placed(Channel& c, MsgHeader h, const std::byte* src, uint64_t remote);
    /// Finds the ready-to-receive `index` of call `epoch` from c's peer (reading the ring as needed).
    const ReadyToReceive* find_rtr(Channel& c, uint64_t epoch, int index);
    const MsgHeader* head(Channel& c, const std::byte** payload);
    void release_head(Channel& c);
    void return_credit(Channel& c);
    void flush_credits();
    /// The next collective message of `epoch` from `c` (stash first, then the ring); dispatches point-to-point
    /// messages and stashes other calls' messages on the way. null if none yet.
    const MsgHeader* peek_coll(Channel& c, uint64_t epoch, const std::byte** payload, bool& from_stash);
    void drop_coll(Channel& c, bool from_stash, uint64_t epoch);
    /// Keeps a ready-to-receive or collective message that is not yet wanted (c.rtrs / c.stash), after
    /// check_current.
    void set_aside(Channel& c, const MsgHeader& h, const std::byte* payload);
    /// The collective call that last took mtx_ to run (set_aside checks its messages; mtx_ held).
    struct Current {
        uint64_t epoch = 0;
        const MsgHeader* proto = nullptr;
        const Signature* sig = nullptr;
        const char* what = nullptr;
        std::thread::id thread; ///< its thread: only that thread's passes check (and throw) for it
    };
    /// Throws the mismatch if `h` (from c's peer) belongs to the Current call of this thread and carries
    /// another signature.
    void check_current(const Channel& c, const MsgHeader& h) const;
    /// Makes a running call Current for its lifetime (mtx_ held). Calls on two threads may interleave while one
    /// yields: the later one takes over, and each clears only its own entry (never a dangling one).
    class CallScope {
    public:
        CallScope(Engine& e, uint64_t epoch, const MsgHeader& proto, const Signature& sig, const char* what) noexcept
            : e_(e), proto_(&proto) {
            e_.cur_ = Current{epoch, &proto, &sig, what, std::this_thread::get_id()};
        }
        ~CallScope() {
            if (e_.cur_.proto == proto_) e_.cur_ = Current{};
        }
        CallScope(const CallScope&) = delete;
        CallScope& operator=(const CallScope&) = delete;

    private:
        Engine& e_;
        const MsgHeader* proto_;
    };
    void dispatch_p2p(Channel& c, const MsgHeader& h, const std::byte* payload);
    /// `in_collective`: called from a collective's idle passes (link errors are kept for the next
    /// point-to-point call instead of failing the collective).
    void progress_p2p(Channel* drain, bool in_collective = false);
    void complete_from_unexpected(OpState& op);
    void probe(Channel& c, const std::string& what);
    /// Rethrows `e` naming the peer (and tells the others) when it says the peer is gone.
    [[noreturn]] void peer_failed(Channel& c, const Error& e);
    /// Fails the call because the queue pair to `c`'s peer failed with `e`. A report of another rank's death
    /// that is already here takes precedence: the reporter may have left right after sending it.
    [[noreturn]] void lost_peer(Channel& c, const std::string& what, const Error& e);
    /// Tells every other peer that this rank failed because `dead` (-1: deadline) is gone.
    void notify_failure(int dead) noexcept;
    /// Throws peer_gone if a peer reported a failure (and passes the report on).
    void check_abort(const std::string& what);
    void validate(Channel& c, const MsgHeader& h);
    /// The header fields every message of collective call `epoch` carries.
    static MsgHeader coll_proto(uint64_t epoch, const Signature& sig) noexcept;
    /// Throws invalid_argument naming both calls unless h (from `peer`) carries the signature of `proto`.
    void check_sig(int peer, const MsgHeader& h, const MsgHeader& proto, uint64_t epoch, const Signature& sig,
                   const char* what) const;
    /// A data chunk of the call from `peer`: check_sig, then invalid_argument (mismatched counts?) unless
    /// h.len == len, and a protocol error if it claims direct placement where the receiver offered no window.
    void check_chunk(int peer, const MsgHeader& h, const MsgHeader& proto, uint32_t len, bool window, uint64_t epoch,
                     const Signature& sig, const char* what) const;
    /// A collective call that found nothing to do: counts the pass and waits (spin, then yield); now and then
    /// returns credits, progresses point-to-point and checks for failure reports; probes the peers waited for
    /// and throws at the deadline naming them. `waiting(data, credit, debug)` lists the channels the call waits
    /// on for data and for credits (and, with COYOTE_COLL_DEBUG set, describes the call's state).
    struct Idle {
        uint64_t passes = 0;
        std::chrono::steady_clock::time_point since{};
    };
    template <class Waiting>
    void idle_pass(Idle& idle, std::unique_lock<std::mutex>& lk, uint64_t epoch, const Signature& sig,
                   const char* what, Waiting&& waiting);
    /// After a failed call: the engine is broken and every window (the call's and the cached ones) is withdrawn,
    /// so that nothing lands in the caller's buffers afterwards.
    void fail_call() noexcept;
    /// A window over [addr, addr + len) on c's queue pair, marked in use: a cached one with that range, else a
    /// newly registered one (replacing idle windows that overlap it or the least recently used); -1 if none.
    int acquire_window(Channel& c, std::byte* addr, uint64_t len);
    /// Unregisters a cached window (never throws).
    void release_window(Channel& c, CachedWindow& w) noexcept;

    std::shared_ptr<mpi::detail::CommHandle> comm_;
    int rank_ = 0;
    int size_ = 0;
    EngineConfig cfg_;
    mpi::QpSet qps_;
    std::map<int, Channel> chans_;
    std::vector<Channel*> chan_of_; ///< chans_ by rank (null: none); map nodes do not move
    uint32_t slots_ = 0;
    uint32_t payload_ = 0;
    uint64_t spin_passes_ = 1; ///< idle passes before yielding (1 when the node is oversubscribed)
    std::atomic<uint64_t> epoch_{0};
    std::mutex mtx_;
    std::vector<std::shared_ptr<OpState>> p2p_pending_;
    // non-blocking collectives: one progress thread runs the queued jobs in call order
    struct AsyncJob {
        std::shared_ptr<OpState> op;
        std::function<void()> job;
    };
    void run_async_jobs();
    std::mutex async_mtx_;
    std::condition_variable async_cv_;
    std::deque<AsyncJob> async_q_;
    bool async_stop_ = false;
    std::thread async_thread_; ///< joined by the destructor before anything else is torn down
    std::atomic<bool> broken_{false};
    std::atomic<uint64_t> direct_bytes_{0};
    std::atomic<uint64_t> unstaged_bytes_{0};
    std::atomic<uint64_t> eager_calls_{0};
    bool direct_denied_ = false; ///< a direct write failed with not_supported: streams go through the ring
    bool ring_write_denied_ = false; ///< an unstaged ring write failed with not_supported: copy chunks are staged
    Current cur_;                    ///< see CallScope
    mpi::BootstrapOptions bootstrap_;
    // links: declared after chans_ (channels point into the links' buffers; raw pointers only)
    mpi::DeviceAssignment device_;
    std::thread::id owner_;                              ///< the thread that may call MPI (MPI_THREAD_FUNNELED)
    std::shared_ptr<mpi::detail::CommHandle> link_comm_; ///< own duplicate of the communicator for link messages
    std::map<int, Link> links_;
    std::deque<LinkSend> link_sends_;
    uint32_t links_waiting_ = 0; ///< links whose hello went out, not ready, not failed (poll MPI on every pass)
    std::exception_ptr link_error_;                      ///< met inside a collective, for the next p2p call
    std::chrono::steady_clock::time_point next_link_poll_{};
};

/// Reductions run by the vFPGA's user logic instead of the CPU (CollectiveOptions::offload_reductions): the
/// sim `reduce` model (COYOTE_SIM_MODEL=reduce) or user logic with its register contract
/// (<coyote/sim/reduce_model.hpp>). d = a op b is LOCAL_WRITE(d, dest 0), LOCAL_READ(a, dest 0),
/// LOCAL_READ(b, dest 1) on an own cThread, waiting (bounded) for the write's completion. Thread-safe.
class ReduceOffload {
public:
    /// Opens a cThread on `device` and checks the contract (identity register, one probe reduction); throws
    /// Errc::not_supported naming COYOTE_SIM_MODEL=reduce when the user logic is something else.
    ReduceOffload(const mpi::DeviceAssignment& device, std::chrono::milliseconds timeout);
    ~ReduceOffload();
    ReduceOffload(const ReduceOffload&) = delete;
    ReduceOffload& operator=(const ReduceOffload&) = delete;

    /// True when the user logic implements `type` (op: every op check_op allows); else reduce on the CPU.
    bool supports(mpi::Datatype type, mpi::Op op) const noexcept;
    /// dst[i] = a[i] op b[i] for i < count; dst may equal a and/or b.
    void reduce(void* dst, const void* a, const void* b, std::size_t count, mpi::Datatype type, mpi::Op op);
    /// Elements reduced by the user logic through this object.
    uint64_t elements() const noexcept { return elements_.load(std::memory_order_relaxed); }

private:
    std::mutex mtx_;
    std::unique_ptr<cThread> thread_;
    std::chrono::milliseconds timeout_;
    uint64_t types_ = 0;       ///< supported type codes (bit per code)
    uint64_t cur_type_ = ~0ull; ///< what the type / op registers hold
    uint64_t cur_op_ = ~0ull;
    bool broken_ = false;
    std::atomic<uint64_t> elements_{0};
};

/// Arguments of one collective call (validated by the caller).
struct CallArgs {
    const void* send = nullptr; ///< MPI_IN_PLACE resolved: null when in place
    void* recv = nullptr;
    uint64_t count = 0;
    mpi::Datatype type = mpi::Datatype::uint8;
    mpi::Op op = mpi::Op::sum;
    int root = -1;
    bool in_place = false;
    ReduceOffload* offload = nullptr; ///< reductions through the vFPGA (types it supports), else the CPU
};

/// Algorithm switch points in bytes (see CollectiveOptions).
struct Thresholds {
    uint64_t allreduce_small = 0;
    uint64_t allreduce_large = 0;
    uint64_t reduce_scatter_small = 0;
    uint64_t tree_small = 0;
    uint64_t alltoall_small = 0;
    uint64_t allgather_small = 0;
};

/// Runs collective `kind` as call number `epoch`; returns the name of the algorithm used.
const char* run_collective(Engine& e, CollKind kind, const CallArgs& a, const Thresholds& t, uint64_t epoch);

}  // namespace coyote::detail::coll
