// coyote-mpi sim backend: the vFPGA's data path: post(), the command queue and its worker, local commands fed
// to the user-logic model, the page-fault path of the TLB, and blocking migrations to and from card memory.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/shell_port.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

constexpr uint64_t k_fault_region = 2ull << 20; // the page-fault path maps this much (aligned) at once
/// How long the worker leaves queued commands to a polling thread before it looks again: k_worker_nap at first,
/// doubling up to k_worker_nap_max while the poller keeps at it. Each look is a wake-up that preempts a thread
/// (under load often the poller itself): with a fixed 100 us the 1 MiB sweep saw 4x memcpy's preemptions, and with
/// 1.6 ms at most the vadd sweep (64 commands a run) still lost half its speed to them. A program that stops
/// polling with commands queued waits at most k_worker_nap_max for the worker.
constexpr auto k_worker_nap = std::chrono::microseconds(100);
constexpr auto k_worker_nap_max = std::chrono::microseconds(6400);

/// The role of one side of a local command, for messages.
const char* side_role(const Command& cmd, bool write) {
    if (cmd.oper != CoyoteOper::LOCAL_TRANSFER) return oper_name(cmd.oper);
    return write ? "LOCAL_TRANSFER destination" : "LOCAL_TRANSFER source";
}

/// The error of a command longer than MAX_TRANSFER_SIZE (cold: kept off the hot path).
[[noreturn, gnu::cold]] void throw_too_long(const char* role, uint64_t len) {
    throw_error(Errc::invalid_argument, "invoke",
                std::string(role) + ": length " + std::to_string(len) + " exceeds MAX_TRANSFER_SIZE (" +
                    std::to_string(MAX_TRANSFER_SIZE) + " bytes)");
}

/// Throws unless `len` fits one command.
inline void check_transfer_size(const char* role, uint64_t len) {
    if (len > MAX_TRANSFER_SIZE) [[unlikely]]
        throw_too_long(role, len);
}

/// Throws unless the dest and the stream of a local side are valid and enabled in the shell.
void check_local_side(const ShellConfig& cfg, const char* role, const SgSide& sg) {
    check_transfer_size(role, sg.len);
    if (sg.dest > CTRL_DEST_MASK)
        throw_error(Errc::invalid_argument, "invoke",
                    std::string(role) + ": dest " + std::to_string(sg.dest) + " is out of range (0..15)");
    if (sg.stream == STRM_HOST) {
        if (!cfg.en_strm)
            throw_error(Errc::not_supported, "invoke",
                        std::string(role) + ": host streams (STRM_HOST) are disabled in the shell (strm=0)");
    } else if (sg.stream == STRM_CARD) {
        if (!cfg.en_mem)
            throw_error(Errc::not_supported, "invoke",
                        std::string(role) + ": card memory streams (STRM_CARD) are disabled in the shell (mem=0)");
    } else {
        throw_error(Errc::invalid_argument, "invoke",
                    std::string(role) + ": stream " + std::to_string(sg.stream) +
                        " is not a local stream (use STRM_HOST or STRM_CARD)");
    }
}

/// Bytes a local command moves (the larger side).
inline uint64_t local_bytes(const Command& cmd) {
    return std::max(cmd.oper != CoyoteOper::LOCAL_WRITE ? cmd.src.len : 0u,
                    cmd.oper != CoyoteOper::LOCAL_READ ? cmd.dst.len : 0u);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Validation and the page-fault path
// ---------------------------------------------------------------------------------------------

void SimDevice::check_ctid(int32_t ctid, const char* call) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " is out of range (0.." + std::to_string(N_CTID_MAX - 1) + ")");
    if (!ctids_[static_cast<size_t>(ctid)].active.load(std::memory_order_acquire))
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " is not registered on vFPGA " + std::to_string(vfid_) +
                        " of sim device " + std::to_string(device_));
}

