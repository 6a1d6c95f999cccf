// coyote-mpi collectives: the transport engine (internal; included by the library's sources only). One header for
// all of it: the wire format (wire.hpp), a peer's channel (channel.hpp), links opened on demand (link.hpp),
// schedules (schedule.hpp), what a call hands to its algorithm (call.hpp) and the Engine class below. Its
// functions live in: engine.cpp (construction, teardown, non-blocking collectives), channel.cpp (slots, credits,
// posting), matching.cpp (collective messages and signatures), direct.cpp (direct placement windows), p2p.cpp,
// links.cpp, failure.cpp (liveness, failure reports, stalls), schedule.cpp (execute) and eager.cpp
// (execute_eager); internal.hpp holds the tuning constants they share.
//
// Direct placement (steps of at least EngineConfig::direct_min bytes that are pure copies): the receiver
// registers the destination range as a remote-access window of the queue pair and sends a ready-to-receive
// message (its address); the sender writes each chunk straight from its source into the window (last = false)
// and then posts a header-only message marked direct (last = true), which proves that the chunk landed.
#pragma once

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
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <coyote/cThread.hpp>
#include <coyote/mpi/collectives_types.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>
#include <coyote/mpi/liveness.hpp>
#include <coyote/mpi/wiring.hpp>

#include "collectives/engine/call.hpp"
#include "collectives/engine/channel.hpp"
#include "collectives/engine/link.hpp"
#include "collectives/engine/schedule.hpp"
#include "collectives/engine/wire.hpp"

namespace coyote::mpi {
struct CollectiveOptions;
}

namespace coyote::detail::coll {

class ScheduleRun;
class EagerRun;

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
    /// Keeps `why` (the error of the call that broke the engine) unless an earlier one is kept.
    void note_failure(const std::string& why) {
        std::lock_guard lk(failure_mtx_);
        if (failure_.empty()) failure_ = why;
    }
    /// What broke the engine ("" when not known).
    std::string failure() const {
        std::lock_guard lk(failure_mtx_);
        return failure_;
    }

    /// Queues a non-blocking collective: `job` runs on the engine's progress thread (one for all, in call
    /// order, started on first use); `op` completes with its result.
    void submit(std::shared_ptr<OpState> op, std::function<void()> job);

private:
    friend class ScheduleRun; // schedule.cpp: one execute() call
    friend class EagerRun;    // eager.cpp: one execute_eager() call

    // ---- setup (engine.cpp) ----
    /// A channel on `thread`'s queue pair and registered buffer `buf` (control area cleared, counter baselines).
    Channel make_channel(int peer, cThread& thread, std::byte* buf);
    /// Throws invalid_argument unless `peer` is another rank of the communicator.
    void check_peer(int peer, const char* what) const;
    Channel& chan(int peer, const char* what);
    /// Teardown: waits (bounded) until every rank arrived, so no rank frees buffers a peer may still write.
    void teardown_barrier() noexcept;
    /// Tells every peer how many calls this engine started before closing: a peer that waits for it in a later
    /// call fails then, naming it, instead of at its deadline.
    void announce_close() noexcept;
    /// Teardown: point-to-point requests still open fail, so that their Request objects never need this engine.
    void fail_open_requests() noexcept;
    void run_async_jobs();

    // ---- links (links.cpp; mtx_ held; MPI only on the owner thread) ----
    /// The channel to `peer` for point-to-point, opening a link when there is none (mtx_ held).
    Channel& p2p_chan(int peer, const char* what);
    bool owner_thread() const noexcept { return std::this_thread::get_id() == owner_; }
    void open_link(int peer, Link& l);
    void send_link_msg(int peer, uint32_t type, const std::vector<std::byte>& blob, const std::string& text);
    /// Receives and handles link messages (`force`: ignore the poll interval; `defer_errors`: keep an error for
    /// the next point-to-point call instead of throwing it).
    void progress_links(bool force, bool defer_errors = false);
    void poll_links();
    /// Checks a received link message and hands it to the handler of its type.
    void on_link_msg(int from, const std::byte* msg, std::size_t bytes);
    /// Handlers of the link message types (k_link_hello ...): `m` checked, `blob` its m.blob_len bytes.
    void on_link_hello(int from, Link& l, const LinkMsg& m, const std::byte* blob);
    void on_link_ready(int from, Link& l, const LinkMsg& m, const std::byte* blob);
    void on_link_refuse(int from, Link& l, const LinkMsg& m, const std::byte* blob);
    void fail_link(int peer, std::exception_ptr error);
    /// Frees the link message sends that completed.
    void reap_link_sends();
    /// Teardown: receives the link messages still owed to us and completes our sends (bounded, never throws).
    void drain_links() noexcept;

