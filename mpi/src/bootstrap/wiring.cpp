#include <coyote/mpi/wiring.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "bootstrap/wiring_slots.hpp"
#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

namespace {

using detail::k_slot_magic;
using detail::SlotHeader;

/// One rank's report in a status agreement step.
struct Status {
    int32_t ok;
    uint32_t blob_size;
    int32_t code;      ///< the failing rank's Errc (0: not a coyote::Error)
    char message[492]; ///< its call and context
};

/// The code the other ranks throw for a rank's failure: the failing rank's own (a bad option there is
/// invalid_argument on every rank), else peer_gone.
Errc remote_code(const Status& s) {
    return s.code > 0 && s.code <= static_cast<int32_t>(Errc::mpi) ? static_cast<Errc>(s.code) : Errc::peer_gone;
}

int ceil_log2(int n) {
    int k = 0;
    while ((1 << k) < n) ++k;
    return k;
}

/// Shares every rank's status; throws on every rank if any rank failed (the failing rank its own error).
std::vector<Status> agree(const Communicator& comm, const Status& mine, const std::exception_ptr& local_error,
                          const std::string& step, const BootstrapOptions& options) {
    const auto bytes = allgather_bytes(comm, &mine, sizeof(Status), step, options);
    std::vector<Status> all(static_cast<std::size_t>(comm.size()));
    std::memcpy(all.data(), bytes.data(), bytes.size());
    if (local_error) std::rethrow_exception(local_error);
    for (int r = 0; r < comm.size(); ++r) {
        const Status& s = all[static_cast<std::size_t>(r)];
        if (s.ok == 0)
            throw_error(remote_code(s), "QpSet",
                        step + " failed on rank " + std::to_string(r) + ": " +
                            std::string(s.message, strnlen(s.message, sizeof(s.message))));
    }
    return all;
}

Status make_status(bool ok, uint32_t blob_size, const std::string& msg, int32_t code = 0) {
    Status s{};
    s.ok = ok ? 1 : 0;
    s.blob_size = blob_size;
    s.code = code;
    std::strncpy(s.message, msg.c_str(), sizeof(s.message) - 1);
    return s;
}

}  // namespace

const char* pattern_name(PeerPattern p) noexcept {
    switch (p) {
    case PeerPattern::all: return "all";
    case PeerPattern::ring: return "ring";
    case PeerPattern::recursive_doubling: return "recursive_doubling";
    case PeerPattern::binomial: return "binomial";
    case PeerPattern::explicit_list: return "explicit";
    }
    return "unknown";
}