void SimDevice::check_range(int32_t ctid, uint64_t addr, uint64_t len, bool write, const char* what) {
    if (len == 0) return;
    // Messages are built only on failure: this runs for every command.
    auto where = [&] { return std::string(what) + " at " + hex(addr) + " (len " + std::to_string(len) + ")"; };
    if (addr + len < addr) throw_error(Errc::not_mapped, "invoke", where() + ": the range wraps around");
    if (ctids_[static_cast<size_t>(ctid)].foreign) [[unlikely]]
        return check_foreign_range(ctid, addr, len, write, what);
    const TlbLookup r = tlb_.lookup(addr, len, write);
    if (r.covered && !r.write_denied && r.owned_only) return;
    if (r.alloc_end != 0) [[unlikely]]
        throw_error(Errc::invalid_argument, "invoke",
                    where() + ": runs " + std::to_string(addr + len - r.alloc_end) +
                        " bytes past the end of its getMem buffer " + hex(r.alloc_start) + " (" +
                        std::to_string(r.alloc_end - r.alloc_start) + " bytes)");
    const uint64_t s = addr / k_host_page * k_host_page;
    const uint64_t e = round_up(addr + len, k_host_page);
    if (r.covered && !r.write_denied) {
        // userMap'd or faulted memory still belongs to the process: probe that it still has the access.
        const char* why = probe_mapped(ctid, s, e, write);
        if (why == nullptr) return;
        throw_error(Errc::not_mapped, "invoke",
                    where() + ": the memory was mapped in the vFPGA TLB but " + why);
    }
    fault_in(ctid, addr, len, write, r.write_denied, what);
}

namespace {

/// The last range probe_mapped found mapped in this thread, and whether a command on it was accepted since.
struct ProbeCache {
    uint64_t device_serial = 0; ///< SimDevice::serial_ of the device (0: empty)
    int32_t ctid = -1;
    uint64_t start = 0, end = 0;
    bool writable = false; ///< the probe checked write access too
    bool trusted = false;  ///< a command on the range was accepted (trust_probe)
    uint64_t done_at = 0;  ///< the ctid's completed commands when it was
};
thread_local ProbeCache t_probe;
std::atomic<uint64_t> g_device_serials{0};

}  // namespace

uint64_t SimDevice::next_serial() noexcept { return g_device_serials.fetch_add(1, std::memory_order_relaxed) + 1; }

const char* SimDevice::probe_mapped(int32_t ctid, uint64_t start, uint64_t end, bool write) noexcept {
    ProbeCache& c = t_probe;
    const auto& st = ctids_[static_cast<size_t>(ctid)];
    if (c.trusted && c.device_serial == serial_ && c.ctid == ctid && c.start <= start && end <= c.end &&
        (c.writable || !write) && st.done.load(std::memory_order_acquire) == c.done_at &&
        st.inflight.load(std::memory_order_acquire) > 0)
        return nullptr;
    if (const char* why = process_access(start, end, write)) return why;
    c = ProbeCache{serial_, ctid, start, end, write, false, 0};
    return nullptr;
}

void SimDevice::forget_untrusted_probe() noexcept {
    if (!t_probe.trusted) t_probe = ProbeCache{};
}

void SimDevice::trust_probe(int32_t ctid) noexcept {
    ProbeCache& c = t_probe;
    if (c.device_serial != serial_ || c.ctid != ctid || c.trusted) return;
    // Read after the command was counted in flight: a completion from now on invalidates the probe.
    c.done_at = ctids_[static_cast<size_t>(ctid)].done.load(std::memory_order_acquire);
    c.trusted = true;
}

