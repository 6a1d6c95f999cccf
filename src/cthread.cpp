#include <coyote/cThread.hpp>

#include <sched.h>


#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "backend/device.hpp"
#include "backend/registers.hpp"
#include "detail/format.hpp"
#include "diag/stall.hpp"
#include "diag/wait.hpp"
#include "detail/settings.hpp"
#include "detail/fork_generation.hpp"
#include "detail/vfpga_lock.hpp"
#include "oob/peer_check.hpp"

static_assert(coyote::cThread::k_max_windows == coyote::detail::k_max_windows,
              "cThread::k_max_windows must match the backend contract");
static_assert(sizeof(coyote::ibvQ) == 64, "ibvQ must be 64 bytes on the wire");
static_assert(offsetof(coyote::ibvQ, ip_addr) == 0 && offsetof(coyote::ibvQ, qpn) == 4 &&
                  offsetof(coyote::ibvQ, psn) == 8 && offsetof(coyote::ibvQ, rkey) == 12 &&
                  offsetof(coyote::ibvQ, vaddr) == 16 && offsetof(coyote::ibvQ, size) == 24 &&
                  offsetof(coyote::ibvQ, gid) == 28,
              "ibvQ field offsets must match Coyote");

namespace coyote {

namespace {

using detail::CmplClass;
using detail::Command;
using detail::PostStatus;
using detail::hex;
using detail::oper_name;
namespace settings = detail::settings;

const settings::Millis k_post_timeout{"COYOTE_POST_TIMEOUT_MS", "runtime", std::chrono::milliseconds(120000),
                                     "how long invoke waits while the command FIFO of a ctid stays full"};
const settings::Millis k_lock_timeout{"COYOTE_LOCK_TIMEOUT_MS", "runtime", std::chrono::milliseconds(300000),
                                     "how long cThread::lock() waits for the vFPGA lock"};

std::chrono::milliseconds post_timeout() {
    static const std::chrono::milliseconds t = k_post_timeout.get();
    return t;
}

uint32_t random_psn() {
    static thread_local std::mt19937 rng(std::random_device{}());
    return static_cast<uint32_t>(rng() & 0xFFFFFFu);
}

/// Throws unless `bytes` is a size initRDMA can register.
void check_rdma_buffer_size(uint64_t bytes) {
    if (bytes == 0 || bytes > UINT32_MAX)
        throw_error(Errc::invalid_argument, "initRDMA",
                    "buffer size " + std::to_string(bytes) + " must be in 1..4294967295 bytes");
}

/// checkCompleted of an operation without a completion counter (out of line: the poll stays a tail call).
[[noreturn, gnu::cold, gnu::noinline]] void throw_no_counter(CoyoteOper oper) {
    throw_error(Errc::invalid_argument, "checkCompleted",
                "operation " + std::to_string(static_cast<int>(oper)) + " (" + oper_name(oper) +
                    ") has no completion counter (LOCAL_READ, LOCAL_WRITE / LOCAL_TRANSFER, REMOTE_RDMA_READ, "
                    "REMOTE_RDMA_WRITE / REMOTE_RDMA_SEND have)");
}

constexpr uint64_t k_rdma_va_limit = 1ULL << 48; // RDMA requests carry 48-bit virtual addresses

/// Whether [remote, remote + len) fits the 48-bit virtual addresses of an RDMA request (a larger address would be cut
/// to its low 48 bits on the wire and land elsewhere in the peer's memory).
inline bool fits_rdma_address(uint64_t remote, uint64_t len) noexcept {
    return remote < k_rdma_va_limit && len <= k_rdma_va_limit - remote;
}

/// The error of a range that does not fit; `what` names the caller's input (built on failure only).
[[noreturn, gnu::cold, gnu::noinline]] void throw_rdma_address(const std::string& call, const std::string& what,
                                                               uint64_t remote, uint64_t len) {
    throw_error(Errc::invalid_argument, call,
                what + " + len " + std::to_string(len) + " (remote address " + hex(reinterpret_cast<void*>(remote)) +
                    ") does not fit the 48-bit virtual addresses RDMA requests carry");
}

/// Where the peer does not check (hw): [remote, remote + len) must lie in the peer's registered buffer, whose address
/// and size came with its queue pair (a WRITE past it landed in whatever else the peer had mapped).
void check_remote_range(const std::string& call, const ibvQ& peer, uint64_t remote, uint64_t len) {
    const auto base = reinterpret_cast<uint64_t>(peer.vaddr);
    if (remote >= base && remote - base <= peer.size && len <= peer.size - (remote - base)) return;
    throw_error(Errc::invalid_argument, call,
                "remote range " + hex(reinterpret_cast<void*>(remote)) + " + len " + std::to_string(len) +
                    " is not inside the peer's registered buffer (" + hex(peer.vaddr) + ", " +
                    std::to_string(peer.size) + " bytes); on this backend the peer's FPGA would not refuse it");
}

}  // namespace

class cThread::Impl {
public:
    uint32_t device = 0;
    /// The stall doctor's per-poll countdown, in the cache line of `dev` that every poll reads anyway.
    detail::diag::PollCountdown poll_countdown;
    std::shared_ptr<detail::Device> dev;
    mutable std::mutex mem_mtx;
    std::map<void*, detail::Allocation> allocations;
    uint64_t rdma_buffer_size = 0;
    uint32_t qp_port = DEF_PORT;
    std::unique_ptr<OobChannel> oob;
    std::unique_ptr<detail::VfpgaLock> vlock;
    /// Whether this cThread holds the vFPGA lock (per cThread, as Coyote's lock_acquired; atomic: a cThread shared by
    /// threads may see lock() and unlock() from several at once, and only one unlock may release the lock).
    std::atomic<bool> lock_held{false};
    /// The process that made this cThread: in a forked child it refuses every call and is never torn down (its
    /// device's threads stayed with the parent, and its segments, lock and ctid are the parent's).
    const detail::MadeIn made = detail::made_here();
    detail::diag::Watch watch; ///< the stall doctor (last: destroyed first)

