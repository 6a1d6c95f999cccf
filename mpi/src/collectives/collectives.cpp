// coyote-mpi collectives: the public Collectives / Request API and its argument checks (the options are read and
// agreed in options.cpp).
#include <coyote/mpi/collectives.hpp>

#include <coyote/mpi/bootstrap.hpp>
#include "collectives/engine/engine.hpp"
#include "collectives/options.hpp"

#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

using ::coyote::detail::coll::CallArgs;
using ::coyote::detail::coll::CollKind;
using ::coyote::detail::coll::Engine;

namespace {

/// Throws once MPI_Finalize has run: an MPI call then would abort the whole job instead of failing this one.
void check_mpi_live(const char* call) {
    if (detail::mpi_finalized())
        throw_error(Errc::mpi, call, "MPI was finalized (MPI_Finalize ran): collectives need MPI until they are destroyed");
}

/// The most bytes one buffer of a call may span: the 48-bit addresses of the RDMA wire (and more than a process's
/// address space); the chunk arithmetic of the schedules stays far from overflow below it.
constexpr uint64_t k_max_buffer_bytes = 1ull << 48;

/// a * b bytes, refused when the product overflows or exceeds k_max_buffer_bytes.
uint64_t mul_checked(uint64_t a, uint64_t b, const char* call) {
    if (b != 0 && a > std::numeric_limits<uint64_t>::max() / b)
        throw_error(Errc::invalid_argument, call, "element count " + std::to_string(a) + " overflows the byte size");
    if (a * b > k_max_buffer_bytes)
        throw_error(Errc::invalid_argument, call,
                    "element count " + std::to_string(a) + " makes a buffer of " + std::to_string(a * b) +
                        " bytes, more than any buffer can span (2^48 bytes)");
    return a * b;
}

/// Refuses send and receive buffers that overlap (MPI_IN_PLACE, or send == recv where that means in place, is the
/// way to share one): a schedule reads blocks of `send` after it wrote blocks of `recv`.
void check_disjoint(const void* send, uint64_t send_len, const void* recv, uint64_t recv_len, const char* call) {
    const auto s = reinterpret_cast<uintptr_t>(send), r = reinterpret_cast<uintptr_t>(recv);
    if (send_len == 0 || recv_len == 0 || s + send_len <= r || r + recv_len <= s) return;
    throw_error(Errc::invalid_argument, call,
                "the send buffer (" + std::to_string(send_len) + " bytes) and the receive buffer (" +
                    std::to_string(recv_len) + " bytes) overlap; pass MPI_IN_PLACE as the send buffer for an in-place "
                    "call (the receive buffer then holds this rank's input where the call's layout puts it)");
}

void check_root(int root, int size, const char* call) {
    if (root < 0 || root >= size)
        throw_error(Errc::invalid_argument, call,
                    "root " + std::to_string(root) + " is not a rank of the communicator (size " + std::to_string(size) + ")");
}

void check_buf(const void* p, uint64_t count, const char* what, const char* call) {
    if (count != 0 && (p == nullptr || p == MPI_IN_PLACE))
        throw_error(Errc::invalid_argument, call,
                    std::string(what) + " buffer is null (or MPI_IN_PLACE where not allowed) for " + std::to_string(count) +
                        " elements");
}

/// What the argument checks of a data collective depend on.
struct Shape {
    bool reduction;     ///< takes an op (and the reduction offload); the others check their type as for Op::sum
    bool rooted;        ///< has a root; the buffer opposite the in-place marker exists at the root only
    bool per_rank;      ///< the buffers hold size() blocks of count elements
    bool one_buffer;    ///< broadcast: one buffer ("the"), no in-place variant
    bool marker_recv;   ///< MPI_IN_PLACE is passed as the receive buffer (scatter), else as the send buffer
    bool same_in_place; ///< send == recv also selects the in-place variant (the same layout)
    bool send_blocks;   ///< the send buffer holds size() blocks of count elements (else one)
    bool recv_blocks;   ///< the receive buffer holds size() blocks
};

constexpr Shape shape_of(CollKind kind) noexcept {
    switch (kind) {
    case CollKind::broadcast: return {false, true, false, true, false, false, false, false};
    case CollKind::reduce: return {true, true, false, false, false, true, false, false};
    case CollKind::allreduce: return {true, false, false, false, false, true, false, false};
    case CollKind::gather: return {false, true, true, false, false, false, false, true};
    case CollKind::allgather: return {false, false, true, false, false, false, false, true};
    case CollKind::scatter: return {false, true, true, false, true, false, true, false};
    case CollKind::reduce_scatter: return {true, false, true, false, false, true, true, false};
    case CollKind::alltoall: return {false, false, true, false, false, true, true, true};
    case CollKind::barrier: break;
    }
    return {false, false, false, true, false, false, false, false};
}

}  // namespace