void SimDevice::fault_in(int32_t ctid, uint64_t addr, uint64_t len, bool write, bool write_denied,
                         const char* what) {
    // Map valid process memory on first use. Like a TLB with 2 MiB pages it maps the 2 MiB-aligned region
    // around the range (within the mappings that hold it, with the same access): one /proc/self/maps read per
    // region instead of one per command over a large buffer.
    const uint64_t s = addr / k_host_page * k_host_page;
    const uint64_t e = round_up(addr + len, k_host_page);
    const std::vector<ProcRange> maps = read_proc_maps();
    const ProcCheck c = check_proc_range(maps, s, e, write);
    if (!c.ok())
        throw_error(Errc::not_mapped, "invoke",
                    std::string(what) + " at " + hex(addr) + " (len " + std::to_string(len) + "): address " +
                        hex(c.bad) + " is " + describe(c.access));
    const bool writable = c.all_writable;
    uint64_t fs = s, fe = e;
    uint64_t lo = s / k_fault_region * k_fault_region, hi = round_up(e, k_fault_region);
    for (const ProcRange& m : maps) { // clip to the mappings holding the first and the last page
        if (m.start <= s && s < m.end) lo = std::max(lo, m.start);
        if (m.start < e && e <= m.end) hi = std::min(hi, m.end);
    }
    if (lo <= s && hi >= e) {
        const ProcCheck around = check_proc_range(maps, lo, hi, write);
        if (around.ok() && around.all_writable == writable) fs = lo, fe = hi;
    }
    const uint64_t added = tlb_.insert(fs, fs, fe, MapKind::fault, ctid, writable);
    if (write_denied) tlb_.grant_write(s, e);
    if (ctid >= 0 && ctid < N_CTID_MAX)
        ctids_[static_cast<size_t>(ctid)].page_faults.fetch_add(added / k_host_page, std::memory_order_relaxed);
}

bool SimDevice::still_mapped(uint64_t addr, uint64_t len, bool write) const {
    if (len == 0) return true;
    const TlbLookup r = tlb_.lookup(addr, len, write);
    return r.covered && !r.write_denied;
}

void SimDevice::check_local_range(int32_t ctid, uint64_t addr, uint64_t len, bool write) {
    check_range(ctid, addr, len, write, write ? "RDMA target" : "RDMA source");
}

void SimDevice::validate_local(const Command& cmd) {
    forget_untrusted_probe(); // trust_probe must see only this command's probe
    auto side = [&](const SgSide& sg, bool write) {
        const char* role = side_role(cmd, write);
        check_local_side(cfg_, role, sg);
        check_range(cmd.ctid, sg.addr, sg.len, write && sg.stream == STRM_HOST, role);
    };
    if (cmd.oper != CoyoteOper::LOCAL_WRITE) side(cmd.src, false);
    if (cmd.oper != CoyoteOper::LOCAL_READ) side(cmd.dst, true);
}

// ---------------------------------------------------------------------------------------------
// Posting
// ---------------------------------------------------------------------------------------------

// inline: the RDMA half of post().
inline PostStatus SimDevice::post_remote(const Command& cmd, CtidState& st) {
    if (st.foreign) [[unlikely]]
        throw_error(Errc::not_supported, "invoke",
                    std::string(oper_name(cmd.oper)) + ": RDMA of a cThread created for another process (pid " +
                        std::to_string(st.hpid) + ") is not emulated by the sim backend");
    if (!cfg_.en_rdma)
        throw_error(Errc::not_supported, "invoke",
                    std::string(oper_name(cmd.oper)) + ": RDMA is disabled in the shell (rdma=0)");
    check_transfer_size(oper_name(cmd.oper), cmd.src.len);
    const PostStatus s = nic_->post(cmd);
    if (s == PostStatus::busy) wait_for_room(cmd.ctid); // the answers that free the FIFO may be waiting for us
    if (s == PostStatus::ok) {
        st.posted.fetch_add(1, std::memory_order_relaxed);
        (cmd.oper == CoyoteOper::REMOTE_RDMA_READ ? sent_rdma_reads_ : sent_rdma_writes_)
            .fetch_add(1, std::memory_order_relaxed);
    }
    return s;
}

