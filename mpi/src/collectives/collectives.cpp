// coyote-mpi collectives: the public Collectives / Request API, options and argument checks.
#include <coyote/mpi/collectives.hpp>

#include <coyote/mpi/bootstrap.hpp>
#include "collectives/engine/engine.hpp"

#include <cerrno>
#include <exception>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>

namespace coyote::mpi {

using ::coyote::detail::coll::CallArgs;
using ::coyote::detail::coll::CollKind;
using ::coyote::detail::coll::Engine;

namespace {

uint64_t env_u64(const char* var, uint64_t def) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') return def;
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v, &end, 10);
    uint64_t mult = 1;
    if (end != nullptr && (*end == 'k' || *end == 'K')) mult = 1024, ++end;
    else if (end != nullptr && (*end == 'm' || *end == 'M')) mult = 1024 * 1024, ++end;
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
        throw_error(Errc::invalid_argument, "CollectiveOptions::from_env",
                    std::string(var) + "='" + v + "' is not a non-negative integer (optional suffix K or M)");
    return static_cast<uint64_t>(x) * mult;
}

/// What every rank must agree on.
struct Agreed {
    uint64_t buffer_size;
    uint64_t chunk_bytes;
    uint64_t allreduce_small;
    uint64_t allreduce_large;
    uint64_t reduce_scatter_small;
    uint64_t tree_small;
    uint64_t alltoall_small;
    uint64_t allgather_small;
    uint64_t direct_min;
    uint64_t peers;
    uint64_t offload;
    uint64_t valid;
};

/// One rank's contribution to the options agreement: the options, compared, and facts that are combined.
struct Contribution {
    Agreed agreed;
    uint64_t oversubscribed; ///< this rank's node runs more ranks than it has cores
};

constexpr uint64_t k_direct_dedicated = 16u << 10;     // direct_auto with a core per rank
// direct_auto when any node is oversubscribed: streams above 64 KiB (the ready-to-receive round trip costs a
// context switch; measured on 4 ranks / 2 cores: a 64 KiB flat broadcast 38-40 us through the ring vs 50-52 us
// direct, a 512 KiB alltoall 196-214 us direct vs 282-307 us through the ring)
constexpr uint64_t k_direct_oversubscribed = (64u << 10) + 1;

std::string validate(const CollectiveOptions& o) {
    if (o.chunk_bytes < 64 || o.chunk_bytes % 64 != 0)
        return "chunk_bytes " + std::to_string(o.chunk_bytes) + " must be a positive multiple of 64";
    if (o.chunk_bytes > MAX_TRANSFER_SIZE - ::coyote::detail::coll::k_header_bytes)
        return "chunk_bytes " + std::to_string(o.chunk_bytes) + " exceeds MAX_TRANSFER_SIZE minus the 64-byte header";
    const uint64_t need = ::coyote::detail::coll::k_control_bytes + 2 * 4 * (o.chunk_bytes + ::coyote::detail::coll::k_header_bytes);
    if (o.buffer_size < need || o.buffer_size > std::numeric_limits<uint32_t>::max())
        return "buffer_size " + std::to_string(o.buffer_size) + " must hold 4 message slots per direction (at least " +
               std::to_string(need) + " bytes for chunk_bytes " + std::to_string(o.chunk_bytes) +
               ") and be below 4 GiB";
    if (o.timeout.count() <= 0) return "timeout must be positive";
    if (o.probe_interval.count() <= 0) return "probe_interval must be positive";
    if (o.peers != PeerSet::log && o.peers != PeerSet::all) return "peers is not a PeerSet value";
    return {};
}

uint64_t mul_checked(uint64_t a, uint64_t b, const char* call) {
    if (b != 0 && a > std::numeric_limits<uint64_t>::max() / b)
        throw_error(Errc::invalid_argument, call, "element count " + std::to_string(a) + " overflows the byte size");
    return a * b;
}

}  // namespace