    /// Throws in a forked child (see `made`).
    void check_process(const char* call) const {
        if (!made.here()) [[unlikely]]
            throw_inherited(call);
    }
    [[noreturn, gnu::cold, gnu::noinline]] void throw_inherited(const char* call) const {
        throw_error(Errc::invalid_argument, call,
                    "this cThread belongs to process " + std::to_string(made.pid) +
                        ", which this process was forked from: open a cThread of its own here");
    }

    void post(const Command& cmd) {
        auto deadline = std::chrono::steady_clock::time_point{};
        for (unsigned spins = 0;; ++spins) {
            if (dev->post(cmd) == PostStatus::ok) {
                // Only a command with `last` set bumps a completion counter: the others are not outstanding.
                if (cmd.last) {
                    watch.on_post(detail::cmpl_class_of(cmd.oper));
                    // A transfer is a read and a write: it bumps the LOCAL_READ counter too.
                    if (cmd.oper == CoyoteOper::LOCAL_TRANSFER) watch.on_post(detail::CmplClass::local_read);
                }
                if (spins >= 0xFF) watch.on_backpressure(true);
                return;
            }
            // Back-pressure: the command FIFO is full. Yield so that oversubscribed ranks progress.
            if (spins == 0) deadline = std::chrono::steady_clock::now() + post_timeout();
            if ((spins & 0xFF) == 0xFF) {
                watch.on_backpressure(false);
                dev->raise_pending_error(cmd.ctid);
                if (std::chrono::steady_clock::now() > deadline) {
                    watch.on_backpressure(true);
                    throw_error(Errc::timeout, std::string("invoke ") + oper_name(cmd.oper),
                                "command FIFO of ctid " + std::to_string(cmd.ctid) + " stayed full for " +
                                    std::to_string(post_timeout().count()) + " ms (COYOTE_POST_TIMEOUT_MS)");
                }
            }
            // The first retry comes at once: a backend that waits for room itself (the sim runs a queued command or
            // sleeps until a completion) usually has it now, and a yield under load gave the core away for a slice.
            if (spins > 0) ::sched_yield();
        }
    }
};

cThread::cThread(int32_t vfid_, pid_t hpid_, uint32_t device, std::function<void(int)> uisr)
    : vfid(vfid_), hpid(hpid_), impl(std::make_unique<Impl>()) {
    detail::settings::check_all_once();
    impl->device = device;
    impl->dev = detail::open_device(device, vfid_);
    fcnfg.parseCnfg(impl->dev->shell_word());
    fcnfg.parseCtrlReg(impl->dev->control_word());
    ctid = impl->dev->register_ctid(hpid_);
    try {
        if (uisr) impl->dev->set_interrupt_handler(ctid, std::move(uisr));
        if (fcnfg.en_rdma) {
            qpair = std::make_unique<ibvQp>();
            std::memset(static_cast<void*>(qpair.get()), 0, sizeof(ibvQp));
            ibvQ& q = qpair->local;
            q.ip_addr = impl->dev->ip_address();
            q.qpn = detail::make_qpn(vfid, ctid);
            q.psn = random_psn();
            q.rkey = 0;
            q.vaddr = nullptr;
            q.size = 0;
            detail::fill_gid(q, q.ip_addr);
        }
        impl->vlock = std::make_unique<detail::VfpgaLock>(device, vfid_);
        impl->dev->clear_completed(ctid);
        impl->watch.attach({impl->dev.get(), device, vfid_, ctid, qpair.get()}, impl->poll_countdown);
    } catch (...) {
        impl->dev->set_interrupt_handler(ctid, nullptr);
        impl->dev->unregister_ctid(ctid);
        throw;
    }
}

cThread::~cThread() {
    if (!impl->made.here()) {
        // A forked child's copy: tearing it down would wait for the parent's threads, and free the parent's
        // buffers, lock and ctid. It is left as it is (reachable from nowhere, like the rest of the parent's state).
        (void)impl.release();
        return;
    }
    closeConn();
    if (impl->lock_held.exchange(false)) {
        try {
            impl->vlock->unlock();
        } catch (...) {
        }
    }
    {
        std::lock_guard lk(impl->mem_mtx);
        for (auto& [addr, a] : impl->allocations) impl->dev->free_mem(ctid, a);
        impl->allocations.clear();
    }
    try {
        impl->dev->set_interrupt_handler(ctid, nullptr);
    } catch (...) {
    }
    impl->dev->unregister_ctid(ctid);
}

// ---- memory -------------------------------------------------------------------------------------

void cThread::userMap(void* vaddr, uint64_t len, int32_t /*mem_block*/) {
    impl->check_process("userMap");
    if (vaddr == nullptr) throw_error(Errc::invalid_argument, "userMap", "null address");
    if (len == 0) throw_error(Errc::invalid_argument, "userMap", "zero length at " + hex(vaddr));
    impl->dev->map_user(ctid, vaddr, len);
}

void cThread::userUnmap(void* vaddr) {
    impl->check_process("userUnmap");
    impl->dev->unmap_user(ctid, vaddr);
}

void* cThread::getMem(CoyoteAlloc&& alloc) {
    impl->check_process("getMem");
    if (alloc.size == 0) throw_error(Errc::invalid_argument, "getMem", "allocation size is 0");
    if (alloc.remote && !qpair)
        throw_error(Errc::not_supported, "getMem",
                    "remote buffer requested but RDMA is disabled in the shell configuration");
    detail::Allocation a = impl->dev->alloc_mem(ctid, alloc);
    {
        std::lock_guard lk(impl->mem_mtx);
        impl->allocations[a.addr] = a;
    }
    alloc.mem = a.addr;
    if (alloc.remote) {
        qpair->local.vaddr = a.addr;
        qpair->local.size = alloc.size;
        qpair->local.rkey = impl->dev->rkey(ctid);
        impl->rdma_buffer_size = alloc.size;
    }
    return a.addr;
}

void cThread::freeMem(void* vaddr) {
    impl->check_process("freeMem");
    if (vaddr == nullptr) return; // as Coyote's (whose getMem returns null where it cannot allocate), and free()
    detail::Allocation a;
    {
        std::lock_guard lk(impl->mem_mtx);
        auto it = impl->allocations.find(vaddr);
        if (it == impl->allocations.end())
            throw_error(Errc::not_mapped, "freeMem",
                        hex(vaddr) + " was not allocated by getMem of ctid " + std::to_string(ctid));
        a = it->second;
        impl->allocations.erase(it);
    }
    if (qpair && qpair->local.vaddr == vaddr) {
        qpair->local.vaddr = nullptr;
        qpair->local.size = 0;
        impl->rdma_buffer_size = 0;
    }
    impl->dev->free_mem(ctid, a);
}

// ---- registers ----------------------------------------------------------------------------------

void cThread::setCSR(uint64_t val, uint32_t offs) {
    impl->check_process("setCSR");
    impl->dev->set_csr(val, offs);
}

uint64_t cThread::getCSR(uint32_t offs) const {
    impl->check_process("getCSR");
    return impl->dev->get_csr(offs);
}

// ---- invoke -------------------------------------------------------------------------------------

void cThread::invoke(CoyoteOper oper, syncSg sg) {
    impl->check_process("invoke");
    if (!isLocalSync(oper))
        throw_error(Errc::invalid_argument, std::string("invoke ") + oper_name(oper),
                    "a syncSg takes LOCAL_OFFLOAD or LOCAL_SYNC");
    if (sg.len > MAX_TRANSFER_SIZE)
        throw_error(Errc::invalid_argument, std::string("invoke ") + oper_name(oper),
                    "length " + std::to_string(sg.len) + " exceeds MAX_TRANSFER_SIZE (" +
                        std::to_string(MAX_TRANSFER_SIZE) + ")");
    impl->dev->raise_pending_error(ctid);
    impl->dev->migrate(ctid, sg.addr, sg.len, oper == CoyoteOper::LOCAL_OFFLOAD);
}

void cThread::invoke(CoyoteOper oper, localSg sg, bool last) {
    impl->check_process("invoke");
    if (oper != CoyoteOper::LOCAL_READ && oper != CoyoteOper::LOCAL_WRITE)
        throw_error(Errc::invalid_argument, std::string("invoke ") + oper_name(oper),
                    "a single localSg takes LOCAL_READ or LOCAL_WRITE (LOCAL_TRANSFER needs source and "
                    "destination)");
    Command cmd;
    cmd.oper = oper;
    cmd.ctid = ctid;
    cmd.last = last;
    detail::SgSide side{reinterpret_cast<uint64_t>(sg.addr), sg.len, sg.stream, sg.dest};
    if (oper == CoyoteOper::LOCAL_READ)
        cmd.src = side;
    else
        cmd.dst = side;
    impl->dev->raise_pending_error(ctid);
    impl->post(cmd);
}

void cThread::invoke(CoyoteOper oper, localSg src_sg, localSg dst_sg, bool last) {
    impl->check_process("invoke");
    if (oper != CoyoteOper::LOCAL_TRANSFER)
        throw_error(Errc::invalid_argument, std::string("invoke ") + oper_name(oper),
                    "a source and destination localSg take LOCAL_TRANSFER");
    Command cmd;
    cmd.oper = oper;
    cmd.ctid = ctid;
    cmd.last = last;
    cmd.src = {reinterpret_cast<uint64_t>(src_sg.addr), src_sg.len, src_sg.stream, src_sg.dest};
    cmd.dst = {reinterpret_cast<uint64_t>(dst_sg.addr), dst_sg.len, dst_sg.stream, dst_sg.dest};
    impl->dev->raise_pending_error(ctid);
    impl->post(cmd);
}

void cThread::invoke(CoyoteOper oper, rdmaSg sg, bool last) {
    impl->check_process("invoke");
    const auto call = [oper] { return std::string("invoke ") + oper_name(oper); }; // built on failure only
    if (!isRemoteRdma(oper)) throw_error(Errc::invalid_argument, call(), "an rdmaSg takes REMOTE_RDMA_*");
    if (!fcnfg.en_rdma || !qpair)
        throw_error(Errc::not_supported, call(), "RDMA is disabled in the shell configuration");
    if (sg.len > MAX_TRANSFER_SIZE)
        throw_error(Errc::invalid_argument, call(),
                    "length " + std::to_string(sg.len) + " exceeds MAX_TRANSFER_SIZE (" +
                        std::to_string(MAX_TRANSFER_SIZE) + ")");
    if (qpair->local.vaddr == nullptr)
        throw_error(Errc::invalid_argument, call(),
                    "ctid " + std::to_string(ctid) +
                        " has no registered buffer (initRDMA, or getMem with remote = true)");
    if (sg.local_offs > impl->rdma_buffer_size || sg.len > impl->rdma_buffer_size - sg.local_offs)
        throw_error(Errc::invalid_argument, call(),
                    "local_offs " + std::to_string(sg.local_offs) + " + len " + std::to_string(sg.len) +
                        " exceeds the local registered buffer of " + std::to_string(impl->rdma_buffer_size) +
                        " bytes");
    if (sg.local_stream != STRM_HOST && sg.local_stream != STRM_CARD)
        throw_error(Errc::invalid_argument, call(),
                    "local_stream " + std::to_string(sg.local_stream) + " is not a local stream (STRM_HOST or STRM_CARD)");
    if (sg.local_dest > CTRL_DEST_MASK || sg.remote_dest > CTRL_DEST_MASK)
        throw_error(Errc::invalid_argument, call(),
                    "dest " + std::to_string(sg.local_dest > CTRL_DEST_MASK ? sg.local_dest : sg.remote_dest) +
                        " (" + (sg.local_dest > CTRL_DEST_MASK ? "local_dest" : "remote_dest") +
                        ") is out of range (0.." + std::to_string(CTRL_DEST_MASK) + ")");
    const uint64_t remote_base = reinterpret_cast<uint64_t>(qpair->remote.vaddr);
    const uint64_t remote = remote_base + sg.remote_offs;
    if (sg.remote_offs >= k_rdma_va_limit || remote < remote_base || !fits_rdma_address(remote, sg.len)) [[unlikely]]
        throw_rdma_address(call(), "remote_offs " + std::to_string(sg.remote_offs), remote, sg.len);
    if (!impl->dev->target_checks_rdma_bounds()) [[unlikely]]
        check_remote_range(call(), qpair->remote, remote, sg.len);
    Command cmd;
    cmd.oper = oper;
    cmd.ctid = ctid;
    cmd.last = last;
    cmd.src = {reinterpret_cast<uint64_t>(qpair->local.vaddr) + sg.local_offs, sg.len, sg.local_stream,
               sg.local_dest};
    cmd.dst = {reinterpret_cast<uint64_t>(qpair->remote.vaddr) + sg.remote_offs, sg.len,
               static_cast<uint32_t>(STRM_RDMA), sg.remote_dest};
    impl->dev->raise_pending_error(ctid);
    impl->post(cmd);
}

// ---- remote-access windows (coyote-mpi extension) ------------------------------------------------

void cThread::registerWindow(void* vaddr, uint64_t len) {
    impl->check_process("registerWindow");
    if (!fcnfg.en_rdma || !qpair)
        throw_error(Errc::not_supported, "registerWindow", "RDMA is disabled in the shell configuration");
    if (vaddr == nullptr) throw_error(Errc::invalid_argument, "registerWindow", "null window address");
    if (len == 0) throw_error(Errc::invalid_argument, "registerWindow", "empty window at " + hex(vaddr));
    impl->dev->register_window(ctid, vaddr, len);
}

void cThread::unregisterWindow(void* vaddr) {
    impl->check_process("unregisterWindow");
    if (!fcnfg.en_rdma || !qpair)
        throw_error(Errc::not_supported, "unregisterWindow", "RDMA is disabled in the shell configuration");
    impl->dev->unregister_window(ctid, vaddr);
}

void cThread::invokeRdma(CoyoteOper oper, void* local, uint64_t remote_vaddr, uint32_t len, bool last) {
    impl->check_process("invokeRdma");
    const auto call = [oper] { return std::string("invokeRdma ") + oper_name(oper); }; // built on failure only
    if (oper != CoyoteOper::REMOTE_RDMA_WRITE && oper != CoyoteOper::REMOTE_RDMA_READ)
        throw_error(Errc::invalid_argument, call(), "invokeRdma takes REMOTE_RDMA_WRITE or REMOTE_RDMA_READ");
    if (!fcnfg.en_rdma || !qpair)
        throw_error(Errc::not_supported, call(), "RDMA is disabled in the shell configuration");
    if (len > MAX_TRANSFER_SIZE)
        throw_error(Errc::invalid_argument, call(),
                    "length " + std::to_string(len) + " exceeds MAX_TRANSFER_SIZE (" +
                        std::to_string(MAX_TRANSFER_SIZE) + ")");
    if (!fits_rdma_address(remote_vaddr, len)) [[unlikely]]
        throw_rdma_address(call(), "remote address " + hex(reinterpret_cast<void*>(remote_vaddr)), remote_vaddr, len);
    if (!impl->dev->target_checks_rdma_bounds()) [[unlikely]]
        check_remote_range(call(), qpair->remote, remote_vaddr, len);
    Command cmd;
    cmd.oper = oper;
    cmd.ctid = ctid;
    cmd.last = last;
    cmd.src = {reinterpret_cast<uint64_t>(local), len, static_cast<uint32_t>(STRM_HOST), 0};
    cmd.dst = {remote_vaddr, len, static_cast<uint32_t>(STRM_RDMA), 0};
    impl->dev->raise_pending_error(ctid);
    impl->post(cmd);
}

void cThread::invoke(CoyoteOper oper, tcpSg /*sg*/, bool /*last*/) {
    impl->check_process("invoke");
    const std::string call = std::string("invoke ") + oper_name(oper);
    if (!isRemoteTcp(oper)) throw_error(Errc::invalid_argument, call, "a tcpSg takes REMOTE_TCP_SEND");
    throw_error(Errc::not_supported, call,
                fcnfg.en_tcp ? "TCP offload is not implemented by this runtime"
                             : "TCP is disabled in the shell configuration");
}

uint32_t cThread::checkCompleted(CoyoteOper oper) const {
    impl->check_process("checkCompleted");
    // NOOP, TCP sends and values outside the enum have no counter (Coyote returns 0 for them, which a poller would
    // wait on forever); LOCAL_OFFLOAD and LOCAL_SYNC read the LOCAL_WRITE counter they complete on.
    if (oper == CoyoteOper::NOOP || oper > CoyoteOper::REMOTE_RDMA_SEND || oper < CoyoteOper::NOOP) [[unlikely]]
        throw_no_counter(oper);
    const CmplClass cls = detail::cmpl_class_of(oper);
    Impl& i = *impl;
    // The stall doctor: one decrement per poll, its check (out of line) every 1 to 4096 polls. Before the poll, so
    // that the poll stays a tail call and the hot path needs no stack frame.
    if (i.poll_countdown.tick()) [[unlikely]]
        i.watch.on_poll_due(cls);
    return i.dev->poll_completed(ctid, cls);
}

void cThread::clearCompleted() {
    impl->check_process("clearCompleted");
    impl->dev->clear_completed(ctid);
}

// ---- queue pairs and out-of-band ---------------------------------------------------------------

void cThread::writeQpContext(uint32_t port) {
    impl->check_process("writeQpContext");
    if (!qpair) throw_error(Errc::not_supported, "writeQpContext", "RDMA is disabled in the shell configuration");
    const auto w = detail::encode_qp_context(*qpair, port);
    auto& dev = *impl->dev;
    if (fcnfg.en_avx) {
        const uint64_t ctx[4] = {w.ctx[0], w.ctx[1], w.ctx[2], 0};
        const uint64_t conn[4] = {w.conn[0], w.conn[1], w.conn[2], 0};
        dev.write_cnfg(static_cast<uint32_t>(CnfgAvxRegs::RDMA_CTX_REG), ctx);
        dev.write_cnfg(static_cast<uint32_t>(CnfgAvxRegs::RDMA_CONN_REG), conn);
    } else {
        for (uint32_t i = 0; i < 3; ++i) {
            const uint64_t word[1] = {w.ctx[i]};
            dev.write_cnfg(static_cast<uint32_t>(CnfgLegRegs::RDMA_CTX_REG_0) + i, word);
        }
        for (uint32_t i = 0; i < 3; ++i) {
            const uint64_t word[1] = {w.conn[i]};
            dev.write_cnfg(static_cast<uint32_t>(CnfgLegRegs::RDMA_CONN_REG_0) + i, word);
        }
    }
    // The hardware needs time to take the context; the sim applies register writes synchronously.
    if (std::string_view(dev.backend_name()) == "hw") std::this_thread::sleep_for(std::chrono::microseconds(100));
}

void cThread::doArpLookup(uint32_t ip_addr) {
    impl->check_process("doArpLookup");
    if (!qpair) throw_error(Errc::not_supported, "doArpLookup", "RDMA is disabled in the shell configuration");
    auto& dev = *impl->dev;
    if (fcnfg.en_avx) {
        const uint64_t w[4] = {ip_addr, 0, 0, 0};
        dev.write_cnfg(static_cast<uint32_t>(CnfgAvxRegs::NET_ARP_REG), w);
    } else {
        const uint64_t w[1] = {ip_addr};
        dev.write_cnfg(static_cast<uint32_t>(CnfgLegRegs::NET_ARP_REG), w);
    }
    if (std::string_view(dev.backend_name()) == "hw") std::this_thread::sleep_for(std::chrono::microseconds(100));
}

std::vector<std::byte> cThread::exportQp() const {
    impl->check_process("exportQp");
    if (!qpair) throw_error(Errc::not_supported, "exportQp", "RDMA is disabled in the shell configuration");
    std::vector<std::byte> blob(sizeof(ibvQ));
    std::memcpy(blob.data(), &qpair->local, sizeof(ibvQ));
    const auto ep = impl->dev->local_endpoint(ctid);
    blob.insert(blob.end(), ep.begin(), ep.end());
    return blob;
}

void cThread::connectQp(std::span<const std::byte> peer_blob, uint32_t port) {
    impl->check_process("connectQp");
    if (!qpair) throw_error(Errc::not_supported, "connectQp", "RDMA is disabled in the shell configuration");
    // The checks the out-of-band server makes of its client, made of whichever side sent this (a server's answer
    // too): a peer whose queue pair cannot be addressed fails here, not at the first post.
    if (const std::string why = detail::check_ibvq_bytes(peer_blob); !why.empty())
        throw_error(Errc::protocol, "connectQp", "the peer's queue pair message is refused: " + why);
    ibvQ remote;
    std::memcpy(static_cast<void*>(&remote), peer_blob.data(), sizeof(ibvQ));
    remote.gid[32] = '\0';
    qpair->remote = remote;
    impl->dev->set_remote_endpoint(ctid, peer_blob.subspan(sizeof(ibvQ)));
    impl->qp_port = port;
    writeQpContext(port);
    doArpLookup(qpair->remote.ip_addr);
    impl->watch.on_connect(peer_blob.subspan(sizeof(ibvQ)));
}

void* cThread::initRDMA(uint64_t buffer_size, uint16_t port, const char* server_address) {
    impl->check_process("initRDMA");
    if (!qpair) throw_error(Errc::not_supported, "initRDMA", "RDMA is disabled in the shell configuration");
    check_rdma_buffer_size(buffer_size); // before connecting: a client would otherwise reach the server first
    TcpOobOptions opt = TcpOobOptions::from_env();
    if (server_address == nullptr) {
        // The server answers only a client whose queue pair message is well formed for this backend.
        opt.client_message_size = sizeof(ibvQ) + impl->dev->local_endpoint(ctid).size();
        opt.check_client = [this](std::span<const std::byte> m) { return detail::check_peer_message(*impl->dev, m); };
    }
    return initRDMA(buffer_size, make_tcp_oob(port, server_address, opt));
}

void* cThread::initRDMA(uint64_t buffer_size, std::unique_ptr<OobChannel> channel) {
    impl->check_process("initRDMA");
    if (!qpair) throw_error(Errc::not_supported, "initRDMA", "RDMA is disabled in the shell configuration");
    if (!channel) throw_error(Errc::invalid_argument, "initRDMA", "null out-of-band channel");
    check_rdma_buffer_size(buffer_size);
    closeConn();
    impl->oob = std::move(channel);
    // A registered buffer of this size is reused; one of another size stays its owner's (a getMem the caller may
    // still use, or an earlier initRDMA's): freed by freeMem or the destructor, as in Coyote.
    void* buf = qpair->local.vaddr;
    if (buf == nullptr || impl->rdma_buffer_size != buffer_size)
        buf = getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(buffer_size), true});
    const auto mine = exportQp();
    const auto theirs = impl->oob->exchange(mine);
    connectQp(theirs, impl->qp_port);
    return buf;
}