// inline: progress_one and worker_loop take every queued command through it.
inline Command SimDevice::pop_command() {
    const Command cmd = queue_.front();
    queue_.pop_front();
    queue_nonempty_.store(!queue_.empty(), std::memory_order_release);
    return cmd;
}

// inline (here and in progress_one): every small command runs through it.
inline void SimDevice::run_inline(std::unique_lock<std::mutex>& q, const Command& cmd) {
    ++inline_active_; // keeps the worker (and other pollers) out until this command is done: order is preserved
    q.unlock();
    {
        std::lock_guard hw(hw_mtx_);
        execute(cmd);
    }
    q.lock();
    if (--inline_active_ == 0 && !queue_.empty() && worker_parked_) q_cv_.notify_all();
}

inline void SimDevice::run_or_queue(const Command& cmd) {
    std::unique_lock q(q_mtx_);
    if (queue_.empty() && !worker_busy_ && local_bytes(cmd) <= k_inline_max_bytes) {
        run_inline(q, cmd); // nothing queued: cheaper than waking the worker
        return;
    }
    queue_.push_back(cmd);
    queue_nonempty_.store(true, std::memory_order_release);
    const bool wake = worker_parked_; // else the worker looks again within a nap: no wake-up per post
    q.unlock();
    if (wake) q_cv_.notify_all();
}

PostStatus SimDevice::post(const Command& cmd) {
    check_ctid(cmd.ctid, "invoke");
    auto& st = ctids_[static_cast<size_t>(cmd.ctid)];
    st.poll_idle.store(0, std::memory_order_relaxed); // a new command: the next polls spin before they sleep
    switch (cmd.oper) {
    case CoyoteOper::LOCAL_READ:
    case CoyoteOper::LOCAL_WRITE:
    case CoyoteOper::LOCAL_TRANSFER: validate_local(cmd); break;
    case CoyoteOper::REMOTE_RDMA_READ:
    case CoyoteOper::REMOTE_RDMA_WRITE:
    case CoyoteOper::REMOTE_RDMA_SEND: return post_remote(cmd, st);
    case CoyoteOper::REMOTE_TCP_SEND:
        throw_error(Errc::not_supported, "invoke",
                    cfg_.en_tcp ? "REMOTE_TCP_SEND: the TCP stack is not emulated by the sim backend"
                                : "REMOTE_TCP_SEND: TCP is disabled in the shell (tcp=0)");
    case CoyoteOper::NOOP: return PostStatus::ok;
    default:
        throw_error(Errc::invalid_argument, "invoke",
                    std::string(oper_name(cmd.oper)) + " is not a command for post() (LOCAL_OFFLOAD and LOCAL_SYNC "
                                                       "are blocking migrations)");
    }

    int32_t cur = st.inflight.load(std::memory_order_relaxed);
    do {
        if (cur >= k_max_inflight) {
            wait_for_room(cmd.ctid, &st.inflight);
            return PostStatus::busy;
        }
    } while (!st.inflight.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel));
    st.posted.fetch_add(1, std::memory_order_relaxed);
    if (cmd.oper != CoyoteOper::LOCAL_WRITE) sent_local_reads_.fetch_add(1, std::memory_order_relaxed);
    if (cmd.oper != CoyoteOper::LOCAL_READ) sent_local_writes_.fetch_add(1, std::memory_order_relaxed);
    trust_probe(cmd.ctid);
    run_or_queue(cmd);
    return PostStatus::ok;
}