CollectiveOptions CollectiveOptions::from_env() {
    CollectiveOptions o;
    o.timeout = BootstrapOptions::from_env().timeout;
    o.buffer_size = env_u64("COYOTE_COLL_BUFFER_SIZE", o.buffer_size);
    o.chunk_bytes = env_u64("COYOTE_COLL_CHUNK", o.chunk_bytes);
    o.allreduce_small = env_u64("COYOTE_COLL_ALLREDUCE_SMALL", o.allreduce_small);
    o.allreduce_large = env_u64("COYOTE_COLL_ALLREDUCE_LARGE", o.allreduce_large);
    o.reduce_scatter_small = env_u64("COYOTE_COLL_REDUCE_SCATTER_SMALL", o.reduce_scatter_small);
    o.tree_small = env_u64("COYOTE_COLL_TREE_SMALL", o.tree_small);
    o.alltoall_small = env_u64("COYOTE_COLL_ALLTOALL_SMALL", o.alltoall_small);
    o.allgather_small = env_u64("COYOTE_COLL_ALLGATHER_SMALL", o.allgather_small);
    if (const char* p = std::getenv("COYOTE_COLL_DIRECT_MIN"); p != nullptr && std::string(p) == "auto")
        o.direct_min = CollectiveOptions::direct_auto;
    else
        o.direct_min = env_u64("COYOTE_COLL_DIRECT_MIN", o.direct_min);
    o.timeout = std::chrono::milliseconds(env_u64("COYOTE_COLL_TIMEOUT_MS", static_cast<uint64_t>(o.timeout.count())));
    if (const char* p = std::getenv("COYOTE_COLL_OFFLOAD"); p != nullptr && *p != '\0') {
        const std::string v(p);
        if (v == "1")
            o.offload_reductions = true;
        else if (v == "0")
            o.offload_reductions = false;
        else
            throw_error(Errc::invalid_argument, "CollectiveOptions::from_env",
                        "COYOTE_COLL_OFFLOAD='" + v + "' (expected 0 or 1)");
    }
    if (const char* p = std::getenv("COYOTE_COLL_PEERS"); p != nullptr && *p != '\0') {
        const std::string v(p);
        if (v == "log")
            o.peers = PeerSet::log;
        else if (v == "all")
            o.peers = PeerSet::all;
        else
            throw_error(Errc::invalid_argument, "CollectiveOptions::from_env",
                        "COYOTE_COLL_PEERS='" + v + "' (expected log or all)");
    }
    return o;
}

// ---- Request --------------------------------------------------------------------------------------

bool Request::test() {
    if (!state_) throw_error(Errc::invalid_argument, "Request::test", "empty request");
    return engine_->test(*state_);
}

void Request::wait() {
    if (!state_) throw_error(Errc::invalid_argument, "Request::wait", "empty request");
    (void)engine_->wait(*state_, std::nullopt);
}

bool Request::wait(std::chrono::milliseconds timeout) {
    if (!state_) throw_error(Errc::invalid_argument, "Request::wait", "empty request");
    return engine_->wait(*state_, timeout);
}

uint64_t Request::received_bytes() const noexcept { return state_ ? state_->received : 0; }

// ---- Collectives ----------------------------------------------------------------------------------

