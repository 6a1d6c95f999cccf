// coyote-mpi: the backend contract. One vFPGA device as cThread sees it; `sim` and `hw` implement it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <coyote/cDefs.hpp>
#include <coyote/cOps.hpp>
#include <coyote/error.hpp>

namespace coyote::detail {

/// Completion counter classes, in writeback-region order.
enum class CmplClass : uint32_t { local_read = 0, local_write = 1, rdma_read = 2, rdma_write = 3 };

/// The counter class that checkCompleted(oper) reads.
constexpr CmplClass cmpl_class_of(CoyoteOper oper) noexcept {
    switch (oper) {
    case CoyoteOper::LOCAL_READ: return CmplClass::local_read;
    case CoyoteOper::REMOTE_RDMA_READ: return CmplClass::rdma_read;
    case CoyoteOper::REMOTE_RDMA_WRITE:
    case CoyoteOper::REMOTE_RDMA_SEND: return CmplClass::rdma_write;
    default: return CmplClass::local_write; // LOCAL_WRITE, LOCAL_TRANSFER, syncs
    }
}

/// Coyote's name of an operation, for messages.
constexpr const char* oper_name(CoyoteOper oper) noexcept {
    switch (oper) {
    case CoyoteOper::NOOP: return "NOOP";
    case CoyoteOper::LOCAL_READ: return "LOCAL_READ";
    case CoyoteOper::LOCAL_WRITE: return "LOCAL_WRITE";
    case CoyoteOper::LOCAL_TRANSFER: return "LOCAL_TRANSFER";
    case CoyoteOper::LOCAL_OFFLOAD: return "LOCAL_OFFLOAD";
    case CoyoteOper::LOCAL_SYNC: return "LOCAL_SYNC";
    case CoyoteOper::REMOTE_RDMA_READ: return "REMOTE_RDMA_READ";
    case CoyoteOper::REMOTE_RDMA_WRITE: return "REMOTE_RDMA_WRITE";
    case CoyoteOper::REMOTE_RDMA_SEND: return "REMOTE_RDMA_SEND";
    case CoyoteOper::REMOTE_TCP_SEND: return "REMOTE_TCP_SEND";
    }
    return "unknown operation";
}

/// One side of a data movement command.
struct SgSide {
    uint64_t addr = 0; ///< virtual address (local ops) or absolute remote vaddr (RDMA destination)
    uint32_t len = 0;
    uint32_t stream = STRM_HOST;
    uint32_t dest = 0;
};

/// A command as cThread posts it. For RDMA, `src` is the local side (addr = local vaddr + local_offs)
/// and `dst` the remote side (addr = remote registered vaddr + remote_offs), as on hardware.
struct Command {
    CoyoteOper oper = CoyoteOper::NOOP;
    int32_t ctid = -1;
    bool last = true;
    SgSide src;
    SgSide dst;
};

/// Remote-access windows per ctid (cThread::k_max_windows).
inline constexpr uint32_t k_max_windows = 16;

/// Result of posting a command: back-pressure is a status, not an exception.
enum class PostStatus { ok, busy };

/// An allocation made by the backend for getMem.
struct Allocation {
    void* addr = nullptr;
    uint64_t size = 0;  ///< bytes actually reserved (rounded to the page size)
    CoyoteAllocType type = CoyoteAllocType::REG;
    bool remote = false;
};

/// Handler for user interrupts of one ctid; called on a dedicated thread.
using InterruptHandler = std::function<void(int)>;

/// A vFPGA device. Thread-safe: several cThreads of a process share one Device.
class Device {
public:
    virtual ~Device() = default;

    /// "sim" or "hw".
    virtual const char* backend_name() const noexcept = 0;
    virtual uint32_t device_id() const noexcept = 0;
    virtual int32_t vfid() const noexcept = 0;

    /// Packed shell word and control word (reference section 7).
    virtual uint64_t shell_word() const = 0;
    virtual uint64_t control_word() const = 0;

    /// Registers a ctid for `hpid`; throws resource_exhausted when all N_CTID_MAX are taken.
    virtual int32_t register_ctid(pid_t hpid) = 0;
    virtual void unregister_ctid(int32_t ctid) noexcept = 0;

    /// Allocates memory of `req.alloc` type and maps it for `ctid`. Remote buffers get an rkey.
    virtual Allocation alloc_mem(int32_t ctid, const CoyoteAlloc& req) = 0;
    /// Unmaps and releases an allocation made by alloc_mem.
    virtual void free_mem(int32_t ctid, const Allocation& a) noexcept = 0;
    /// Maps user memory into the TLB.
    virtual void map_user(int32_t ctid, void* vaddr, uint64_t len) = 0;
    /// Removes a TLB mapping made by map_user; throws not_mapped if unknown.
    virtual void unmap_user(int32_t ctid, void* vaddr) = 0;

    /// User control registers (word index).
    virtual void set_csr(uint64_t val, uint32_t offs) = 0;
    virtual uint64_t get_csr(uint32_t offs) const = 0;

    /// Writes configuration register `reg` (index in the shell's layout: AVX when en_avx, else legacy).
    /// AVX writes carry 4 words (one 256-bit store); legacy writes carry one word.
    virtual void write_cnfg(uint32_t reg, std::span<const uint64_t> words) = 0;
    virtual uint64_t read_cnfg(uint32_t reg) const = 0;

