// coyote-mpi collectives: MPI-style collective operations and tagged point-to-point messages over FPGA RDMA
// (queue pairs of a QpSet, payloads moved by REMOTE_RDMA_WRITE between registered buffers).
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <coyote/mpi/collectives_types.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>

namespace coyote::detail::coll {
class Engine;
class ReduceOffload;
struct OpState;
struct CallArgs;
enum class CollKind : uint32_t;
}  // namespace coyote::detail::coll

namespace coyote::mpi {

/// Which peers get a queue pair at construction. Point-to-point messages reach every rank either way: the first
/// message between two ranks without one opens a queue pair on demand (see Collectives::send).
enum class PeerSet {
    log, ///< rank +- 2^k (mod N): at most 2 ceil(log2 N) queue pairs; every algorithm's partners (default)
    all  ///< every other rank (N - 1 queue pairs; enables pairwise alltoall for more than 8 ranks)
};

/// Tuning and limits of a Collectives object. Every rank must pass the same values (checked).
struct CollectiveOptions {
    uint64_t buffer_size = 4ull << 20;  ///< registered buffer per queue pair (COYOTE_COLL_BUFFER_SIZE)
    uint64_t chunk_bytes = 128u << 10;  ///< pipeline chunk / message payload limit (COYOTE_COLL_CHUNK)
    /// allreduce: recursive doubling up to this many bytes (COYOTE_COLL_ALLREDUCE_SMALL), Rabenseifner
    /// (recursive-halving reduce-scatter + recursive-doubling allgather) up to allreduce_large, ring
    /// reduce-scatter + allgather above
    uint64_t allreduce_small = 8u << 10;
    /// allreduce: Rabenseifner up to this many bytes, ring above (COYOTE_COLL_ALLREDUCE_LARGE; at most
    /// allreduce_small: no Rabenseifner; two ranks always take the ring, which makes the same exchanges)
    uint64_t allreduce_large = 32u << 10;
    /// reduce_scatter: recursive halving up to this many bytes of the whole (size() * count) vector, ring above
    /// (COYOTE_COLL_REDUCE_SCATTER_SMALL; two ranks always take the ring's single exchange)
    uint64_t reduce_scatter_small = 16u << 10;
    /// broadcast / reduce: binomial tree up to this many bytes, pipelined chain above (COYOTE_COLL_TREE_SMALL)
    uint64_t tree_small = 64u << 10;
    /// alltoall with every peer connected: Bruck up to this many bytes per block, pairwise above
    /// (COYOTE_COLL_ALLTOALL_SMALL)
    uint64_t alltoall_small = 256;
    /// allgather: Bruck up to this many bytes per block, ring above (COYOTE_COLL_ALLGATHER_SMALL)
    uint64_t allgather_small = 1024;
    /// Copy streams (allgather, alltoall, broadcast chain, allreduce ring's second half) of at least this many
    /// bytes go straight from the sender's buffer into the receiver's (one copy; the receiver exposes the range
    /// as a queue-pair window); 0 keeps every stream in the registered buffers (COYOTE_COLL_DIRECT_MIN, a
    /// number or `auto`). direct_auto: 16 KiB when every rank has a core of its own, 64 KiB + 1 when any node
    /// runs more ranks than it has cores (the ready-to-receive round trip then costs context switches);
    /// options() reports the value chosen.
    uint64_t direct_min = direct_auto;
    static constexpr uint64_t direct_auto = ~0ull;
    PeerSet peers = PeerSet::log;       ///< COYOTE_COLL_PEERS=log|all
    /// Deadline of every wait for a peer (no progress for this long fails the call with Errc::timeout)
    /// (COYOTE_COLL_TIMEOUT_MS; default: the bootstrap deadline, COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS).
    std::chrono::milliseconds timeout{120000};
    /// A stalled wait checks that the peers it waits for are alive this often.
    std::chrono::milliseconds probe_interval{20};
    /// Run the local reduction step on the vFPGA's user logic instead of the CPU (COYOTE_COLL_OFFLOAD=1); needs
    /// the sim `reduce` model (COYOTE_SIM_MODEL=reduce) or user logic with its register contract. Types the user
    /// logic does not implement (float16, bfloat16 with the sim model) are reduced on the CPU.
    bool offload_reductions = false;
    /// Defaults overridden by the environment variables named above.
    static CollectiveOptions from_env();
};

/// Tag wildcard for recv / irecv.
inline constexpr int any_tag = -1;

/// Handle of a non-blocking operation. Move-only; a Request must complete (wait / test returning true) before
/// the Collectives object that made it is destroyed.
class Request {
public:
    Request() = default;
    Request(Request&&) noexcept = default;
    Request& operator=(Request&&) noexcept = default;
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;
    ~Request() = default;