Collectives::Collectives(const Communicator& comm, const DeviceAssignment& device, CollectiveOptions options)
    : options_(options), rank_(comm.rank()), size_(comm.size()) {
    auto boot = BootstrapOptions::from_env();
    boot.on_timeout = OnTimeout::throw_error;
    const std::string problem = validate(options);
    // The offload is checked before the agreement, so that every rank fails together when one cannot offload.
    std::exception_ptr offload_error;
    if (problem.empty() && options.offload_reductions) {
        try {
            offload_ = std::make_unique<::coyote::detail::coll::ReduceOffload>(device, options.timeout);
        } catch (...) {
            offload_error = std::current_exception();
        }
    }
    const Agreed mine{options.buffer_size, options.chunk_bytes, options.allreduce_small, options.allreduce_large,
                      options.reduce_scatter_small, options.tree_small,
                      options.alltoall_small, options.allgather_small, options.direct_min,
                      static_cast<uint64_t>(options.peers), options.offload_reductions ? 1u : 0u,
                      problem.empty() && !offload_error ? 1u : 0u};
    const unsigned cores = std::thread::hardware_concurrency();
    const Contribution contrib{mine, cores != 0 && static_cast<unsigned>(comm.local_size()) > cores ? 1u : 0u};
    const auto all = allgather_bytes(comm, &contrib, sizeof(Contribution), "collectives options", boot);
    if (!problem.empty()) throw_error(Errc::invalid_argument, "Collectives", problem);
    if (offload_error) std::rethrow_exception(offload_error);
    bool any_oversubscribed = false;
    for (int r = 0; r < size_; ++r) {
        Contribution c{};
        std::memcpy(&c, all.data() + static_cast<std::size_t>(r) * sizeof(Contribution), sizeof(Contribution));
        const Agreed& o = c.agreed;
        any_oversubscribed = any_oversubscribed || c.oversubscribed != 0;
        if (o.valid == 0)
            throw_error(Errc::invalid_argument, "Collectives",
                        "rank " + std::to_string(r) + " has invalid options (or cannot offload reductions)");
        if (std::memcmp(&o, &mine, sizeof(Agreed)) != 0)
            throw_error(Errc::invalid_argument, "Collectives",
                        "rank " + std::to_string(r) + " uses other options than rank " + std::to_string(rank_) +
                            " (buffer " + std::to_string(o.buffer_size) + " vs " + std::to_string(mine.buffer_size) +
                            ", chunk " + std::to_string(o.chunk_bytes) + " vs " + std::to_string(mine.chunk_bytes) +
                            ", thresholds, peer set or reduction offload); every rank must pass the same "
                            "CollectiveOptions");
    }
    if (options_.direct_min == CollectiveOptions::direct_auto)
        options_.direct_min = any_oversubscribed ? k_direct_oversubscribed : k_direct_dedicated;
    ::coyote::detail::coll::EngineConfig cfg;
    cfg.buffer_size = options.buffer_size;
    cfg.chunk_bytes = options.chunk_bytes;
    cfg.timeout = options.timeout;
    cfg.probe_interval = options.probe_interval;
    cfg.all_peers = options.peers == PeerSet::all;
    cfg.direct_min = options_.direct_min;
    cfg.oversubscribed = any_oversubscribed;
    engine_ = std::make_unique<Engine>(comm, device, cfg);
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

template <typename Fn>
auto Collectives::guarded(const char* call, Fn&& fn) {
    if (engine_->broken())
        throw_error(Errc::protocol, call, "this Collectives object failed earlier (a peer died or a deadline passed)");
    return fn();
}

namespace {

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

}  // namespace

void Collectives::barrier() {
    guarded("barrier", [&] {
        CallArgs a;
        set_last_algorithm(::coyote::detail::coll::run_collective(*engine_, CollKind::barrier, a, {}, engine_->next_epoch()));
    });
}

namespace {
::coyote::detail::coll::Thresholds thresholds(const CollectiveOptions& o) {
    ::coyote::detail::coll::Thresholds t;
    t.allreduce_small = o.allreduce_small;
    t.allreduce_large = o.allreduce_large;
    t.reduce_scatter_small = o.reduce_scatter_small;
    t.tree_small = o.tree_small;
    t.alltoall_small = o.alltoall_small;
    t.allgather_small = o.allgather_small;
    return t;
}
}  // namespace

void Collectives::broadcast(void* buf, std::size_t count, Datatype type, int root) {
    guarded("broadcast", [&] {
        check_op(Op::sum, type, "broadcast");
        check_root(root, size_, "broadcast");
        check_buf(buf, count, "the", "broadcast");
        (void)mul_checked(count, size_of(type), "broadcast");
        CallArgs a;
        a.recv = buf;
        a.count = count;
        a.type = type;
        a.root = root;
        run_blocking(CollKind::broadcast, a);
    });
}

void Collectives::reduce(const void* send, void* recv, std::size_t count, Datatype type, Op op, int root) {
    guarded("reduce", [&] {
        check_op(op, type, "reduce");
        check_root(root, size_, "reduce");
        (void)mul_checked(count, size_of(type), "reduce");
        const bool is_root = rank_ == root;
        const bool in_place = is_root && (send == MPI_IN_PLACE || send == recv);
        if (!is_root && send == MPI_IN_PLACE)
            throw_error(Errc::invalid_argument, "reduce", "MPI_IN_PLACE is allowed on the root only");
        if (!in_place) check_buf(send, count, "send", "reduce");
        if (is_root) check_buf(recv, count, "receive", "reduce");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = is_root ? recv : nullptr;
        a.count = count;
        a.type = type;
        a.op = op;
        a.offload = offload_.get();
        a.root = root;
        a.in_place = in_place;
        run_blocking(CollKind::reduce, a);
    });
}

void Collectives::allreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    guarded("allreduce", [&] {
        check_op(op, type, "allreduce");
        (void)mul_checked(count, size_of(type), "allreduce");
        const bool in_place = send == MPI_IN_PLACE || send == recv;
        if (!in_place) check_buf(send, count, "send", "allreduce");
        check_buf(recv, count, "receive", "allreduce");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = recv;
        a.count = count;
        a.type = type;
        a.op = op;
        a.offload = offload_.get();
        a.in_place = in_place;
        run_blocking(CollKind::allreduce, a);
    });
}

