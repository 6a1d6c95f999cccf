// coyote-mpi: queue-pair wiring over MPI (one cThread per peer, one collective exchange).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>
#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>

namespace coyote::mpi {

/// Which peers a rank connects to.
enum class PeerPattern {
    all,                ///< every other rank
    ring,               ///< rank - 1 and rank + 1 (mod N)
    recursive_doubling, ///< rank XOR 2^k for 2^k < N (partners >= N skipped)
    binomial,           ///< same neighbours as recursive doubling (rank XOR 2^k)
    explicit_list       ///< WiringOptions::peers (must be symmetric)
};

/// "all", "ring", "recursive_doubling", "binomial", "explicit".
const char* pattern_name(PeerPattern p) noexcept;

/// The sorted, duplicate-free peers of `rank` among `size` ranks under `pattern` (`explicit_peers` for
/// explicit_list). Throws Errc::invalid_argument on out-of-range or self peers.
std::vector<int> peers_for(PeerPattern pattern, int rank, int size, const std::vector<int>& explicit_peers = {});

/// Throws Errc::resource_exhausted when `queue_pairs` exceeds the N_CTID_MAX ctids of one vFPGA, saying how many
/// were asked for and what ring / recursive doubling would need for `ranks` ranks.
void check_ctid_budget(std::size_t queue_pairs, PeerPattern pattern, int ranks, int rank);

/// Options of a QpSet.
struct WiringOptions {
    uint64_t buffer_size = 1 << 20; ///< registered buffer per queue pair (getMem HPF, remote = true)
    PeerPattern pattern = PeerPattern::all;
    std::vector<int> peers;         ///< for explicit_list
    uint32_t port = 18488;          ///< written into the connection context (DEF_PORT)
    BootstrapOptions bootstrap = BootstrapOptions::from_env();
    /// Called after each connectQp (peer rank, its cThread); e.g. to inspect the context registers.
    std::function<void(int, cThread&)> on_connected;
};

/// One connection of a QpSet.
struct QpConnection {
    int peer = -1;
    std::unique_ptr<cThread> thread;
    void* buffer = nullptr;
    uint64_t size = 0;
    std::vector<std::byte> local_blob;  ///< what this side published (exportQp)
    std::vector<std::byte> remote_blob; ///< what the peer published
};

/// Queue pairs to a set of peers, each on its own cThread (own ctid and registered buffer), wired with one
/// MPI_Ialltoall of fixed-size slots. Construction is collective over `comm` and bounded by the bootstrap
/// deadline; a local failure on any rank makes every rank throw (the failing rank its own error).
class QpSet {
public:
    QpSet(const Communicator& comm, const DeviceAssignment& device, WiringOptions options);
    QpSet(QpSet&&) noexcept;
    QpSet& operator=(QpSet&&) noexcept;
    ~QpSet();

    /// Peers in ascending order.
    const std::vector<int>& peers() const noexcept { return peers_; }
    bool has_peer(int peer) const noexcept;
    /// The connection to `peer`; throws Errc::invalid_argument if there is none.
    QpConnection& connection(int peer);
    const QpConnection& connection(int peer) const;
    cThread& thread(int peer) { return *connection(peer).thread; }
    void* buffer(int peer) { return connection(peer).buffer; }
    uint64_t buffer_size() const noexcept { return buffer_size_; }
    /// Bytes of each slot of the exchange (header + largest blob).
    std::size_t slot_bytes() const noexcept { return slot_bytes_; }

private:
    std::vector<int> peers_;
    std::map<int, QpConnection> conns_;
    uint64_t buffer_size_ = 0;
    std::size_t slot_bytes_ = 0;
};

}  // namespace coyote::mpi