// ---- Request --------------------------------------------------------------------------------------

namespace {
/// A request that is done needs no engine (whose object may be gone): its result, or its error.
bool finished(const ::coyote::detail::coll::OpState& op) {
    if (!op.done.load(std::memory_order_acquire)) return false;
    if (op.error) std::rethrow_exception(op.error);
    return true;
}
} // namespace

bool Request::test() {
    if (!state_) throw_error(Errc::invalid_argument, "Request::test", "empty request");
    return finished(*state_) || engine_->test(*state_);
}

void Request::wait() {
    if (!state_) throw_error(Errc::invalid_argument, "Request::wait", "empty request");
    if (!finished(*state_)) (void)engine_->wait(*state_, std::nullopt);
}

bool Request::wait(std::chrono::milliseconds timeout) {
    if (!state_) throw_error(Errc::invalid_argument, "Request::wait", "empty request");
    return finished(*state_) || engine_->wait(*state_, timeout);
}

uint64_t Request::received_bytes() const noexcept { return state_ ? state_->received : 0; }

// ---- Collectives ----------------------------------------------------------------------------------

Collectives::Collectives(const Communicator& comm, const DeviceAssignment& device, CollectiveOptions options)
    : options_(options), rank_(comm.rank()), size_(comm.size()) {
    check_mpi_live("Collectives");
    mpi::detail::require_valid(comm, "Collectives");
    auto boot = BootstrapOptions::from_env();
    boot.on_timeout = OnTimeout::throw_error;
    const std::string problem = ::coyote::detail::coll::validate(options);
    // The offload is checked before the agreement, so that every rank fails together when one cannot offload.
    std::exception_ptr offload_error;
    if (problem.empty() && options.offload_reductions) {
        try {
            offload_ = std::make_unique<::coyote::detail::coll::ReduceOffload>(device, options.timeout);
        } catch (...) {
            offload_error = std::current_exception();
        }
    }
    const bool oversubscribed = ::coyote::detail::coll::agree_options(comm, options, problem, offload_error, boot);
    if (options_.direct_min == CollectiveOptions::direct_auto)
        options_.direct_min = ::coyote::detail::coll::auto_direct_min(oversubscribed);
    engine_ = std::make_unique<Engine>(comm, device, ::coyote::detail::coll::engine_config(options_, oversubscribed));
}

Collectives::~Collectives() = default;

const std::vector<int>& Collectives::peers() const noexcept { return engine_->peers(); }
std::vector<int> Collectives::linked_peers() const { return engine_->link_peers(); }
uint32_t Collectives::chunk_payload() const noexcept { return engine_->payload(); }
uint32_t Collectives::slots() const noexcept { return engine_->slots(); }
uint64_t Collectives::direct_bytes() const noexcept { return engine_->direct_bytes(); }
uint64_t Collectives::unstaged_bytes() const noexcept { return engine_->unstaged_bytes(); }
uint64_t Collectives::eager_calls() const noexcept { return engine_->eager_calls(); }

void Collectives::check_spans(std::size_t a, std::size_t b, const char* call) {
    if (a != b)
        throw_error(Errc::invalid_argument, call,
                    "span sizes differ (" + std::to_string(a) + " vs " + std::to_string(b) + " elements)");
}

namespace {

/// Runs `fn` (a call named `call`) unless an earlier call broke `e` (then throws naming that call's error); the
/// error of a call that breaks it is kept for the calls after.
template <typename Fn>
auto run_guarded(Engine& e, const char* call, Fn&& fn) {
    check_mpi_live(call);
    if (e.broken()) {
        const std::string why = e.failure();
        throw_error(Errc::protocol, call,
                    "this Collectives object failed earlier" +
                        (why.empty() ? std::string(" (a peer died, a deadline passed or the calls did not match)")
                                     : ": " + why));
    }
    try {
        return fn();
    } catch (const std::exception& ex) {
        if (e.broken()) e.note_failure(ex.what());
        throw;
    }
}

}  // namespace

void Collectives::check_blocks(std::size_t n, const char* call) const {
    if (n % static_cast<std::size_t>(size_) != 0)
        throw_error(Errc::invalid_argument, call,
                    std::to_string(n) + " elements do not split into " + std::to_string(size_) + " equal blocks");
}

