// coyote-mpi collectives: CollectiveOptions from the environment (COYOTE_COLL_*), their checks, and the agreement
// of every rank on them at construction.
#include "collectives/options.hpp"

#include "detail/settings.hpp"

#include <cstring>
#include <limits>

namespace coyote::mpi {

namespace {

namespace settings = ::coyote::detail::settings;
using Range = settings::ByteRange;

constexpr uint64_t k_any = std::numeric_limits<uint64_t>::max();
/// The smallest buffer any chunk size allows: the control area and 4 slots per direction of 64-byte chunks.
constexpr uint64_t k_min_buffer =
    ::coyote::detail::coll::k_control_bytes + 2 * 4 * (64 + ::coyote::detail::coll::k_header_bytes);

const settings::Bytes k_buffer_size{"COYOTE_COLL_BUFFER_SIZE", "collectives", CollectiveOptions{}.buffer_size,
                                    "registered buffer per queue pair: at least 4 message slots per direction, each "
                                    "COYOTE_COLL_CHUNK + 64 bytes, and below 4 GiB",
                                    Range{k_min_buffer, std::numeric_limits<uint32_t>::max()}};
const settings::Bytes k_chunk{"COYOTE_COLL_CHUNK", "collectives", CollectiveOptions{}.chunk_bytes,
                              "pipeline chunk / message payload limit (a multiple of 64)",
                              Range{64, MAX_TRANSFER_SIZE - ::coyote::detail::coll::k_header_bytes}};
const settings::Bytes k_allreduce_small{"COYOTE_COLL_ALLREDUCE_SMALL", "collectives",
                                        CollectiveOptions{}.allreduce_small,
                                        "allreduce: recursive doubling up to this many bytes", Range{0, k_any}};
const settings::Bytes k_allreduce_large{"COYOTE_COLL_ALLREDUCE_LARGE", "collectives",
                                        CollectiveOptions{}.allreduce_large,
                                        "allreduce: Rabenseifner up to this many bytes, ring above", Range{0, k_any}};
const settings::Bytes k_reduce_scatter_small{"COYOTE_COLL_REDUCE_SCATTER_SMALL", "collectives",
                                             CollectiveOptions{}.reduce_scatter_small,
                                             "reduce_scatter: recursive halving up to this many bytes of the whole "
                                             "vector, ring above",
                                             Range{0, k_any}};
const settings::Bytes k_tree_small{"COYOTE_COLL_TREE_SMALL", "collectives", CollectiveOptions{}.tree_small,
                                   "broadcast / reduce: binomial tree up to this many bytes, pipelined chain above",
                                   Range{0, k_any}};
const settings::Bytes k_alltoall_small{"COYOTE_COLL_ALLTOALL_SMALL", "collectives", CollectiveOptions{}.alltoall_small,
                                       "alltoall: Bruck up to this many bytes per block, pairwise above",
                                       Range{0, k_any}};
const settings::Bytes k_allgather_small{"COYOTE_COLL_ALLGATHER_SMALL", "collectives",
                                        CollectiveOptions{}.allgather_small,
                                        "allgather: Bruck up to this many bytes per block, ring above",
                                        Range{0, k_any}};
const settings::Bytes k_direct_min{"COYOTE_COLL_DIRECT_MIN", "collectives", CollectiveOptions{}.direct_min,
                                   "copy streams of at least this many bytes go straight into the receiver's buffer "
                                   "(0: never; auto: 16K, 64K + 1 on oversubscribed nodes)",
                                   Range{0, k_any, "auto", CollectiveOptions::direct_auto}};
const settings::Millis k_timeout{"COYOTE_COLL_TIMEOUT_MS", "collectives", CollectiveOptions{}.timeout,
                                 "deadline of every wait for a peer (unset: COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS)"};
const settings::Choice k_offload{"COYOTE_COLL_OFFLOAD", "collectives",
                                 CollectiveOptions{}.offload_reductions ? "1" : "0", {"0", "1"},
                                 "1: the local reduction step runs on the vFPGA's user logic (needs "
                                 "COYOTE_SIM_MODEL=reduce)"};
const settings::Choice k_peers{"COYOTE_COLL_PEERS", "collectives",
                               CollectiveOptions{}.peers == PeerSet::all ? "all" : "log", {"log", "all"},
                               "queue pairs: to ranks +- 2^k (log) or to every rank (all)"};

/// COYOTE_COLL_BUFFER_SIZE must hold 4 slots of COYOTE_COLL_CHUNK per direction, which must be a multiple of 64.
std::string env_options_problem() {
    const std::string problem = ::coyote::detail::coll::validate(CollectiveOptions::from_env());
    if (problem.empty()) return problem;
    auto shown = [](const settings::Bytes& b) {
        return b.name() + "=" + b.raw().value_or(std::to_string(b.get()) + " (default)");
    };
    return shown(k_chunk) + ", " + shown(k_buffer_size) + ": " + problem;
}
const settings::Consistency k_coll_consistent{"collectives", env_options_problem};

}  // namespace

CollectiveOptions CollectiveOptions::from_env() {
    CollectiveOptions o;
    o.timeout = BootstrapOptions::from_env().timeout;
    o.buffer_size = k_buffer_size.get();
    o.chunk_bytes = k_chunk.get();
    o.allreduce_small = k_allreduce_small.get();
    o.allreduce_large = k_allreduce_large.get();
    o.reduce_scatter_small = k_reduce_scatter_small.get();
    o.tree_small = k_tree_small.get();
    o.alltoall_small = k_alltoall_small.get();
    o.allgather_small = k_allgather_small.get();
    o.direct_min = k_direct_min.get();
    if (k_timeout.is_set()) o.timeout = k_timeout.get();
    o.offload_reductions = k_offload.get() == "1";
    o.peers = k_peers.get() == "all" ? PeerSet::all : PeerSet::log;
    return o;
}

}  // namespace coyote::mpi