std::vector<int> peers_for(PeerPattern pattern, int rank, int size, const std::vector<int>& explicit_peers) {
    if (size <= 0 || rank < 0 || rank >= size)
        throw_error(Errc::invalid_argument, "peers_for",
                    "rank " + std::to_string(rank) + " is not in a communicator of size " + std::to_string(size));
    std::vector<int> out;
    switch (pattern) {
    case PeerPattern::all:
        for (int r = 0; r < size; ++r)
            if (r != rank) out.push_back(r);
        break;
    case PeerPattern::ring:
        if (size > 1) {
            out.push_back((rank + 1) % size);
            out.push_back((rank + size - 1) % size);
        }
        break;
    case PeerPattern::recursive_doubling:
    case PeerPattern::binomial:
        for (int k = 1; k < size; k <<= 1)
            if ((rank ^ k) < size) out.push_back(rank ^ k);
        break;
    case PeerPattern::explicit_list:
        for (int p : explicit_peers) {
            if (p < 0 || p >= size || p == rank)
                throw_error(Errc::invalid_argument, "peers_for",
                            "explicit peer " + std::to_string(p) + " of rank " + std::to_string(rank) +
                                " is not another rank of a communicator of size " + std::to_string(size));
            out.push_back(p);
        }
        break;
    default:
        throw_error(Errc::invalid_argument, "peers_for",
                    "peer pattern " + std::to_string(static_cast<int>(pattern)) +
                        " is not a PeerPattern value (all, ring, recursive_doubling, binomial, explicit_list)");
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

void check_ctid_budget(std::size_t queue_pairs, PeerPattern pattern, int ranks, int rank) {
    if (queue_pairs <= static_cast<std::size_t>(N_CTID_MAX)) return;
    throw_error(Errc::resource_exhausted, "QpSet",
                std::to_string(queue_pairs) + " queue pairs requested on rank " + std::to_string(rank) + " (pattern " +
                    pattern_name(pattern) + ", " + std::to_string(ranks) + " ranks) but a vFPGA has " +
                    std::to_string(N_CTID_MAX) +
                    " ctids (one per queue pair); pattern ring needs 2, recursive_doubling/binomial need " +
                    std::to_string(ceil_log2(ranks)) + " (log2 N)");
}

QpSet::QpSet(QpSet&&) noexcept = default;
QpSet& QpSet::operator=(QpSet&&) noexcept = default;
QpSet::~QpSet() = default;

bool QpSet::has_peer(int peer) const noexcept { return conns_.count(peer) != 0; }

QpConnection& QpSet::connection(int peer) {
    auto it = conns_.find(peer);
    if (it == conns_.end())
        throw_error(Errc::invalid_argument, "QpSet::connection", "no queue pair to rank " + std::to_string(peer));
    return it->second;
}

const QpConnection& QpSet::connection(int peer) const { return const_cast<QpSet*>(this)->connection(peer); }

namespace {

/// One cThread with a registered buffer and its exported queue pair, for `peer` (the `index`-th of `total`).
QpConnection open_connection(int peer, const DeviceAssignment& device, const WiringOptions& options,
                             std::size_t index, std::size_t total, int ranks) {
    QpConnection c;
    c.peer = peer;
    try {
        c.thread = std::make_unique<cThread>(device.vfid, ::getpid(), device.device);
    } catch (const Error& e) {
        if (e.code() != make_error_code(Errc::resource_exhausted)) throw;
        throw_error(Errc::resource_exhausted, "QpSet",
                    "could not register ctid for queue pair " + std::to_string(index + 1) + " of " +
                        std::to_string(total) + " (peer rank " + std::to_string(peer) + ") on device " +
                        std::to_string(device.device) + ", vFPGA " + std::to_string(device.vfid) + ": all " +
                        std::to_string(N_CTID_MAX) +
                        " ctids are taken; use a pattern with fewer peers (ring: 2, recursive_doubling: " +
                        std::to_string(ceil_log2(ranks)) + ") [" + e.what() + "]");
    }
    c.buffer = c.thread->getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(options.buffer_size), true});
    c.size = options.buffer_size;
    c.local_blob = c.thread->exportQp();
    return c;
}

/// This rank's slots of the exchange: slot p holds the blob for rank p (empty where there is no queue pair).
std::vector<std::byte> pack_slots(const std::map<int, QpConnection>& conns, std::size_t slot_bytes, int me, int n) {
    std::vector<std::byte> send(slot_bytes * static_cast<std::size_t>(n));
    for (const auto& [p, c] : conns) {
        std::byte* slot = send.data() + slot_bytes * static_cast<std::size_t>(p);
        const SlotHeader h{k_slot_magic, static_cast<uint32_t>(c.local_blob.size()), me, p};
        std::memcpy(slot, &h, sizeof(h));
        std::memcpy(slot + sizeof(h), c.local_blob.data(), c.local_blob.size());
    }
    return send;
}

/// What a rank reports of its own failure: its text (call and context of a coyote::Error, else what()) and code.
struct Failure {
    std::string text;
    int32_t code = 0;
};

/// Runs `fn`; returns its exception (and `failure`) instead of throwing, so every rank reaches the next agreement.
template <typename Fn>
std::exception_ptr capture(Failure& failure, Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        const bool ours = e.code().category() == coyote_category();
        failure = {e.call() + ": " + e.context(), ours ? static_cast<int32_t>(e.code().value()) : 0};
        return std::current_exception();
    } catch (const std::exception& e) {
        failure = {e.what(), 0};
        return std::current_exception();
    }
    return nullptr;
}

}  // namespace