template <typename Fn>
auto Collectives::guarded(const char* call, Fn&& fn) {
    return run_guarded(*engine_, call, std::forward<Fn>(fn));
}

void Collectives::barrier() {
    guarded("barrier", [&] {
        CallArgs a;
        set_last_algorithm(::coyote::detail::coll::run_collective(*engine_, CollKind::barrier, a, {}, engine_->next_epoch()));
    });
}

CallArgs Collectives::args_of(const char* call, CollKind kind, const void* send, void* recv, std::size_t count,
                              Datatype type, Op op, int root) const {
    const Shape s = shape_of(kind);
    check_op(s.reduction ? op : Op::sum, type, call);
    if (s.rooted) check_root(root, size_, call);
    CallArgs a;
    a.count = count;
    a.type = type;
    if (s.reduction) {
        a.op = op;
        a.offload = offload_.get();
    }
    if (s.rooted) a.root = root;
    if (s.one_buffer) {
        check_buf(recv, count, "the", call);
        (void)mul_checked(count, size_of(type), call);
        a.recv = recv;
        return a;
    }
    const uint64_t bytes = mul_checked(count, size_of(type), call);
    if (s.per_rank) (void)mul_checked(bytes, static_cast<uint64_t>(size_), call);
    const bool at_root = !s.rooted || rank_ == root;
    const void* marker = s.marker_recv ? recv : send;
    const bool in_place = at_root && (marker == MPI_IN_PLACE || (s.same_in_place && send == recv));
    if (!at_root && marker == MPI_IN_PLACE)
        throw_error(Errc::invalid_argument, call, "MPI_IN_PLACE is allowed on the root only");
    const bool send_used = s.marker_recv ? at_root : !in_place;
    const bool recv_used = s.marker_recv ? !in_place : at_root;
    if (send_used) check_buf(send, count, "send", call);
    if (recv_used) check_buf(recv, count, "receive", call);
    if (send_used && recv_used) {
        const uint64_t n = static_cast<uint64_t>(size_);
        check_disjoint(send, s.send_blocks ? bytes * n : bytes, recv, s.recv_blocks ? bytes * n : bytes, call);
    }
    a.send = send_used ? send : nullptr;
    a.recv = recv_used ? recv : nullptr;
    a.in_place = in_place;
    return a;
}

void Collectives::broadcast(void* buf, std::size_t count, Datatype type, int root) {
    guarded("broadcast", [&] {
        run_blocking(CollKind::broadcast,
                     args_of("broadcast", CollKind::broadcast, nullptr, buf, count, type, Op::sum, root));
    });
}

void Collectives::reduce(const void* send, void* recv, std::size_t count, Datatype type, Op op, int root) {
    guarded("reduce", [&] {
        run_blocking(CollKind::reduce, args_of("reduce", CollKind::reduce, send, recv, count, type, op, root));
    });
}

void Collectives::allreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    guarded("allreduce", [&] {
        run_blocking(CollKind::allreduce, args_of("allreduce", CollKind::allreduce, send, recv, count, type, op, -1));
    });
}

void Collectives::gather(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    guarded("gather", [&] {
        run_blocking(CollKind::gather, args_of("gather", CollKind::gather, send, recv, count, type, Op::sum, root));
    });
}

void Collectives::allgather(const void* send, void* recv, std::size_t count, Datatype type) {
    guarded("allgather", [&] {
        run_blocking(CollKind::allgather,
                     args_of("allgather", CollKind::allgather, send, recv, count, type, Op::sum, -1));
    });
}

void Collectives::scatter(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    guarded("scatter", [&] {
        run_blocking(CollKind::scatter, args_of("scatter", CollKind::scatter, send, recv, count, type, Op::sum, root));
    });
}

void Collectives::reduce_scatter(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    guarded("reduce_scatter", [&] {
        run_blocking(CollKind::reduce_scatter,
                     args_of("reduce_scatter", CollKind::reduce_scatter, send, recv, count, type, op, -1));
    });
}

void Collectives::alltoall(const void* send, void* recv, std::size_t count, Datatype type) {
    guarded("alltoall", [&] {
        run_blocking(CollKind::alltoall, args_of("alltoall", CollKind::alltoall, send, recv, count, type, Op::sum, -1));
    });
}

Request Collectives::post_send(const char* call, const void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return guarded(call, [&] {
        check_op(Op::sum, type, call);
        check_buf(buf, count, "send", call);
        if (tag < 0) throw_error(Errc::invalid_argument, call, "tag " + std::to_string(tag) + " is negative");
        const uint64_t bytes = mul_checked(count, size_of(type), call);
        return Request(engine_->post_send(buf, bytes, peer, tag), engine_.get());
    });
}

