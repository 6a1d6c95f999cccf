// coyote-mpi: peer liveness independent of the backend: pidfds for ranks on this host, one TCP connection per
// rank on another host (EOF or keepalive failure = gone). The hw NIC, like Coyote's, reports no remote failure.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

namespace coyote::mpi {

/// How a PeerLiveness is set up.
struct LivenessOptions {
    /// The host this rank claims to run on; empty: the real one (host name, boot id and pid namespace). Ranks
    /// that claim different hosts are watched through a connection even on one machine (tests), and may then
    /// announce a loopback listener.
    std::string host;
    /// Deadline for the set-up (connections to the ranks on other hosts).
    std::chrono::milliseconds setup_timeout{30000};
};

/// What a rank tells the others at set-up (trivially copyable: exchanged as bytes).
struct LivenessRecord {
    std::array<char, 128> host{}; ///< host key (see LivenessOptions::host)
    int32_t pid = 0;
    uint32_t addr = 0;            ///< IPv4 address (host order) of its listener; 0: not reachable from other hosts
    uint64_t start_time = 0;      ///< /proc/<pid>/stat start time (tells a reused pid apart)
    uint64_t key = 0;             ///< random: a connection to its listener must present it
    uint16_t port = 0;            ///< 0: no listener
    uint16_t reserved[3]{};
};

/// Watches every other rank of a communicator. Nothing runs in the background and nothing touches the data path:
/// callers ask with check() (rate-limited to COYOTE_MPI_LIVENESS_PERIOD_MS) or poll(). A rank on this host is
/// watched through a pidfd (its exit, SIGKILL included); a rank on another host through one TCP connection whose
/// EOF, reset or keepalive failure (about 6 s after its host went silent) means it is gone. The listener binds
/// COYOTE_MPI_LIVENESS_ADDR, else COYOTE_SIM_WIRE_ADDR, else loopback; it opens only when some rank runs on
/// another host, and a rank listening on loopback only is not watched from other hosts.
class PeerLiveness {
public:
    /// Collective over `comm` (two MPI_Allgather calls; connections only to ranks on other hosts).
    explicit PeerLiveness(MPI_Comm comm, const LivenessOptions& options = {});
    /// Without MPI: `allgather(mine)` returns every rank's record in rank order (called once or twice, the same
    /// number of times on every rank).
    using Allgather = std::function<std::vector<LivenessRecord>(const LivenessRecord&)>;
    PeerLiveness(int rank, int size, const Allgather& allgather, const LivenessOptions& options = {});
    ~PeerLiveness();
    PeerLiveness(PeerLiveness&&) noexcept;
    PeerLiveness& operator=(PeerLiveness&&) noexcept;
    PeerLiveness(const PeerLiveness&) = delete;
    PeerLiveness& operator=(const PeerLiveness&) = delete;

    /// How a rank is watched.
    enum class Method { self, process, connection, none };
    Method method(int rank) const;

    /// Looks (at most once per period; otherwise returns at once) and returns a rank found gone, else -1.
    int check();
    /// Looks now, waiting up to `timeout` for a change; returns a rank found gone, else -1.
    int poll(std::chrono::milliseconds timeout);
    /// True once `rank` was found gone (by check or poll).
    bool gone(int rank) const;
    /// Why `rank` is gone, e.g. "its process 1234 on this host exited".
    std::string reason(int rank) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace coyote::mpi
