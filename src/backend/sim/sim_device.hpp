// coyote-mpi sim backend: one simulated vFPGA (SimDevice), the local data path of the Coyote shell.
//
// Commands: validated synchronously in post(); small ones run in the poster when nothing is queued,
// the others on the vFPGA's worker thread, in posting order. The user-logic model runs under one lock
// (the "model lock": it is one piece of hardware); card memory and the output streams are protected
// by it too. LOCAL_WRITEs wait in per-dest queues until the model produces their data.
//
// The class is implemented in several files, one room each:
//   sim_device.cpp     construction, ctids, user CSRs, completions and errors, interrupts, status, open()
//   sim_memory.cpp     getMem / freeMem buffers, userMap, remote-access windows
//   sim_foreign.cpp    host memory of a ctid registered for another process (process_vm_readv / writev)
//   sim_commands.cpp   the data path: post(), the command queue and worker, page faults, migrations
//   sim_streams.cpp    the model's output streams: pending LOCAL_WRITEs, buffered output, the Shell port
//                      (shell_port.hpp)
//   sim_registers.cpp  the configuration registers (writeCnfg / readCnfg)
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <coyote/sim/user_logic.hpp>

#include "backend/device.hpp"
#include "backend/sim/card_memory.hpp"
#include "backend/sim/identity.hpp"
#include "backend/sim/models/examples/packet_tap.hpp"
#include "backend/sim/models/models.hpp"
#include "backend/sim/net/nic.hpp"
#include "backend/sim/process_maps.hpp"
#include "backend/sim/shared_state.hpp"
#include "backend/sim/shell_config.hpp"
#include "backend/sim/tlb.hpp"
#include "detail/handler_thread.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim {

/// At most this many commands of one ctid in flight (CMD_FIFO_DEPTH - CMD_FIFO_THR).
inline constexpr int32_t k_max_inflight = CMD_FIFO_DEPTH - CMD_FIFO_THR;
/// Polls that see no change before a poller starts sleeping at every poll (a few microseconds of spinning), or
/// before it starts timing its spin budget (COYOTE_SIM_POLL_SPIN_US).
inline constexpr uint32_t k_polls_before_yield = 128;
/// A LOCAL_WRITE poller claims the completions initiators deferred (claim_deferred) when this many time-stamp
/// ticks passed since its last claim (x86 TSC: about 1 - 4 us; else nanoseconds): a polling loop reads the line the
/// initiators write only now and then, and a single poll after a pause claims at once.
inline constexpr uint64_t k_claim_period_ticks = 4096;
/// A LOCAL_WRITE poller refreshes its ctid's poll stamp for initiators (net::PullLine::polled_tick) when this many
/// time-stamp ticks passed since (x86 TSC: about 1 us), so the line initiators read stays in their caches meanwhile.
inline constexpr uint64_t k_pull_stamp_ticks = 2048;
/// Longest sleep of one idle poll (checkCompleted returns after it, unchanged, if nothing completed).
inline constexpr long k_poll_sleep_ns = 200 * 1000;
/// Commands moving at most this many bytes may run in the posting thread.
inline constexpr uint64_t k_inline_max_bytes = 64 * 1024;
/// Output a model produces while no LOCAL_WRITE waits is buffered up to this many bytes per dest.
inline constexpr uint64_t k_output_buffer_cap = 256ULL << 20;
/// Host page and huge page sizes of the sim vFPGA's TLB.
inline constexpr uint64_t k_host_page = PAGE_SIZE;
inline constexpr uint64_t k_huge_page = HUGE_PAGE_SIZE;

/// `v` rounded up to a multiple of `a`.
constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

class SimDevice final : public Device, public NicHost, private sniffer::CardPort {
public:
    SimDevice(uint32_t device, int32_t vfid, const ShellConfig& cfg);
    ~SimDevice() override;

    SimDevice(const SimDevice&) = delete;
    SimDevice& operator=(const SimDevice&) = delete;