void cThread::closeConn() {
    impl->check_process("closeConn");
    if (impl && impl->oob) {
        impl->oob->close();
        impl->oob.reset();
    }
}

void cThread::connSync(bool client) {
    impl->check_process("connSync");
    if (!impl->oob)
        throw_error(Errc::invalid_argument, "connSync", "no out-of-band connection (call initRDMA first)");
    if (client) {
        sendAck(1);
        (void)readAck();
    } else {
        detail::check_sync_ack(*impl->oob, readAck()); // not the close message of a client that left
        sendAck(1);
    }
}

void cThread::sendAck(uint32_t ack) {
    impl->check_process("sendAck");
    if (!impl->oob) throw_error(Errc::invalid_argument, "sendAck", "no out-of-band connection");
    impl->oob->send_ack(ack);
}

uint32_t cThread::readAck() {
    impl->check_process("readAck");
    if (!impl->oob) throw_error(Errc::invalid_argument, "readAck", "no out-of-band connection");
    return impl->oob->read_ack();
}

// ---- misc ---------------------------------------------------------------------------------------

void cThread::lock() {
    impl->check_process("lock");
    if (impl->lock_held.load()) return; // as in Coyote: a cThread that holds the lock takes it once
    detail::VfpgaLock& vl = *impl->vlock;
    if (!vl.try_lock()) {
        // Wait with a deadline instead of forever, watched by the stall doctor (who holds it); a holder that died
        // holding the lock is found and its lock released meanwhile.
        const auto timeout = k_lock_timeout.get();
        const detail::diag::WaitWatch watch("lock", "the vFPGA lock /dev/shm/sem." + vl.name(), vl.why_taken(),
                                            [&vl] { return vl.why_taken(); });
        if (!vl.timed_lock(timeout))
            throw_error(Errc::timeout, "lock",
                        "the vFPGA lock " + vl.name() + " stayed taken for " + std::to_string(timeout.count()) +
                            " ms (COYOTE_LOCK_TIMEOUT_MS); " + vl.why_taken());
    }
    impl->lock_held.store(true);
}