    // ---- channel primitives (channel.cpp, channel_inline.hpp; caller holds mtx_) ----
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
    const MsgHeader* head(Channel& c, const std::byte** payload);
    void validate(Channel& c, const MsgHeader& h);
    void release_head(Channel& c);
    void return_credit(Channel& c);
    void flush_credits();

    // ---- direct placement (direct.cpp; mtx_ held) ----
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
    /// A window over [addr, addr + len) on c's queue pair, marked in use: a cached one with that range, else a
    /// newly registered one (replacing idle windows that overlap it or the least recently used); -1 if none.
    int acquire_window(Channel& c, std::byte* addr, uint64_t len);
    /// The slot for a new window over [addr, addr + len) (idle overlapping windows released); -1 if none.
    int window_slot_for(Channel& c, std::byte* addr, uint64_t len);
    /// Unregisters a cached window (never throws).
    void release_window(Channel& c, CachedWindow& w) noexcept;
    /// After a failed call: the engine is broken and every window (the call's and the cached ones) is withdrawn,
    /// so that nothing lands in the caller's buffers afterwards. Called in the call's catch block (report_mismatch).
    void fail_call() noexcept;

    // ---- collective messages (matching.cpp; mtx_ held) ----
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
    /// Throws invalid_argument naming both calls unless h (from `peer`) carries the signature of `proto`.
    void check_sig(int peer, const MsgHeader& h, const MsgHeader& proto, uint64_t epoch, const Signature& sig,
                   const char* what) const;
    /// A data chunk of the call from `peer`: check_sig, then invalid_argument (mismatched counts?) unless
    /// h.len == len, and a protocol error if it claims direct placement where the receiver offered no window.
    void check_chunk(int peer, const MsgHeader& h, const MsgHeader& proto, uint32_t len, bool window, uint64_t epoch,
                     const Signature& sig, const char* what) const;

    // ---- point-to-point (p2p.cpp; mtx_ held) ----
    void dispatch_p2p(Channel& c, const MsgHeader& h, const std::byte* payload);
    /// The first chunk of a message from c's peer: matches it with a posted receive or keeps it as unexpected.
    void begin_p2p(Channel& c, const MsgHeader& h);
    /// `in_collective`: called from a collective's idle passes (link errors are kept for the next
    /// point-to-point call instead of failing the collective).
    void progress_p2p(Channel* drain, bool in_collective = false);
    /// Posts the queued sends of c while it has slots.
    void push_p2p_sends(Channel& c);
    /// Takes the point-to-point messages (and ready-to-receives) at the head of c's ring; on `drain`, collective
    /// messages are set aside too.
    void pull_p2p(Channel& c, bool drain);
    void complete_from_unexpected(OpState& op);