QpSet::QpSet(const Communicator& comm, const DeviceAssignment& device, WiringOptions options)
    : buffer_size_(options.buffer_size) {
    detail::require_valid(comm, "QpSet");
    const int me = comm.rank();
    const int n = comm.size();
    const auto& bo = options.bootstrap;

    // ---- 1. local set-up: one cThread + registered buffer per peer ------------------------------------
    Failure failure;
    uint32_t blob_size = 0;
    std::exception_ptr error = capture(failure, [&] {
        peers_ = peers_for(options.pattern, me, n, options.peers);
        if (options.buffer_size == 0 || options.buffer_size > UINT32_MAX)
            throw_error(Errc::invalid_argument, "QpSet",
                        "buffer size " + std::to_string(options.buffer_size) + " must be in 1..4294967295 bytes");
        check_ctid_budget(peers_.size(), options.pattern, n, me);
        for (int p : peers_) {
            QpConnection c = open_connection(p, device, options, conns_.size(), peers_.size(), n);
            if (blob_size != 0 && c.local_blob.size() != blob_size)
                throw_error(Errc::protocol, "QpSet", "exportQp blobs of one rank differ in size");
            blob_size = static_cast<uint32_t>(c.local_blob.size());
            conns_.emplace(p, std::move(c));
        }
    });
    const auto status =
        agree(comm, make_status(!error, blob_size, failure.text, failure.code), error, "queue pair set-up", bo);

    // ---- 2. one collective: every blob in a fixed-size slot ------------------------------------------
    uint32_t max_blob = 0;
    for (const auto& st : status) max_blob = std::max(max_blob, st.blob_size);
    if (max_blob > detail::k_max_slot_blob) // every rank sees the same statuses: all refuse together
        throw_error(Errc::protocol, "QpSet",
                    "a rank announced a queue pair blob of " + std::to_string(max_blob) + " bytes (at most " +
                        std::to_string(detail::k_max_slot_blob) + ")");
    slot_bytes_ = sizeof(SlotHeader) + max_blob;
    const auto recv = alltoall_bytes(comm, pack_slots(conns_, slot_bytes_, me, n), slot_bytes_,
                                     "queue pair exchange", bo);

    // ---- 3. validate and connect -----------------------------------------------------------------------
    error = capture(failure, [&] {
        for (int r = 0; r < n; ++r) {
            if (r == me) continue;
            const std::span<const std::byte> slot(recv.data() + slot_bytes_ * static_cast<std::size_t>(r), slot_bytes_);
            const auto blob = detail::slot_blob(slot, r, me, conns_.count(r) != 0);
            if (!blob) continue;
            auto& c = conns_.at(r);
            c.remote_blob.assign(blob->begin(), blob->end());
            c.thread->connectQp(c.remote_blob, options.port);
            if (options.on_connected) options.on_connected(r, *c.thread);
        }
    });
    // ---- 4. nobody issues RDMA before every peer is connected -----------------------------------------
    (void)agree(comm, make_status(!error, 0, failure.text, failure.code), error, "queue pair connect", bo);
}

namespace detail {

std::optional<std::span<const std::byte>> slot_blob(std::span<const std::byte> slot, int r, int me, bool wanted) {
    if (slot.size() < sizeof(SlotHeader))
        throw_error(Errc::protocol, "QpSet",
                    "slot from rank " + std::to_string(r) + " has " + std::to_string(slot.size()) +
                        " bytes, less than its header");
    SlotHeader h{};
    std::memcpy(&h, slot.data(), sizeof(h));
    const bool sent = h.magic == k_slot_magic && h.length > 0;
    if (sent && !wanted)
        throw_error(Errc::protocol, "QpSet",
                    "rank " + std::to_string(r) + " has a queue pair for rank " + std::to_string(me) + " but rank " +
                        std::to_string(me) + " does not list rank " + std::to_string(r) +
                        " (peer lists must be symmetric)");
    if (!wanted) return std::nullopt;
    if (!sent)
        throw_error(Errc::protocol, "QpSet",
                    "rank " + std::to_string(me) + " lists rank " + std::to_string(r) + " but rank " +
                        std::to_string(r) + " published no queue pair for it (peer lists must be symmetric)");
    if (h.src != r || h.dst != me || h.length > slot.size() - sizeof(SlotHeader))
        throw_error(Errc::protocol, "QpSet",
                    "malformed slot from rank " + std::to_string(r) + " (src " + std::to_string(h.src) + ", dst " +
                        std::to_string(h.dst) + ", length " + std::to_string(h.length) + ")");
    return slot.subspan(sizeof(SlotHeader), h.length);
}

}  // namespace detail

}  // namespace coyote::mpi