    // ---- Device ----
    const char* backend_name() const noexcept override { return "sim"; }
    uint32_t device_id() const noexcept override { return device_; }
    int32_t vfid() const noexcept override { return vfid_; }
    uint64_t shell_word() const override { return cfg_.shell_word(); }
    uint64_t control_word() const override { return cfg_.control_word(); }

    int32_t register_ctid(pid_t hpid) override;
    void unregister_ctid(int32_t ctid) noexcept override;

    Allocation alloc_mem(int32_t ctid, const CoyoteAlloc& req) override;
    void free_mem(int32_t ctid, const Allocation& a) noexcept override;
    void map_user(int32_t ctid, void* vaddr, uint64_t len) override;
    void unmap_user(int32_t ctid, void* vaddr) override;
    void register_window(int32_t ctid, void* vaddr, uint64_t len) override;
    void unregister_window(int32_t ctid, void* vaddr) override;

    void set_csr(uint64_t val, uint32_t offs) override;
    uint64_t get_csr(uint32_t offs) const override;

    void write_cnfg(uint32_t reg, std::span<const uint64_t> words) override;
    uint64_t read_cnfg(uint32_t reg) const override;

    bool target_checks_rdma_bounds() const noexcept override { return true; }
    PostStatus post(const Command& cmd) override;
    void migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) override;

    uint32_t completed(int32_t ctid, CmplClass cls) const override;
    void clear_completed(int32_t ctid) override;
    void raise_pending_error(int32_t ctid) override;
    uint32_t poll_completed(int32_t ctid, CmplClass cls) override;

    void set_poll_countdown(int32_t ctid, std::atomic<uint32_t>* countdown) noexcept override;
    void set_interrupt_handler(int32_t ctid, InterruptHandler handler) override;

    uint32_t ip_address() const noexcept override { return ident_.ip; }
    uint64_t mac_address() const noexcept override { return ident_.mac; }
    uint32_t rkey(int32_t ctid) const override;
    std::vector<std::byte> local_endpoint(int32_t ctid) const override;
    void set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) override;
    void check_remote_endpoint(std::span<const std::byte> endpoint) const override;

    std::string debug_string(int32_t ctid) const override;

    // ---- NicHost ----
    bool avx_layout() const noexcept override { return cfg_.en_avx; }
    SharedState& shared_state() noexcept override { return *state_; }
    const std::string& shared_state_name() const noexcept override { return state_seg_.name(); }
    void check_local_range(int32_t ctid, uint64_t addr, uint64_t len, bool write) override;
    void wake_housekeeping() noexcept override {
        if (!housekeeping_wanted_.exchange(true, std::memory_order_relaxed)) q_cv_.notify_all();
    }

    // ---- sim-specific ----
    const ShellConfig& config() const noexcept { return cfg_; }
    /// Name of the user-logic model in use.
    std::string model_name() const;
    /// Replaces the user-logic model under the model lock (app reconfiguration); the old one is destroyed after.
    void swap_model(ModelHandle model);

