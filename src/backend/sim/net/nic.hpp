// coyote-mpi sim backend: the contract between the sim vFPGA (SimDevice) and its emulated RoCE NIC.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/device.hpp"

namespace coyote::detail::sim {

struct SharedState;
namespace net {
struct PullLine;
}

/// What the NIC needs from the vFPGA it belongs to.
class NicHost {
public:
    virtual ~NicHost() = default;
    virtual uint32_t device_id() const noexcept = 0;
    virtual int32_t vfid() const noexcept = 0;
    virtual bool avx_layout() const noexcept = 0;
    virtual uint32_t ip_address() const noexcept = 0;
    virtual uint64_t mac_address() const noexcept = 0;
    /// Shared state of this vFPGA (completion counters), and the shm name peers open it by.
    virtual SharedState& shared_state() noexcept = 0;
    virtual const std::string& shared_state_name() const noexcept = 0;
    /// Throws not_mapped unless [addr, addr+len) is mapped for the vFPGA (taking the page-fault path
    /// for unmapped process memory); `write` asks for write access.
    virtual void check_local_range(int32_t ctid, uint64_t addr, uint64_t len, bool write) = 0;
    /// Asks the host's worker thread to run Nic::housekeeping soon; never blocks (a packet's thread calls it).
    virtual void wake_housekeeping() noexcept = 0;
};

/// The emulated RoCE NIC of one sim vFPGA.
class Nic {
public:
    virtual ~Nic() = default;
    /// A write to RDMA_CTX / RDMA_CONN / NET_ARP (either layout). Returns false if `reg` is not a NIC register.
    virtual bool on_cnfg_write(uint32_t reg, std::span<const uint64_t> words) = 0;
    virtual uint64_t read_cnfg(uint32_t reg) const = 0;
    /// REMOTE_RDMA_* command for `cmd.ctid`.
    virtual PostStatus post(const Command& cmd) = 0;
    /// A registered (remote = true) buffer of `ctid`, living in shm segment `shm_name`.
    virtual void register_buffer(int32_t ctid, void* addr, uint64_t size, const std::string& shm_name) = 0;
    virtual void unregister_buffer(int32_t ctid, void* addr) noexcept = 0;
    /// A remote-access window of `ctid` (process memory the peer may access by absolute address).
    virtual void register_window(int32_t ctid, uint64_t vaddr, uint64_t len) = 0;
    /// Withdraws the window of `ctid` starting at `vaddr`; invalid_argument if there is none.
    virtual void unregister_window(int32_t ctid, uint64_t vaddr) = 0;
    virtual uint32_t rkey(int32_t ctid) const = 0;
    virtual std::vector<std::byte> local_endpoint(int32_t ctid) const = 0;
    virtual void set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) = 0;
    virtual void raise_pending_error(int32_t ctid) = 0;
    /// Set while an error of `ctid` waits for raise_pending_error (a lock-free hint for the polling path; the
    /// flag lives as long as the NIC). `ctid` must be in range.
    virtual const std::atomic<bool>& pending_flag(int32_t ctid) const noexcept = 0;
    virtual void on_ctid_unregistered(int32_t ctid) noexcept = 0;
    /// Set once the NIC has connections a polling thread can serve with progress() (a lock-free hint for the
    /// polling path; the flag lives as long as the NIC).
    virtual const std::atomic<bool>& progress_flag() const noexcept = 0;
    /// Manual progress from a thread polling the vFPGA: handles what arrived for this NIC without waiting for it
    /// (the TCP wire's frames; the shm wire's requests are applied by their sender, or by the target's poller when
    /// offered: pull()).
    virtual void progress() noexcept = 0;
    /// Non-zero while completions of WRITEs this NIC applied over the shm wire wait to be counted at their targets
    /// (a lock-free hint for the polling path; the flag lives as long as the NIC).
    virtual const std::atomic<uint64_t>& deferred_flag() const noexcept = 0;
    /// Counts those completions at their targets; every poll of the vFPGA runs it while deferred_flag is set, so a
    /// poll that returns has made every earlier WRITE of this NIC visible to its target's pollers.
    virtual void flush_deferred() noexcept = 0;
    /// The WRITEs same-host initiators offered to `ctid`'s pollers (net/pull_line.hpp; the line lives as long as
    /// the NIC). A poller of `ctid` calls pull() when net::pull_pending(pull_line(ctid)) holds, and stamps the
    /// line's polled_tick while it polls LOCAL_WRITE (initiators offer only to a target polling lately).
    virtual net::PullLine& pull_line(int32_t ctid) noexcept = 0;
    /// Set by every poll of `ctid` (checkCompleted, clearCompleted; the flag lives as long as the NIC): WRITEs posted
    /// without a poll between them form a burst, which the NIC does not offer to the target.
    virtual std::atomic<bool>& polled_flag(int32_t ctid) noexcept = 0;
    /// Copies the payloads offered to `ctid` into its registered buffer and counts their completions (both sides).
    virtual void pull(int32_t ctid) noexcept = 0;
    /// Whether a WRITE of `ctid` that the target took (an offer) is not yet copied and counted: its REMOTE_RDMA_WRITE
    /// completion then depends on the peer alone (a lock-free hint for a poller that waits long).
    virtual bool awaits_peer_copy(int32_t ctid) const noexcept = 0;
    virtual std::string debug_string(int32_t ctid) const = 0;
    /// Work kept off the data path, run by the host's worker thread when asked (NicHost::wake_housekeeping;
    /// `now`: coarse_now_ns()): re-reads the sniffer rendezvous when due, which may sleep.
    virtual void housekeeping(int64_t now) noexcept = 0;
    /// Why the peer of `ctid`'s queue pair can no longer send it anything ("peer process P (...) is gone: it
    /// exited"; on another host, where a process cannot be looked at, "... is unreachable: connection to ... lost:
    /// ..." once its TCP wire connection is lost), or "" while it lives or there is no queue pair.
    virtual std::string gone_peer(int32_t ctid) const noexcept = 0;
};

/// Creates the NIC of `host`.
std::unique_ptr<Nic> make_nic(NicHost& host);

}  // namespace coyote::detail::sim