    /// Exposes [vaddr, vaddr + len) of this process as a remote-access window of `ctid`'s queue pair: the peer
    /// may RDMA WRITE / READ it by absolute address (with the registered buffer's rkey). At most k_max_windows
    /// per ctid; throws invalid_argument (null, empty, wrapping, overlapping, table full). Windows go away with
    /// the ctid. This default throws not_supported (backends without windows, e.g. hw).
    virtual void register_window(int32_t ctid, void* vaddr, uint64_t len) {
        (void)ctid;
        (void)vaddr;
        (void)len;
        throw_error(Errc::not_supported, "registerWindow",
                    std::string("remote-access windows are not supported by the ") + backend_name() + " backend");
    }
    /// Withdraws the window of `ctid` starting at `vaddr` (invalid_argument if there is none). A request the
    /// target accepted just before may still complete (as with RDMA memory deregistration).
    virtual void unregister_window(int32_t ctid, void* vaddr) {
        (void)ctid;
        (void)vaddr;
        throw_error(Errc::not_supported, "unregisterWindow",
                    std::string("remote-access windows are not supported by the ") + backend_name() + " backend");
    }

    /// Whether the peer's side of this backend checks an RDMA request's remote range against its registered buffer
    /// and windows (the sim's NIC does). Where it does not (hw: the FPGA's RDMA engine reaches whatever its TLB
    /// maps), cThread checks the range against the peer's buffer size before posting.
    virtual bool target_checks_rdma_bounds() const noexcept { return false; }

    /// Posts a LOCAL_* or REMOTE_RDMA_* command. Validates synchronously (throws on bad input);
    /// returns busy when CMD_FIFO_DEPTH - CMD_FIFO_THR commands of this ctid are in flight.
    /// REMOTE_RDMA_READ: the local range (src) must lie in the registered buffer or a window of the ctid.
    virtual PostStatus post(const Command& cmd) = 0;
    /// LOCAL_OFFLOAD (to_card) or LOCAL_SYNC; blocking.
    virtual void migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) = 0;

    /// Cumulative completions of `cls` for `ctid` since the last clear.
    virtual uint32_t completed(int32_t ctid, CmplClass cls) const = 0;
    virtual void clear_completed(int32_t ctid) = 0;
    /// Throws the first asynchronous error recorded for `ctid` (e.g. a remote rejection), then forgets it.
    virtual void raise_pending_error(int32_t ctid) = 0;
    /// raise_pending_error, then completed: what checkCompleted does, in one call (backends may fuse the checks).
    virtual uint32_t poll_completed(int32_t ctid, CmplClass cls) {
        raise_pending_error(ctid);
        return completed(ctid, cls);
    }

    /// Gives the backend the caller's count of polls of `ctid` left until its next slow-path check (the stall
    /// doctor's; nullptr: none). A backend whose polls may sleep sets it to 1 before a poll sleeps, so that a few
    /// sleeping polls, not thousands, stand between two checks. Cleared by unregister_ctid.
    virtual void set_poll_countdown(int32_t /*ctid*/, std::atomic<uint32_t>* /*countdown*/) noexcept {}

    /// Installs (or, with an empty handler, removes) the user-interrupt handler of `ctid`.
    virtual void set_interrupt_handler(int32_t ctid, InterruptHandler handler) = 0;

    /// Network identity.
    virtual uint32_t ip_address() const = 0;
    virtual uint64_t mac_address() const = 0;
    /// The rkey of `ctid`'s registered buffer (0 on hw, as stock Coyote).
    virtual uint32_t rkey(int32_t ctid) const = 0;
    /// Endpoint bytes the backend's wire needs after the 64-byte ibvQ (empty on hw).
    virtual std::vector<std::byte> local_endpoint(int32_t ctid) const = 0;
    /// Records the peer's endpoint bytes for `ctid` (before writeQpContext / doArpLookup).
    virtual void set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) = 0;
    /// Checks a peer's endpoint bytes without recording them; throws a coyote::Error naming what is wrong (the
    /// out-of-band server checks a client before it answers). Default: no endpoint bytes expected.
    virtual void check_remote_endpoint(std::span<const std::byte> endpoint) const {
        if (!endpoint.empty())
            throw_error(Errc::protocol, "check_remote_endpoint",
                        std::to_string(endpoint.size()) + " endpoint bytes where this backend expects none");
    }

    /// Status counters as printDebug prints them.
    virtual std::string debug_string(int32_t ctid) const = 0;
};

/// Opens (or returns the process's shared handle to) vFPGA `vfid` of `device`.
/// Backend: COYOTE_BACKEND=sim|hw, else hw when the host has a Coyote device file (/dev/coyote_fpga_*), else sim.
std::shared_ptr<Device> open_device(uint32_t device, int32_t vfid);
/// The Device of (device, vfid) if this process has it open, else null (never opens one).
std::shared_ptr<Device> find_open_device(uint32_t device, int32_t vfid);

/// The device file of vFPGA `vfid` of `device`: /dev/coyote_fpga_<device>_v<vfid>.
std::string device_file(uint32_t device, int32_t vfid);

/// The backend open_device would pick for (device, vfid): "sim" or "hw".
std::string selected_backend(uint32_t device, int32_t vfid);
/// selected_backend with the device files looked up in `dev_dir` instead of /dev (for tests).
std::string choose_backend(const std::string& dev_dir, uint32_t device, int32_t vfid);

namespace sim {
std::shared_ptr<Device> open(uint32_t device, int32_t vfid);
}
namespace hw {
std::shared_ptr<Device> open(uint32_t device, int32_t vfid);
}

}  // namespace coyote::detail