    // ---- liveness and failure (failure.cpp; mtx_ held) ----
    /// The liveness probe of `c`'s peer: a WRITE it does not see complete. With `mine`, the WRITE carries it into
    /// the peer's StallRecord slot (a collective call stalled), else one byte.
    void probe(Channel& c, const std::string& what, const StallRecord* mine = nullptr);
    /// Throws the mismatch when `c`'s peer wrote that it is stalled in call `epoch` with another signature.
    void check_stalled_peer(const Channel& c, uint64_t epoch, const Signature& sig, const char* what) const;
    /// Rethrows `e` naming the peer (and tells the others) when it says the peer is gone.
    [[noreturn]] void peer_failed(Channel& c, const Error& e);
    /// Fails the call because the queue pair to `c`'s peer failed with `e`. A report of another rank's death
    /// that is already here takes precedence: the reporter may have left right after sending it.
    [[noreturn]] void lost_peer(Channel& c, const std::string& what, const Error& e);
    /// The same with the reason in words ("its queue pair failed: ...", "its process ... exited").
    [[noreturn]] void lost_peer(Channel& c, const std::string& what, const std::string& reason);
    /// Fails the call when the liveness channel (checked at most every COYOTE_MPI_LIVENESS_PERIOD_MS) found the
    /// peer of a channel in `v` gone: the hw NIC, like the hardware, reports no remote failure.
    void check_liveness(std::span<Channel* const> v, const std::string& what);
    /// Tells every other peer that this rank failed because `dead` (-1: deadline, k_dead_mismatch) is gone.
    void notify_failure(int dead) noexcept;
    /// In a catch block of a failed call: a mismatch found here is told to the peers (they may wait for messages
    /// this rank will never send), so that they fail now naming it, not at their deadline.
    void report_mismatch() noexcept;
    static constexpr int k_dead_mismatch = -2;
    /// Throws peer_gone if a peer reported a failure (and passes the report on).
    void check_abort(const std::string& what);
    /// Throws peer_gone (and tells the others) if the peer of a channel in `v` closed its engine before call
    /// `epoch` (announce_close).
    void check_closed(std::span<Channel* const> v, uint64_t epoch, const std::string& what);
    /// A collective call that found nothing to do: counts the pass and waits (spin, then yield); now and then
    /// returns credits, progresses point-to-point and checks for failure reports; probes the peers waited for
    /// and throws at the deadline naming them. `waiting(data, credit, debug)` lists the channels the call waits
    /// on for data and for credits (and, with COYOTE_COLL_DEBUG set, describes the call's state).
    struct Idle {
        uint64_t passes = 0;
        std::chrono::steady_clock::time_point since{};
        std::chrono::steady_clock::duration stalled{}; ///< set by idle_wait when it returns true
    };
    template <class Waiting>
    void idle_pass(Idle& idle, std::unique_lock<std::mutex>& lk, uint64_t epoch, const Signature& sig,
                   const char* what, Waiting&& waiting);
    /// The waiting part of idle_pass: true once the call has made no progress for a probe interval.
    bool idle_wait(Idle& idle, std::unique_lock<std::mutex>& lk, const char* what);
    /// Whether a stalled call describes its state (deadline reached and COYOTE_COLL_DEBUG set).
    bool debug_stall(const Idle& idle) const;
    /// Probes the channels waited on; at the deadline throws timeout naming their peers (and `state`).
    void on_stall(const Idle& idle, std::vector<Channel*>& data, std::vector<Channel*>& credit, bool debug,
                  std::string& state, uint64_t epoch, const Signature& sig, const char* what);

    std::shared_ptr<mpi::detail::CommHandle> comm_;
    int rank_ = 0;
    int size_ = 0;
    EngineConfig cfg_;
    mpi::QpSet qps_;
    std::optional<mpi::PeerLiveness> live_; ///< every rank's process (this host) or connection (other hosts)
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
    std::mutex async_mtx_;
    std::condition_variable async_cv_;
    std::deque<AsyncJob> async_q_;
    bool async_stop_ = false;
    std::thread async_thread_; ///< joined by the destructor before anything else is torn down
    std::atomic<bool> broken_{false};
    mutable std::mutex failure_mtx_;
    std::string failure_; ///< the error of the call that broke the engine
    std::atomic<uint64_t> direct_bytes_{0};
    std::atomic<uint64_t> unstaged_bytes_{0};
    std::atomic<uint64_t> eager_calls_{0};
    bool direct_denied_ = false; ///< a direct write failed with not_supported: streams go through the ring
    bool ring_write_denied_ = false; ///< an unstaged ring write failed with not_supported: copy chunks are staged
    bool windows_denied_ = false;    ///< registerWindow failed with not_supported (e.g. hw): no window is offered
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

/// Spins or yields, then lets `waiting` name what the call waits on (see Idle).
template <class Waiting>
void Engine::idle_pass(Idle& idle, std::unique_lock<std::mutex>& lk, uint64_t epoch, const Signature& sig,
                       const char* what, Waiting&& waiting) {
    if (!idle_wait(idle, lk, what)) return;
    std::vector<Channel*> data, credit;
    const bool debug = debug_stall(idle);
    std::string state;
    waiting(data, credit, debug ? &state : nullptr);
    on_stall(idle, data, credit, debug, state, epoch, sig, what);
}

}  // namespace coyote::detail::coll