void Collectives::gather(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    guarded("gather", [&] {
        check_op(Op::sum, type, "gather");
        check_root(root, size_, "gather");
        const uint64_t bytes = mul_checked(count, size_of(type), "gather");
        (void)mul_checked(bytes, static_cast<uint64_t>(size_), "gather");
        const bool is_root = rank_ == root;
        const bool in_place = is_root && send == MPI_IN_PLACE;
        if (!is_root && send == MPI_IN_PLACE)
            throw_error(Errc::invalid_argument, "gather", "MPI_IN_PLACE is allowed on the root only");
        if (!in_place) check_buf(send, count, "send", "gather");
        if (is_root) check_buf(recv, count, "receive", "gather");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = is_root ? recv : nullptr;
        a.count = count;
        a.type = type;
        a.root = root;
        a.in_place = in_place;
        run_blocking(CollKind::gather, a);
    });
}

void Collectives::allgather(const void* send, void* recv, std::size_t count, Datatype type) {
    guarded("allgather", [&] {
        check_op(Op::sum, type, "allgather");
        const uint64_t bytes = mul_checked(count, size_of(type), "allgather");
        (void)mul_checked(bytes, static_cast<uint64_t>(size_), "allgather");
        const bool in_place = send == MPI_IN_PLACE;
        if (!in_place) check_buf(send, count, "send", "allgather");
        check_buf(recv, count, "receive", "allgather");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = recv;
        a.count = count;
        a.type = type;
        a.in_place = in_place;
        run_blocking(CollKind::allgather, a);
    });
}

void Collectives::scatter(const void* send, void* recv, std::size_t count, Datatype type, int root) {
    guarded("scatter", [&] {
        check_op(Op::sum, type, "scatter");
        check_root(root, size_, "scatter");
        const uint64_t bytes = mul_checked(count, size_of(type), "scatter");
        (void)mul_checked(bytes, static_cast<uint64_t>(size_), "scatter");
        const bool is_root = rank_ == root;
        const bool in_place = is_root && recv == MPI_IN_PLACE;
        if (!is_root && recv == MPI_IN_PLACE)
            throw_error(Errc::invalid_argument, "scatter", "MPI_IN_PLACE is allowed on the root only");
        if (is_root) check_buf(send, count, "send", "scatter");
        if (!in_place) check_buf(recv, count, "receive", "scatter");
        CallArgs a;
        a.send = is_root ? send : nullptr;
        a.recv = in_place ? nullptr : recv;
        a.count = count;
        a.type = type;
        a.root = root;
        a.in_place = in_place;
        run_blocking(CollKind::scatter, a);
    });
}

void Collectives::reduce_scatter(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    guarded("reduce_scatter", [&] {
        check_op(op, type, "reduce_scatter");
        const uint64_t bytes = mul_checked(count, size_of(type), "reduce_scatter");
        (void)mul_checked(bytes, static_cast<uint64_t>(size_), "reduce_scatter");
        const bool in_place = send == MPI_IN_PLACE || send == recv;
        if (!in_place) check_buf(send, count, "send", "reduce_scatter");
        check_buf(recv, count, "receive", "reduce_scatter");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = recv;
        a.count = count;
        a.type = type;
        a.op = op;
        a.offload = offload_.get();
        a.in_place = in_place;
        run_blocking(CollKind::reduce_scatter, a);
    });
}