void cThread::unlock() {
    impl->check_process("unlock");
    if (!impl->lock_held.exchange(false)) return; // not held, or another thread of this cThread released it first
    impl->vlock->unlock();
}

int32_t cThread::getVfid() const { return vfid; }
int32_t cThread::getCtid() const { return ctid; }
pid_t cThread::getHpid() const { return hpid; }
ibvQp* cThread::getQpair() const { return qpair.get(); }
uint32_t cThread::getDevice() const { return impl->device; }
std::string cThread::backendName() const { return impl->dev->backend_name(); }
const fpgaCnfg& cThread::getShellConfig() const { return fcnfg; }
OobChannel* cThread::getOob() const { return impl->oob.get(); }

void cThread::printDebug() const {
    impl->check_process("printDebug");
    std::ostringstream os;
    os << "-- cThread: device " << impl->device << ", vFPGA " << vfid << ", ctid " << ctid << ", hpid " << hpid
       << ", backend " << impl->dev->backend_name() << "\n";
    os << impl->dev->debug_string(ctid);
    if (qpair) {
        char line[160];
        std::snprintf(line, sizeof(line), "  QP local : QPN 0x%06x PSN 0x%06x RKEY 0x%08x VADDR %p SIZE %u IP 0x%08x\n",
                      qpair->local.qpn, qpair->local.psn, qpair->local.rkey, qpair->local.vaddr,
                      qpair->local.size, qpair->local.ip_addr);
        os << line;
        std::snprintf(line, sizeof(line), "  QP remote: QPN 0x%06x PSN 0x%06x RKEY 0x%08x VADDR %p SIZE %u IP 0x%08x\n",
                      qpair->remote.qpn, qpair->remote.psn, qpair->remote.rkey, qpair->remote.vaddr,
                      qpair->remote.size, qpair->remote.ip_addr);
        os << line;
    }
    os << impl->watch.diagnose();
    std::cout << os.str() << std::flush;
}

}  // namespace coyote