Request Collectives::post_recv(const char* call, void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return guarded(call, [&] {
        check_op(Op::sum, type, call);
        check_buf(buf, count, "receive", call);
        if (tag < 0 && tag != any_tag)
            throw_error(Errc::invalid_argument, call, "tag " + std::to_string(tag) + " is negative (and not any_tag)");
        const uint64_t bytes = mul_checked(count, size_of(type), call);
        return Request(engine_->post_recv(buf, bytes, peer, tag), engine_.get());
    });
}

Request Collectives::isend(const void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return post_send("isend", buf, count, type, peer, tag);
}

Request Collectives::irecv(void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return post_recv("irecv", buf, count, type, peer, tag);
}

void Collectives::send(const void* buf, std::size_t count, Datatype type, int peer, int tag) {
    post_send("send", buf, count, type, peer, tag).wait();
}

std::size_t Collectives::recv(void* buf, std::size_t count, Datatype type, int peer, int tag) {
    Request r = post_recv("recv", buf, count, type, peer, tag);
    r.wait();
    const uint64_t got = r.received_bytes(), elem = size_of(type);
    if (got % elem != 0)
        throw_error(Errc::invalid_argument, "recv",
                    "the message from rank " + std::to_string(peer) + " has " + std::to_string(got) +
                        " bytes, not a whole number of " + std::to_string(elem) + "-byte elements (it was sent "
                        "with another type; its bytes are in the buffer)");
    return static_cast<std::size_t>(got / elem);
}

Request Collectives::start_checked(const char* call, CollKind kind, const void* send, void* recv, std::size_t count,
                                   Datatype type, Op op, int root) {
    return guarded(call, [&] { return start_async(call, kind, args_of(call, kind, send, recv, count, type, op, root)); });
}

Request Collectives::iallreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    return start_checked("iallreduce", CollKind::allreduce, send, recv, count, type, op, -1);
}

Request Collectives::ibroadcast(void* buf, std::size_t count, Datatype type, int root) {
    return start_checked("ibroadcast", CollKind::broadcast, nullptr, buf, count, type, Op::sum, root);
}

Request Collectives::ibarrier() {
    return guarded("ibarrier", [&] { return start_async("ibarrier", CollKind::barrier, CallArgs{}); });
}

Request Collectives::ireduce(const void* send, void* recv, std::size_t count, Datatype type, Op op, int root) {
    return start_checked("ireduce", CollKind::reduce, send, recv, count, type, op, root);
}

Request Collectives::igather(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    return start_checked("igather", CollKind::gather, send, recv, count, type, Op::sum, root);
}

Request Collectives::iallgather(const void* send, void* recv, std::size_t count, Datatype type) {
    return start_checked("iallgather", CollKind::allgather, send, recv, count, type, Op::sum, -1);
}

Request Collectives::iscatter(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    return start_checked("iscatter", CollKind::scatter, send, recv, count, type, Op::sum, root);
}

Request Collectives::ireduce_scatter(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    return start_checked("ireduce_scatter", CollKind::reduce_scatter, send, recv, count, type, op, -1);
}

Request Collectives::ialltoall(const void* send, void* recv, std::size_t count, Datatype type) {
    return start_checked("ialltoall", CollKind::alltoall, send, recv, count, type, Op::sum, -1);
}

Request Collectives::start_async(const char* what, CollKind kind, const CallArgs& args) {
    auto op_state = std::make_shared<::coyote::detail::coll::OpState>();
    op_state->what = what;
    const uint64_t epoch = engine_->next_epoch();
    Engine* e = engine_.get();
    const auto th = ::coyote::detail::coll::thresholds(options_);
    engine_->submit(op_state, [e, a = args, th, epoch, kind, what] {
        // An earlier call (blocking or queued before this one) may have broken the object.
        run_guarded(*e, what, [&] { (void)::coyote::detail::coll::run_collective(*e, kind, a, th, epoch); });
    });
    return Request(op_state, e);
}

void Collectives::run_blocking(CollKind kind, const CallArgs& args) {
    set_last_algorithm(
        ::coyote::detail::coll::run_collective(*engine_, kind, args, ::coyote::detail::coll::thresholds(options_),
                                                             engine_->next_epoch()));
}

void Collectives::set_last_algorithm(const char* name) {
    if (name == last_algorithm_src_) return; // the same literal: no string assignment per call
    last_algorithm_ = name;
    last_algorithm_src_ = name;
}

}  // namespace coyote::mpi