private:
    class ShellPort;
    friend class ShellPort;

    /// A LOCAL_WRITE (or the write half of a LOCAL_TRANSFER) waiting for output data.
    struct PendingWrite {
        int32_t ctid = 0;
        uint64_t addr = 0;
        uint64_t len = 0;
        uint64_t filled = 0;
        bool card = false;
        bool last = true;
        pid_t pid = 0;       ///< host memory of another process (a foreign ctid), else 0
        uint32_t dest = 0;   ///< its dest (the staging buffer of a foreign write)
        bool failed = false; ///< could not reach its memory: the rest of its data is dropped (the error is recorded)
        bool recheck = false; ///< process memory (not getMem) left waiting at its post: its access is checked again
                              ///< when its data comes
    };

    /// Buffered output of one dest (no write was pending when the model produced it).
    struct OutputFifo {
        std::deque<std::vector<std::byte>> chunks;
        size_t head = 0;     ///< consumed bytes of chunks.front()
        uint64_t bytes = 0;  ///< total unconsumed bytes
    };

    /// A window reserve() handed to the model, awaiting commit().
    struct Reservation {
        bool active = false;
        bool into_write = false; ///< a window of the front pending write, else the fifo's last chunk
        size_t size = 0;
    };

    /// Per-ctid counters and state.
    struct CtidState {
        std::atomic<bool> active{false};
        std::atomic<int32_t> inflight{0};
        std::atomic<uint64_t> posted{0};
        std::atomic<uint64_t> bytes_read{0};
        std::atomic<uint64_t> bytes_written{0};
        std::atomic<uint64_t> page_faults{0};
        std::atomic<uint64_t> interrupts{0};
        std::atomic<uint64_t> interrupts_dropped{0};
        std::atomic<bool> has_error{false}; ///< an asynchronous error waits in errors_
        pid_t hpid = 0;
        bool foreign = false; ///< hpid is another process: host addresses are its memory (sim_foreign.cpp)
        // Polls that saw no completion (poll_completed): per class, the counter value its last poll saw, and how
        // many polls in a row saw their counter unchanged (reset by posts and clearCompleted).
        std::array<std::atomic<uint32_t>, N_WBACKS> poll_seen{};
        std::atomic<uint32_t> poll_idle{0};
        std::atomic<int64_t> idle_since_ns{0}; ///< when the current idle streak passed k_polls_before_yield
        std::atomic<uint64_t> last_claim_stamp{0}; ///< tick_stamp() of the ctid's last claim of deferred completions
        /// When the current idle streak first slept (0: it has not), and when it last asked whether the queue
        /// pair's peer is gone (check_gone_peer).
        std::atomic<int64_t> sleeping_since_ns{0};
        std::atomic<int64_t> peer_checked_ns{0};
        /// The owner's polls left until its stall-doctor check (set_poll_countdown): set to 1 before a poll sleeps.
        std::atomic<std::atomic<uint32_t>*> poll_countdown{nullptr};
        std::atomic<uint64_t> done{0}; ///< commands completed (command_done): invalidates trusted probes
    };

    /// The user-interrupt thread of one ctid.
    struct IrqThread {
        std::mutex mtx;
        std::condition_variable cv;
        std::deque<int32_t> values;
        bool stop = false;
        InterruptHandler handler;
        std::thread thread;
        HandlerExit exit; ///< waited for with a deadline: a handler that never returns does not hang the close
    };

    /// sniffer::CardPort: the packet sniffer model writes the card copy of `vaddr` (model lock held; sim_streams.cpp).
    void write(uint64_t vaddr, std::span<const std::byte> data) override;

    // validation (sim_commands.cpp)
    /// Throws unless `ctid` is registered on this vFPGA.
    void check_ctid(int32_t ctid, const char* call) const;
    /// Throws unless the vFPGA may access [addr, addr+len) (faulting valid process memory into the TLB).
    void check_range(int32_t ctid, uint64_t addr, uint64_t len, bool write, const char* what);
    /// The page-fault path of check_range: maps the pages of valid process memory around a range into the TLB.
    void fault_in(int32_t ctid, uint64_t addr, uint64_t len, bool write, bool write_denied, const char* what);
    /// Throws unless both sides of a local command are valid for this shell and mapped.
    void validate_local(const Command& cmd);
    /// Whether the TLB still covers the range (a buffer may be freed between post and execution).
    bool still_mapped(uint64_t addr, uint64_t len, bool write) const;

    // the memory of a ctid registered for another process (sim_foreign.cpp)
    /// check_range of a foreign ctid: [addr, addr+len) must be mapped (writable if `write`) in its process.
    /// `call` names the API call in the error.
    void check_foreign_range(int32_t ctid, uint64_t addr, uint64_t len, bool write, const char* what,
                             const char* call = "invoke");
    /// Feeds host input of a foreign ctid to the model through a staging buffer (model lock held); a failure
    /// to read the process becomes the ctid's pending error.
    void feed_foreign(coyote::sim::InputChunk& in, const SgSide& src, bool last);
    /// The staging buffer of `w`'s dest: a foreign write's window, which fill_front copies out with flush_foreign.
    std::span<std::byte> staging_window(PendingWrite& w, uint64_t max);
    void flush_foreign(PendingWrite& w, uint64_t n) noexcept;
    /// migrate() of a foreign ctid (range checked).
    void migrate_foreign(int32_t ctid, uint64_t addr, uint64_t len, bool to_card);

    // engine (sim_commands.cpp; model lock held unless stated)
    /// post() of an RDMA command: handed to the NIC.
    PostStatus post_remote(const Command& cmd, CtidState& st);
    /// Runs `cmd` in the posting thread when nothing is queued and it is small, else queues it for the worker.
    void run_or_queue(const Command& cmd);
    /// Runs `cmd` in the calling thread; `q` (the queue lock, held on entry and on return) is released meanwhile.
    void run_inline(std::unique_lock<std::mutex>& q, const Command& cmd);
    /// Takes the oldest queued command (queue lock held, queue not empty).
    Command pop_command();
    /// The worker thread: runs queued commands in order while no inline poster runs one.
    /// The NIC's work kept off the data path (Nic::housekeeping) when the NIC asked for it (wake_housekeeping); the
    /// worker calls it unlocked whenever it wakes.
    void housekeeping() noexcept;
    void worker_loop();
    /// Runs the oldest queued command in the calling thread if neither the worker nor an inline poster is busy;
    /// a poller waiting on completions makes progress itself instead of waiting for the worker to wake up.
    bool progress_one() noexcept;
    /// post() found the command FIFO full: runs a queued command in the calling thread if it can, else sleeps until
    /// a slot is free (without `inflight`: until the ctid's RDMA counters move; at most k_poll_sleep_ns), so that
    /// the caller's retry finds room without spinning or yielding its CPU to unrelated processes. With `inflight`
    /// (a ctid's commands in flight), it runs queued commands until that count is below k_max_inflight or none can
    /// run.
    void wait_for_room(int32_t ctid, const std::atomic<int32_t>* inflight = nullptr) noexcept;
    /// Manual progress of a thread waiting on this vFPGA (polling completions, or posting into a full FIFO): the
    /// oldest queued local command, unless another thread is at it, and the frames that arrived whole on the TCP
    /// wire's connections (Nic::progress; each connection's reader thread takes the rest). Inline: every poll runs it.
    void drive_progress() noexcept {
        if (queue_nonempty_.load(std::memory_order_relaxed)) {
            poller_seen_.store(true, std::memory_order_relaxed);
            (void)progress_one();
        }
        if (nic_live_ != nullptr && nic_live_->load(std::memory_order_relaxed)) nic_->progress();
        flush_own_deferred();
    }
    /// Copies the WRITEs initiators offered `ctid` (Nic::pull; two loads when there are none) and marks the ctid
    /// polled for the NIC (Nic::polled_flag). A LOCAL_WRITE poll (`stamp`) also shows initiators that the ctid polls,
    /// at most every k_pull_stamp_ticks.
    void pull_offered(int32_t ctid, bool stamp) noexcept;
    /// Counts this process's deferred WRITEs at their targets (a relaxed load when there are none).
    void flush_own_deferred() noexcept {
        if (nic_deferred_ != nullptr && nic_deferred_->load(std::memory_order_relaxed) != 0) nic_->flush_deferred();
    }
    /// Runs a local command of a registered ctid; a failure becomes the ctid's pending error.
    void execute(const Command& cmd) noexcept;
    void execute_local(const Command& cmd);
    /// Feeds the read side of a command to the model (in card-memory windows for STRM_CARD).
    /// Returns whether the model holds the input (InputHold): its read then completes at release_input, and
    /// `completes` (a LOCAL_READ) says whether that also completes the command.
    bool deliver_input(int32_t ctid, const SgSide& src, bool last, bool completes);
    /// Counts a read whose data the model consumed (or copied); completes a LOCAL_READ command.
    void finish_read(int32_t ctid, uint64_t len, bool last, bool completes) noexcept;
    // InputHold of the ShellPort (model lock held)
    bool hold_input() noexcept;
    void release_input(uint32_t dest) noexcept;
    /// Asks the model to copy what it holds (nothing queued could bring the partner data, or memory goes away).
    void spill_held() noexcept;
    /// Keeps the first asynchronous error of `ctid` for its next poll.
    void record_error(int32_t ctid, std::error_code code, const std::string& msg) noexcept;
    /// record_error() of the exception being handled; `what` names the failing step.
    void record_exception(int32_t ctid, const std::string& what) noexcept;

    // output streams (sim_streams.cpp; model lock held)
    /// Queues the write side of a command on its dest and asks the model for its output.
    void add_pending_write(int32_t ctid, const SgSide& dst, bool last);
    /// The next at most `max` unfilled bytes of `w` (host memory or a card-memory window).
    std::span<std::byte> write_window(PendingWrite& w, uint64_t max);
    /// write_window of a write whose memory is another process's, must be checked again, or failed (the dest's
    /// staging buffer then takes the data, which is dropped).
    std::span<std::byte> checked_window(PendingWrite& w, uint64_t n);
    /// Adds `n` bytes to the front pending write of `q`; completes and pops it when full.
    void fill_front(std::deque<PendingWrite>& q, uint64_t n);
    /// Counts a filled write and completes its command.
    void finish_write(PendingWrite& w);
    /// Moves buffered output of `dest` into its pending writes.
    void drain_fifo_into_writes(uint32_t dest);
    /// Shell::push, Shell::reserve and Shell::commit of the model.
    void output_push(uint32_t dest, std::span<const std::byte> data);
    std::span<std::byte> output_reserve(uint32_t dest, size_t max);
    void output_commit(uint32_t dest, size_t n);
    /// Buffers output no write waits for (up to k_output_buffer_cap, then drops and says so once).
    void buffer_output(uint32_t dest, std::span<const std::byte> data);
    /// Drops the window of `dest` that the model reserved but did not commit.
    void drop_reservation(uint32_t dest) noexcept;
    /// Drops windows the model reserved but did not commit (after every model callback).
    void discard_reservations() noexcept;
    /// Cancels the pending writes into [start, end) (their buffer goes away) with an error for their ctid.
    void abort_writes_in(uint64_t start, uint64_t end, const std::string& why);
    /// Cancels every pending write (an error for its ctid) and drops buffered output: the app was replaced.
    void reset_streams() noexcept;

    // completions (inline: every command)
    /// The completion counter of class `cls` of `ctid` in the shared state.
    std::atomic<uint32_t>& wback(CmplClass cls, int32_t ctid) const noexcept {
        return state_->wback[static_cast<uint32_t>(cls) * N_CTID_MAX + static_cast<uint32_t>(ctid)];
    }
    void bump(int32_t ctid, CmplClass cls) noexcept {
        wback(cls, ctid).fetch_add(1, std::memory_order_seq_cst); // see signal_completion
        signal_completion(*state_);
    }
    /// One command of `ctid` left the command FIFO.
    void command_done(int32_t ctid) noexcept {
        auto& st = ctids_[static_cast<size_t>(ctid)];
        st.done.fetch_add(1, std::memory_order_release);
        if (st.inflight.fetch_sub(1, std::memory_order_seq_cst) <= 0) st.inflight.store(0, std::memory_order_seq_cst);
        signal_completion(*state_); // a poster sleeping in wait_for_room waits for this slot
    }
    /// The process-mapping probe of check_range: nullptr if [start, end) is mapped with read (and, if `write`,
    /// write) access, else the reason it is not. Skipped if the range is the one probed for a command of `ctid`
    /// that is still in flight (no command of `ctid` completed since it was accepted): a buffer must stay mapped
    /// while a command on it is in flight, and if it is not, that command fails as it would without the cache. So
    /// a range unmapped (or remapped without the access) after its commands completed is refused at the next post.
    const char* probe_mapped(int32_t ctid, uint64_t start, uint64_t end, bool write) noexcept;
    /// post() accepted a command of `ctid`: the range its probe found mapped (if any) stays trusted while it is in
    /// flight.
    void trust_probe(int32_t ctid) noexcept;
    /// Drops a probe no accepted command vouches for (validate_local starts with it).
    static void forget_untrusted_probe() noexcept;

    /// Counts the polls of `ctid` whose counter of class `cls` stayed at `seen`. Past k_polls_before_yield the
    /// poller keeps polling for spin_ns_: the first k_hot_spin_ns (sim_device.cpp) without a system call unless
    /// the vFPGA serves TCP wire connections, then with a sched_yield between polls (a completion that comes
    /// meanwhile is seen at once, with no wake-up to wait for: on a VM a futex wake costs 10 - 20 us; and the yield
    /// hands the core to a peer the scheduler placed on it, as it does with a waker and its wakee), then sleeps at
    /// every poll until that counter moves or k_poll_sleep_ns pass: a peer process or one of our threads that will
    /// deliver the completion gets the CPU now. It spins while local commands are queued or running on this vFPGA
    /// (it runs them itself). Past k_polls_before_yield a LOCAL_WRITE poll claims deferred completions first and
    /// stays hot if it found any. Inline: every poll runs it.
    void note_idle_poll(int32_t ctid, CmplClass cls, uint32_t seen) noexcept;
    /// A poller about to sleep on a LOCAL_WRITE or RDMA_READ counter that only the queue pair's peer can move (no
    /// local command of `ctid` in flight): once it has slept k_gone_peer_after, it asks the NIC every
    /// k_gone_peer_period whether that peer exited, and records a peer_gone error for the next poll if so.
    void check_gone_peer(int32_t ctid, CmplClass cls, uint32_t seen) noexcept;
    /// Claims the LOCAL_WRITE completions initiators deferred for `ctid` once k_claim_period_ticks passed since the
    /// last claim, so that they never wait for the initiator to poll. Inline: every LOCAL_WRITE poll runs it.
    void claim_when_due(int32_t ctid) noexcept;

    // interrupts (sim_device.cpp)
    /// Shell::raise_interrupt: hands `value` to the ctid's interrupt thread (counted as dropped without one).
    void raise_interrupt(int32_t ctid, int32_t value);
    /// Stops and joins `t` (detaches it when called from its own handler).
    void stop_irq_thread(std::shared_ptr<IrqThread> t) noexcept;
    /// Installs `fresh` (may be null) as the interrupt thread of `ctid` and stops the previous one.
    void replace_irq_thread(int32_t ctid, std::shared_ptr<IrqThread> fresh) noexcept;
    /// Body of an interrupt thread: runs the handler on each raised value until stopped.
    static void irq_loop(IrqThread& t);

    // configuration registers (sim_registers.cpp)
    /// Posts the command of a CTRL register write (waiting while the command FIFO is full).
    void post_from_registers(uint64_t src_addr, uint64_t src_ctrl, uint64_t dst_addr, uint64_t dst_ctrl);

    // identity and configuration
    const uint32_t device_;
    const int32_t vfid_;
    /// A number no other SimDevice of the process had (keys the thread-local probe cache).
    static uint64_t next_serial() noexcept;
    const uint64_t serial_ = next_serial();
    const ShellConfig cfg_;
    const NetIdentity ident_;
    /// How long an idle poller spins (past k_polls_before_yield) before it sleeps (poll_spin_budget_ns()).
    const int64_t spin_ns_;

    // shared state segment
    ShmSegment state_seg_;
    SharedState* state_ = nullptr;

    // ctids
    mutable std::mutex ctid_mtx_;
    std::array<CtidState, N_CTID_MAX> ctids_;
    mutable std::mutex err_mtx_;
    std::array<std::optional<std::pair<std::error_code, std::string>>, N_CTID_MAX> errors_;

    // memory
    Tlb tlb_;
    struct AllocRecord {
        int32_t ctid = 0;
        Allocation info;
        Mapping map;
        ShmSegment seg;
        std::string shm_name;
    };
    /// Unmaps a buffer and unlinks its shm segment (if any).
    static void release_record(AllocRecord& rec) noexcept;
    mutable std::mutex alloc_mtx_;
    std::map<uint64_t, AllocRecord> allocs_;
    std::atomic<uint64_t> remote_buffers_{0};

    // user control registers
    std::array<std::atomic<uint64_t>, coyote::sim::k_csr_words> csr_{};

    // configuration registers written by the host
    mutable std::mutex cnfg_mtx_;
    std::map<uint32_t, std::array<uint64_t, 4>> cnfg_;
    std::array<uint64_t, 4> legacy_cmd_{}; // VADDR_RD, CTRL_2, VADDR_WR staged for CTRL

    // the hardware: model, output streams, pending writes, card memory
    mutable std::mutex hw_mtx_;
    ModelHandle model_;
    /// Host input chunks the model holds, per dest in stream order (InputHold).
    struct HeldInput {
        int32_t ctid;
        uint64_t len;
        bool last;
        bool completes;
    };
    std::array<std::deque<HeldInput>, coyote::sim::k_n_dests> held_;
    std::size_t n_held_ = 0;
    bool hold_offered_ = false; ///< the current on_input may be held
    bool hold_taken_ = false;
    std::unique_ptr<ShellPort> port_;
    std::array<std::deque<PendingWrite>, coyote::sim::k_n_dests> pending_;
    std::array<OutputFifo, coyote::sim::k_n_dests> fifo_;
    std::array<Reservation, coyote::sim::k_n_dests> reservation_;
    CardMemory card_;
    uint64_t dropped_output_ = 0;
    std::vector<std::byte> foreign_in_;                                        ///< input staging (foreign ctids)
    std::array<std::vector<std::byte>, coyote::sim::k_n_dests> foreign_out_; ///< output staging per dest

    // device-wide statistics (STAT registers)
    std::atomic<uint64_t> sent_local_reads_{0}, sent_local_writes_{0}, sent_rdma_reads_{0}, sent_rdma_writes_{0};

    // command queue and worker
    std::mutex q_mtx_;
    std::condition_variable q_cv_;
    std::deque<Command> queue_;
    std::atomic<bool> queue_nonempty_{false}; ///< lock-free hint for the polling path
    /// A thread polled while commands were queued: the worker leaves the queue to it while it keeps polling.
    std::atomic<bool> poller_seen_{false};
    /// worker_busy_, readable without the queue lock (the polling path spins instead of yielding meanwhile).
    std::atomic<bool> worker_running_{false};
    bool worker_busy_ = false;
    /// The worker waits for a notification (no poller seen lately): posts and inline runs notify only then.
    bool worker_parked_ = false;
    /// The NIC asked for housekeeping (wake_housekeeping). Set without the queue lock: a wake-up lost to a worker
    /// about to park only leaves the NIC to do the work itself later (Watch, k_watch_inline_after).
    std::atomic<bool> housekeeping_wanted_{false};
    int inline_active_ = 0;
    bool stop_ = false;
    std::thread worker_;

    // user interrupts
    mutable std::mutex irq_mtx_;
    std::array<std::shared_ptr<IrqThread>, N_CTID_MAX> irq_;

    // the NIC (created last, destroyed first)
    std::unique_ptr<Nic> nic_;
    /// The NIC's pending-error flags (null without a NIC): the polling path skips the NIC while they are clear.
    std::array<const std::atomic<bool>*, N_CTID_MAX> nic_pending_{};
    const std::atomic<bool>* nic_live_ = nullptr; ///< the NIC's progress_flag (null without RDMA)
    const std::atomic<uint64_t>* nic_deferred_ = nullptr; ///< the NIC's deferred_flag (null without RDMA)
    std::array<net::PullLine*, N_CTID_MAX> nic_pull_{}; ///< the NIC's pull lines (null without RDMA)
    std::array<std::atomic<bool>*, N_CTID_MAX> nic_polled_{}; ///< the NIC's polled flags (null without RDMA)
};

}  // namespace coyote::detail::sim