void SimDevice::wait_for_room(int32_t ctid, const std::atomic<int32_t>* inflight) noexcept {
    // Without `inflight` the NIC's window is full: the ACKs and READ responses that free it count as RDMA
    // completions of the ctid.
    const auto rdma_done = [&] {
        return wback(CmplClass::rdma_write, ctid).load(std::memory_order_seq_cst) +
               wback(CmplClass::rdma_read, ctid).load(std::memory_order_seq_cst);
    };
    const uint32_t before = inflight == nullptr ? rdma_done() : 0;
    bool ran = false;
    // Until a slot is free: a two-operand model holds a read (in flight) until the command that brings its partner,
    // queued behind it, runs. Returning after the read alone made every retry of the vadd sweep's posts yield the
    // core (cThread's back-off), which under load cost a scheduler slice per pair of commands.
    while (queue_nonempty_.load(std::memory_order_relaxed) && progress_one()) {
        ran = true;
        if (inflight == nullptr || inflight->load(std::memory_order_acquire) < k_max_inflight) break;
    }
    poller_seen_.store(true, std::memory_order_relaxed);
    if (ran) return;
    wait_completion(
        *state_,
        [&] {
            return inflight == nullptr ? rdma_done() != before
                                       : inflight->load(std::memory_order_seq_cst) < k_max_inflight;
        },
        k_poll_sleep_ns);
}

bool SimDevice::progress_one() noexcept {
    if (!queue_nonempty_.load(std::memory_order_acquire)) return false;
    std::unique_lock q(q_mtx_, std::try_to_lock);
    if (!q.owns_lock() || queue_.empty() || worker_busy_ || inline_active_ != 0 || stop_) return false;
    const Command cmd = pop_command();
    run_inline(q, cmd);
    return true;
}

void SimDevice::housekeeping() noexcept {
    // Only when asked: the worker passes here after every command and nap, and the NIC's housekeeping walks its peers.
    if (!housekeeping_wanted_.exchange(false, std::memory_order_relaxed)) return;
    if (nic_ != nullptr) nic_->housekeeping(coarse_now_ns());
}