namespace coyote::detail::coll {

namespace {

using mpi::CollectiveOptions;
using mpi::PeerSet;

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

Contribution contribution(const mpi::Communicator& comm, const CollectiveOptions& o, bool valid) {
    const Agreed mine{o.buffer_size, o.chunk_bytes, o.allreduce_small, o.allreduce_large, o.reduce_scatter_small,
                      o.tree_small, o.alltoall_small, o.allgather_small, o.direct_min,
                      static_cast<uint64_t>(o.peers), o.offload_reductions ? 1u : 0u, valid ? 1u : 0u};
    return Contribution{mine, comm.local_size() > comm.local_cores() ? 1u : 0u};
}

}  // namespace

std::string validate(const CollectiveOptions& o) {
    if (o.chunk_bytes < 64 || o.chunk_bytes % 64 != 0)
        return "chunk_bytes " + std::to_string(o.chunk_bytes) + " (COYOTE_COLL_CHUNK) must be a positive multiple of 64";
    if (o.chunk_bytes > MAX_TRANSFER_SIZE - k_header_bytes)
        return "chunk_bytes " + std::to_string(o.chunk_bytes) +
               " (COYOTE_COLL_CHUNK) exceeds MAX_TRANSFER_SIZE minus the 64-byte header";
    const uint64_t need = k_control_bytes + 2 * 4 * (o.chunk_bytes + k_header_bytes);
    if (o.buffer_size < need || o.buffer_size > std::numeric_limits<uint32_t>::max())
        return "buffer_size " + std::to_string(o.buffer_size) +
               " (COYOTE_COLL_BUFFER_SIZE) must hold 4 message slots per direction (at least " + std::to_string(need) +
               " bytes for chunk_bytes " + std::to_string(o.chunk_bytes) + ", COYOTE_COLL_CHUNK) and be below 4 GiB";
    // A year bounds the deadline arithmetic (steady_clock::now() + milliseconds::max() overflows).
    constexpr std::chrono::milliseconds k_year = std::chrono::hours(24 * 365);
    if (o.timeout.count() <= 0 || o.timeout > k_year)
        return "timeout " + std::to_string(o.timeout.count()) + " ms must be positive and at most a year";
    if (o.probe_interval.count() <= 0 || o.probe_interval > k_year)
        return "probe_interval " + std::to_string(o.probe_interval.count()) + " ms must be positive and at most a year";
    if (o.peers != PeerSet::log && o.peers != PeerSet::all) return "peers is not a PeerSet value";
    return {};
}

bool agree_options(const mpi::Communicator& comm, const CollectiveOptions& o, const std::string& problem,
                   const std::exception_ptr& offload_error, const mpi::BootstrapOptions& boot) {
    const Contribution contrib = contribution(comm, o, problem.empty() && !offload_error);
    const Agreed& mine = contrib.agreed;
    const auto all = mpi::allgather_bytes(comm, &contrib, sizeof(Contribution), "collectives options", boot);
    if (!problem.empty()) throw_error(Errc::invalid_argument, "Collectives", problem);
    if (offload_error) std::rethrow_exception(offload_error);
    bool any_oversubscribed = false;
    for (int r = 0; r < comm.size(); ++r) {
        Contribution c{};
        std::memcpy(&c, all.data() + static_cast<std::size_t>(r) * sizeof(Contribution), sizeof(Contribution));
        const Agreed& other = c.agreed;
        any_oversubscribed = any_oversubscribed || c.oversubscribed != 0;
        if (other.valid == 0)
            throw_error(Errc::invalid_argument, "Collectives",
                        "rank " + std::to_string(r) + " has invalid options (or cannot offload reductions)");
        if (std::memcmp(&other, &mine, sizeof(Agreed)) != 0)
            throw_error(Errc::invalid_argument, "Collectives",
                        "rank " + std::to_string(r) + " uses other options than rank " + std::to_string(comm.rank()) +
                            " (buffer " + std::to_string(other.buffer_size) + " vs " + std::to_string(mine.buffer_size) +
                            ", chunk " + std::to_string(other.chunk_bytes) + " vs " + std::to_string(mine.chunk_bytes) +
                            ", thresholds, peer set or reduction offload); every rank must pass the same "
                            "CollectiveOptions");
    }
    return any_oversubscribed;
}

uint64_t auto_direct_min(bool oversubscribed) noexcept {
    return oversubscribed ? k_direct_oversubscribed : k_direct_dedicated;
}

EngineConfig engine_config(const CollectiveOptions& o, bool oversubscribed) noexcept {
    return {.buffer_size = o.buffer_size,
            .chunk_bytes = o.chunk_bytes,
            .timeout = o.timeout,
            .probe_interval = o.probe_interval,
            .all_peers = o.peers == PeerSet::all,
            .direct_min = o.direct_min,
            .oversubscribed = oversubscribed};
}

Thresholds thresholds(const CollectiveOptions& o) noexcept {
    return {.allreduce_small = o.allreduce_small,
            .allreduce_large = o.allreduce_large,
            .reduce_scatter_small = o.reduce_scatter_small,
            .tree_small = o.tree_small,
            .alltoall_small = o.alltoall_small,
            .allgather_small = o.allgather_small};
}

}  // namespace coyote::detail::coll