    /// Progresses the operation without blocking; true when it completed. Throws the operation's error.
    bool test();
    /// Blocks until complete; throws the operation's error, or Errc::timeout after the collectives deadline
    /// without progress.
    void wait();
    /// Blocks at most `timeout`; true when complete.
    bool wait(std::chrono::milliseconds timeout);
    /// Received bytes of a completed irecv.
    uint64_t received_bytes() const noexcept;
    bool valid() const noexcept { return state_ != nullptr; }

private:
    friend class Collectives;
    Request(std::shared_ptr<::coyote::detail::coll::OpState> s, ::coyote::detail::coll::Engine* e) : state_(std::move(s)), engine_(e) {}
    std::shared_ptr<::coyote::detail::coll::OpState> state_;
    ::coyote::detail::coll::Engine* engine_ = nullptr;
};

/// Collective operations over FPGA RDMA, constructed collectively from a Communicator and this rank's device.
/// Semantics follow MPI: counts are elements; `send == MPI_IN_PLACE` selects the in-place variant where MPI has
/// one (`send == recv` too where the input has the receive buffer's layout: allreduce, reduce, reduce_scatter,
/// alltoall); other overlapping send and receive buffers are refused; every rank calls collectives in the same order with matching arguments
/// (mismatched kind, type, count, root or op is detected on arrival of a message of that call).
/// Not thread-safe: one thread issues calls (non-blocking collectives run on one internal progress thread).
/// An argument refused at the call (invalid_argument, before anything is sent) leaves the object usable; after any
/// other error, a mismatch between the ranks' calls included (also invalid_argument), it is unusable: every later
/// call throws, naming that error.
class Collectives {
public:
    /// Collective over `comm`: wires the queue pairs (QpSet) and checks that all ranks use the same options.
    Collectives(const Communicator& comm, const DeviceAssignment& device,
                CollectiveOptions options = CollectiveOptions::from_env());
    /// Collective: waits for the outstanding non-blocking collectives and for every rank to arrive (bounded).
    ~Collectives();
    Collectives(const Collectives&) = delete;
    Collectives& operator=(const Collectives&) = delete;

    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }
    /// Peers wired at construction (the collectives' partners).
    const std::vector<int>& peers() const noexcept;
    /// Peers reached through queue pairs opened on demand by point-to-point messages.
    std::vector<int> linked_peers() const;
    const CollectiveOptions& options() const noexcept { return options_; }
    /// Payload bytes per message (the pipeline chunk) and message slots per direction.
    uint32_t chunk_payload() const noexcept;
    uint32_t slots() const noexcept;
    /// Payload bytes this rank wrote straight into peers' buffers (direct placement, see direct_min).
    uint64_t direct_bytes() const noexcept;
    /// Payload bytes of copy streams through the registered buffers that this rank wrote from the caller's
    /// buffer straight into a peer's receive ring (chunks of at least 16 KiB skip the staging copy).
    uint64_t unstaged_bytes() const noexcept;
    /// Calls of this rank that ran eagerly: one message per exchange, without a schedule (small messages).
    uint64_t eager_calls() const noexcept;