void SimDevice::worker_loop() {
    std::unique_lock q(q_mtx_);
    const auto ready = [&] { return stop_ || (!queue_.empty() && inline_active_ == 0); };
    std::chrono::microseconds nap = k_worker_nap;
    for (;;) {
        // A thread waiting on completions runs the queue itself (progress_one), on the core it already has, its
        // caches warm: the worker stays out of its way while it keeps polling and takes over within a nap once it
        // stops. Woken from a wait, the worker naps first too: in Coyote's programs the poster polls next. Taking
        // the first command at once ran it on the other core and made every poll wait until that core was
        // scheduled; waking the worker at every post cost a context switch each.
        bool fresh = false;
        if (!ready()) {
            if (poller_seen_.exchange(false, std::memory_order_relaxed)) {
                // Polling: posts do not notify; the NIC's housekeeping does.
                q_cv_.wait_for(q, nap, [&] { return stop_ || housekeeping_wanted_.load(std::memory_order_relaxed); });
                nap = std::min<std::chrono::microseconds>(nap * 2, k_worker_nap_max);
                q.unlock();
                housekeeping();
                q.lock();
                continue;
            }
            worker_parked_ = true; // the nap stays: a program that polls between batches keeps its poller's pace
            q_cv_.wait(q, [&] { return ready() || housekeeping_wanted_.load(std::memory_order_relaxed); });
            worker_parked_ = false;
            if (!ready()) { // woken for the NIC's housekeeping alone
                q.unlock();
                housekeeping();
                q.lock();
                continue;
            }
            fresh = true;
        }
        if (stop_) return;
        if (poller_seen_.exchange(false, std::memory_order_relaxed) || fresh) {
            q.unlock();
            std::this_thread::sleep_for(nap);
            housekeeping();
            q.lock();
            if (!fresh) nap = std::min<std::chrono::microseconds>(nap * 2, k_worker_nap_max);
            continue;
        }
        nap = k_worker_nap;
        const Command cmd = pop_command();
        worker_busy_ = true;
        worker_running_.store(true, std::memory_order_relaxed);
        q.unlock();
        {
            std::lock_guard hw(hw_mtx_);
            execute(cmd);
        }
        housekeeping();
        q.lock();
        worker_busy_ = false;
        worker_running_.store(false, std::memory_order_relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Execution (model lock held)
// ---------------------------------------------------------------------------------------------

void SimDevice::execute(const Command& cmd) noexcept {
    if (!ctids_[static_cast<size_t>(cmd.ctid)].active.load(std::memory_order_acquire)) return;
    try {
        execute_local(cmd);
    } catch (...) {
        record_exception(cmd.ctid, oper_name(cmd.oper));
    }
    // Held input waits for its partner in a later command; with none queued, the model copies it and the read
    // completes (a program may wait for the read before it posts the partner).
    if (n_held_ > 0 && !queue_nonempty_.load(std::memory_order_acquire)) spill_held();
}

void SimDevice::execute_local(const Command& cmd) {
    const bool rd = cmd.oper != CoyoteOper::LOCAL_WRITE;
    const bool wr = cmd.oper != CoyoteOper::LOCAL_READ;
    // The buffers may have been freed since post() checked them (a foreign ctid's copies check their own).
    if (!ctids_[static_cast<size_t>(cmd.ctid)].foreign &&
        ((rd && !still_mapped(cmd.src.addr, cmd.src.len, false)) ||
         (wr && !still_mapped(cmd.dst.addr, cmd.dst.len, cmd.dst.stream == STRM_HOST)))) {
        command_done(cmd.ctid);
        const SgSide& s = rd && !still_mapped(cmd.src.addr, cmd.src.len, false) ? cmd.src : cmd.dst;
        throw_error(Errc::not_mapped, "invoke",
                    std::string(oper_name(cmd.oper)) + " at " + hex(s.addr) + " (len " + std::to_string(s.len) +
                        "): the buffer was unmapped before the command ran");
    }
    if (wr) {
        try {
            add_pending_write(cmd.ctid, cmd.dst, cmd.last);
        } catch (...) {
            command_done(cmd.ctid);
            throw;
        }
    }
    if (rd) (void)deliver_input(cmd.ctid, cmd.src, cmd.last, !wr);
}

bool SimDevice::deliver_input(int32_t ctid, const SgSide& src, bool last, bool completes) {
    auto& st = ctids_[static_cast<size_t>(ctid)];
    hold_taken_ = false;
    if (src.len > 0) {
        coyote::sim::InputChunk in;
        in.dest = src.dest;
        in.kind = src.stream == STRM_CARD ? coyote::sim::StreamKind::card : coyote::sim::StreamKind::host;
        in.ctid = ctid;
        try {
            if (src.stream == STRM_HOST && st.foreign) [[unlikely]] {
                feed_foreign(in, src, last);
            } else if (src.stream == STRM_HOST) {
                in.data = std::span<const std::byte>(reinterpret_cast<const std::byte*>(src.addr), src.len);
                in.end_of_command = true;
                in.last = last;
                hold_offered_ = true;
                model_->on_input(*port_, in);
                hold_offered_ = false;
            } else {
                uint64_t off = 0;
                while (off < src.len) {
                    in.data = card_.read_window(src.addr + off, src.len - off);
                    off += in.data.size();
                    in.end_of_command = off == src.len;
                    in.last = in.end_of_command && last;
                    model_->on_input(*port_, in);
                }
            }
            discard_reservations();
        } catch (...) {
            hold_offered_ = false;
            discard_reservations();
            // The shell still read the data; the model's failure is reported to the Coyote thread.
            record_exception(ctid, "user-logic model '" + model_.origin() + "' on input dest " + std::to_string(src.dest));
        }
        if (hold_taken_) {
            held_[src.dest].push_back(HeldInput{ctid, src.len, last, completes});
            ++n_held_;
            return true;
        }
    }
    (void)st;
    finish_read(ctid, src.len, last, completes);
    return false;
}

void SimDevice::finish_read(int32_t ctid, uint64_t len, bool last, bool completes) noexcept {
    ctids_[static_cast<size_t>(ctid)].bytes_read.fetch_add(len, std::memory_order_relaxed);
    if (last) bump(ctid, CmplClass::local_read);
    if (completes) command_done(ctid);
}

bool SimDevice::hold_input() noexcept {
    if (!hold_offered_) return false;
    hold_taken_ = true;
    return true;
}

void SimDevice::release_input(uint32_t dest) noexcept {
    if (dest >= coyote::sim::k_n_dests || held_[dest].empty()) return;
    const HeldInput h = held_[dest].front();
    held_[dest].pop_front();
    --n_held_;
    finish_read(h.ctid, h.len, h.last, h.completes);
}

void SimDevice::spill_held() noexcept {
    if (n_held_ == 0) return;
    try {
        if (auto* holder = dynamic_cast<InputHolder*>(model_.get())) holder->spill(*port_);
        discard_reservations();
    } catch (...) {
        discard_reservations();
    }
    for (uint32_t d = 0; d < coyote::sim::k_n_dests; ++d) // a model that kept some: complete them anyway
        while (!held_[d].empty()) release_input(d);
}

// ---------------------------------------------------------------------------------------------
// Asynchronous errors
// ---------------------------------------------------------------------------------------------

void SimDevice::record_error(int32_t ctid, std::error_code code, const std::string& msg) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    try {
        std::lock_guard lk(err_mtx_);
        auto& slot = errors_[static_cast<size_t>(ctid)];
        if (!slot) slot.emplace(code, msg); // keep the first one
        ctids_[static_cast<size_t>(ctid)].has_error.store(true, std::memory_order_release);
    } catch (...) {
    }
}

void SimDevice::record_exception(int32_t ctid, const std::string& what) noexcept {
    try {
        throw;
    } catch (const Error& e) { // the model's, or one of the shell's calls it made (Shell::push): both named
        const std::string call = e.call().empty() ? std::string() : e.call() + ": ";
        record_error(ctid, e.code(), what + ": " + call + (e.context().empty() ? std::string(e.what()) : e.context()));
    } catch (const std::exception& e) {
        record_error(ctid, make_error_code(Errc::invalid_argument), what + ": " + e.what());
    } catch (...) {
        record_error(ctid, make_error_code(Errc::invalid_argument), what + ": unknown exception");
    }
}

// ---------------------------------------------------------------------------------------------
// Migrations (LOCAL_OFFLOAD / LOCAL_SYNC)
// ---------------------------------------------------------------------------------------------

void SimDevice::migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) {
    check_ctid(ctid, "invoke");
    const char* what = to_card ? "LOCAL_OFFLOAD" : "LOCAL_SYNC";
    if (!cfg_.en_mem)
        throw_error(Errc::not_supported, "invoke",
                    std::string(what) + " needs card memory, which is disabled in the shell (mem=0)");
    if (len == 0) return;
    const auto a = reinterpret_cast<uint64_t>(addr);
    check_range(ctid, a, len, !to_card, what);
    if (ctids_[static_cast<size_t>(ctid)].foreign) [[unlikely]]
        return migrate_foreign(ctid, a, len, to_card);
    std::lock_guard hw(hw_mtx_);
    if (!still_mapped(a, len, !to_card))
        throw_error(Errc::not_mapped, "invoke", std::string(what) + " at " + hex(a) + ": the buffer was unmapped");
    auto* host = reinterpret_cast<std::byte*>(a);
    uint64_t off = 0;
    if (to_card) {
        card_.reserve(a, len);
        while (off < len) {
            auto w = card_.write_window(a + off, len - off);
            std::memcpy(w.data(), host + off, w.size());
            off += w.size();
        }
    } else {
        while (off < len) {
            auto r = card_.read_window(a + off, len - off);
            std::memcpy(host + off, r.data(), r.size());
            off += r.size();
        }
    }
}

}  // namespace coyote::detail::sim