void Collectives::alltoall(const void* send, void* recv, std::size_t count, Datatype type) {
    guarded("alltoall", [&] {
        check_op(Op::sum, type, "alltoall");
        const uint64_t bytes = mul_checked(count, size_of(type), "alltoall");
        (void)mul_checked(bytes, static_cast<uint64_t>(size_), "alltoall");
        const bool in_place = send == MPI_IN_PLACE || send == recv;
        if (!in_place) check_buf(send, count, "send", "alltoall");
        check_buf(recv, count, "receive", "alltoall");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = recv;
        a.count = count;
        a.type = type;
        a.in_place = in_place;
        run_blocking(CollKind::alltoall, a);
    });
}

Request Collectives::isend(const void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return guarded("isend", [&] {
        check_op(Op::sum, type, "isend");
        check_buf(buf, count, "send", "isend");
        if (tag < 0) throw_error(Errc::invalid_argument, "isend", "tag " + std::to_string(tag) + " is negative");
        const uint64_t bytes = mul_checked(count, size_of(type), "isend");
        return Request(engine_->post_send(buf, bytes, peer, tag), engine_.get());
    });
}

Request Collectives::irecv(void* buf, std::size_t count, Datatype type, int peer, int tag) {
    return guarded("irecv", [&] {
        check_op(Op::sum, type, "irecv");
        check_buf(buf, count, "receive", "irecv");
        if (tag < 0 && tag != any_tag)
            throw_error(Errc::invalid_argument, "irecv", "tag " + std::to_string(tag) + " is negative (and not any_tag)");
        const uint64_t bytes = mul_checked(count, size_of(type), "irecv");
        return Request(engine_->post_recv(buf, bytes, peer, tag), engine_.get());
    });
}

void Collectives::send(const void* buf, std::size_t count, Datatype type, int peer, int tag) {
    isend(buf, count, type, peer, tag).wait();
}

std::size_t Collectives::recv(void* buf, std::size_t count, Datatype type, int peer, int tag) {
    Request r = irecv(buf, count, type, peer, tag);
    r.wait();
    return static_cast<std::size_t>(r.received_bytes() / size_of(type));
}

Request Collectives::iallreduce(const void* send, void* recv, std::size_t count, Datatype type, Op op) {
    return guarded("iallreduce", [&] {
        check_op(op, type, "iallreduce");
        (void)mul_checked(count, size_of(type), "iallreduce");
        const bool in_place = send == MPI_IN_PLACE || send == recv;
        if (!in_place) check_buf(send, count, "send", "iallreduce");
        check_buf(recv, count, "receive", "iallreduce");
        CallArgs a;
        a.send = in_place ? nullptr : send;
        a.recv = recv;
        a.count = count;
        a.type = type;
        a.op = op;
        a.offload = offload_.get();
        a.in_place = in_place;
        return start_async("iallreduce", CollKind::allreduce, a);
    });
}

Request Collectives::ibroadcast(void* buf, std::size_t count, Datatype type, int root) {
    return guarded("ibroadcast", [&] {
        check_op(Op::sum, type, "ibroadcast");
        check_root(root, size_, "ibroadcast");
        check_buf(buf, count, "the", "ibroadcast");
        (void)mul_checked(count, size_of(type), "ibroadcast");
        CallArgs a;
        a.recv = buf;
        a.count = count;
        a.type = type;
        a.root = root;
        return start_async("ibroadcast", CollKind::broadcast, a);
    });
}

Request Collectives::start_async(const char* what, CollKind kind, const CallArgs& args) {
    auto op_state = std::make_shared<::coyote::detail::coll::OpState>();
    op_state->what = what;
    const uint64_t epoch = engine_->next_epoch();
    Engine* e = engine_.get();
    const auto th = thresholds(options_);
    engine_->submit(op_state, [e, a = args, th, epoch, kind, what] {
        // An earlier call (blocking or queued before this one) broke the object.
        if (e->broken())
            throw_error(Errc::protocol, what, "this Collectives object failed earlier (a peer died or a deadline passed)");
        (void)::coyote::detail::coll::run_collective(*e, kind, a, th, epoch);
    });
    return Request(op_state, e);
}

void Collectives::run_blocking(CollKind kind, const CallArgs& args) {
    set_last_algorithm(
        ::coyote::detail::coll::run_collective(*engine_, kind, args, thresholds(options_), engine_->next_epoch()));
}

void Collectives::set_last_algorithm(const char* name) {
    if (name == last_algorithm_src_) return; // the same literal: no string assignment per call
    last_algorithm_ = name;
    last_algorithm_src_ = name;
}

}  // namespace coyote::mpi