    /// Dissemination barrier (ceil(log2 N) rounds of empty messages).
    void barrier();
    /// MPI_Bcast.
    void broadcast(void* buf, std::size_t count, Datatype type, int root);
    /// MPI_Reduce; `recv` is used on the root only.
    void reduce(const void* send, void* recv, std::size_t count, Datatype type, Op op, int root);
    /// MPI_Allreduce.
    void allreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op);
    /// MPI_Gather of `count` elements per rank; `recv` (size() * count) on the root only.
    void gather(const void* send, void* recv, std::size_t count, Datatype type, int root);
    /// MPI_Allgather of `count` elements per rank.
    void allgather(const void* send, void* recv, std::size_t count, Datatype type);
    /// MPI_Scatter of `count` elements per rank; `send` on the root only; root may pass recv = MPI_IN_PLACE.
    void scatter(const void* send, void* recv, std::size_t count, Datatype type, int root);
    /// MPI_Reduce_scatter_block: `send` has size() * count elements, `recv` gets this rank's `count`.
    void reduce_scatter(const void* send, void* recv, std::size_t count, Datatype type, Op op);
    /// MPI_Alltoall with `count` elements per block.
    void alltoall(const void* send, void* recv, std::size_t count, Datatype type);

    /// Tagged send to any other rank. Messages to one peer are matched in order; returns once the payload is
    /// handed to the RDMA engine (buffered up to the ring's capacity). To a rank outside peers() the first
    /// message (send or receive, either side) opens a queue pair over MPI: both ranks take part, which they do
    /// inside any call on this object (MPI is called from the constructing thread only).
    void send(const void* buf, std::size_t count, Datatype type, int peer, int tag);
    /// Tagged receive from `peer` (tag may be any_tag); returns the number of elements received (a message that
    /// is not a whole number of elements of `type` is an error).
    std::size_t recv(void* buf, std::size_t count, Datatype type, int peer, int tag);

    Request isend(const void* buf, std::size_t count, Datatype type, int peer, int tag);
    Request irecv(void* buf, std::size_t count, Datatype type, int peer, int tag);
    /// Non-blocking collectives (MPI_I*): the arguments of the blocking call, checked at the call; numbered at
    /// the call and run in call order on the object's progress thread (started on first use), overlapping the
    /// caller's blocking calls and point-to-point messages. The buffers must stay valid until the request
    /// completes.
    Request iallreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op);
    Request ibroadcast(void* buf, std::size_t count, Datatype type, int root);
    Request ibarrier();
    Request ireduce(const void* send, void* recv, std::size_t count, Datatype type, Op op, int root);
    Request igather(const void* send, void* recv, std::size_t count, Datatype type, int root);
    Request iallgather(const void* send, void* recv, std::size_t count, Datatype type);
    Request iscatter(const void* send, void* recv, std::size_t count, Datatype type, int root);
    Request ireduce_scatter(const void* send, void* recv, std::size_t count, Datatype type, Op op);
    Request ialltoall(const void* send, void* recv, std::size_t count, Datatype type);

    /// The algorithm the last blocking collective on this rank used (e.g. "ring", "recursive_doubling").
    const std::string& last_algorithm() const noexcept { return last_algorithm_; }

    // ---- typed conveniences ----
    template <typename T>
    void allreduce(std::span<const T> send, std::span<T> recv, Op op) {
        check_spans(send.size(), recv.size(), "allreduce");
        allreduce(send.data(), recv.data(), recv.size(), datatype_of<std::remove_cv_t<T>>(), op);
    }
    template <typename T>
    void allreduce(std::span<T> inout, Op op) {
        allreduce(MPI_IN_PLACE, inout.data(), inout.size(), datatype_of<std::remove_cv_t<T>>(), op);
    }
    template <typename T>
    void broadcast(std::span<T> buf, int root) {
        broadcast(buf.data(), buf.size(), datatype_of<std::remove_cv_t<T>>(), root);
    }
    /// `recv` matters at the root only (elsewhere it may be empty); there it must be as long as `send`.
    template <typename T>
    void reduce(std::span<const T> send, std::span<T> recv, Op op, int root) {
        if (root == rank_) check_spans(send.size(), recv.size(), "reduce");
        reduce(send.data(), recv.data(), send.size(), datatype_of<std::remove_cv_t<T>>(), op, root);
    }
    template <typename T>
    void allgather(std::span<const T> send, std::span<T> recv) {
        check_spans(send.size() * static_cast<std::size_t>(size_), recv.size(), "allgather");
        allgather(send.data(), recv.data(), send.size(), datatype_of<std::remove_cv_t<T>>());
    }
    template <typename T>
    void alltoall(std::span<const T> send, std::span<T> recv) {
        check_spans(send.size(), recv.size(), "alltoall");
        check_blocks(recv.size(), "alltoall");
        alltoall(send.data(), recv.data(), recv.size() / static_cast<std::size_t>(size_),
                 datatype_of<std::remove_cv_t<T>>());
    }
    template <typename T>
    void send(std::span<const T> buf, int peer, int tag) {
        send(buf.data(), buf.size(), datatype_of<std::remove_cv_t<T>>(), peer, tag);
    }
    template <typename T>
    std::size_t recv(std::span<T> buf, int peer, int tag) {
        return recv(buf.data(), buf.size(), datatype_of<std::remove_cv_t<T>>(), peer, tag);
    }

private:
    Request post_send(const char* call, const void* buf, std::size_t count, Datatype type, int peer, int tag);
    Request post_recv(const char* call, void* buf, std::size_t count, Datatype type, int peer, int tag);
    static void check_spans(std::size_t a, std::size_t b, const char* call);
    /// Throws Errc::invalid_argument naming `call` unless `n` elements split into size() equal blocks.
    void check_blocks(std::size_t n, const char* call) const;
    template <typename Fn>
    auto guarded(const char* call, Fn&& fn);
    /// The checked arguments of data collective `kind` (MPI_IN_PLACE resolved); throws Errc::invalid_argument
    /// naming `call`. `op` matters for reductions, `root` for rooted collectives.
    ::coyote::detail::coll::CallArgs args_of(const char* call, ::coyote::detail::coll::CollKind kind, const void* send,
                                             void* recv, std::size_t count, Datatype type, Op op, int root) const;
    /// Runs collective `kind` in the calling thread and records the algorithm it chose.
    void run_blocking(::coyote::detail::coll::CollKind kind, const ::coyote::detail::coll::CallArgs& args);
    /// Queues collective `kind` on the progress thread and returns its request.
    Request start_async(const char* what, ::coyote::detail::coll::CollKind kind, const ::coyote::detail::coll::CallArgs& args);
    /// Checks the arguments of non-blocking collective `kind` (named `call`) and queues it.
    Request start_checked(const char* call, ::coyote::detail::coll::CollKind kind, const void* send, void* recv,
                          std::size_t count, Datatype type, Op op, int root);

    CollectiveOptions options_;
    int rank_ = 0;
    int size_ = 0;
    /// Declared before engine_: outlives the engine's progress thread.
    std::unique_ptr<::coyote::detail::coll::ReduceOffload> offload_;
    std::unique_ptr<::coyote::detail::coll::Engine> engine_;
    std::string last_algorithm_;
    const char* last_algorithm_src_ = nullptr; ///< the name last_algorithm_ holds (names are literals)
    void set_last_algorithm(const char* name);
};

}  // namespace coyote::mpi
