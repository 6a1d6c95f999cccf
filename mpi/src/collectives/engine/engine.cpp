// coyote-mpi collectives: channels over queue pairs, credit flow control, message matching, schedules and
// point-to-point progress (see engine.hpp for the buffer layout).
#include "collectives/engine/engine.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/collectives.hpp>

namespace coyote::detail::coll {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t k_credit_in = 0;
constexpr uint64_t k_credit_stage = 8;
constexpr uint64_t k_probe_target = 16;
constexpr uint64_t k_probe_source = 24;
constexpr uint64_t k_abort_in = 64;    // written by a peer that failed: (reporter + 1) << 32 | (dead rank + 1)
constexpr uint64_t k_abort_stage = 72;
constexpr uint64_t k_spin_passes = 64;  // idle schedule passes before yielding
constexpr uint64_t k_flush_passes = 16; // yielding passes between credit flushes / p2p progress
constexpr uint32_t k_windows_per_channel = 4; // direct-placement windows a channel's schedules hold at once
static_assert(k_windows_per_channel <= std::tuple_size_v<decltype(Channel::wins)>,
              "windows in use occupy slots of the window cache");
constexpr uint32_t k_ring_write_min = 16u << 10; // copy chunks of at least this size go into the peer's ring unstaged
constexpr uint64_t k_idle_copy_piece = 64u << 10; // idle copy per idle schedule pass
constexpr uint64_t k_idle_copy_max = 256u << 10;  // larger idle copies run after the schedule
constexpr uint32_t k_send_burst = 4;              // chunks a send step posts per schedule pass

// Link messages (MPI, on the engine's own communicator).
constexpr uint32_t k_link_magic = 0x314b4e4c; // "LNK1"
constexpr uint32_t k_link_hello = 1;          // blob: the sender's exportQp
constexpr uint32_t k_link_ready = 2;          // the sender connected to our blob
constexpr uint32_t k_link_refuse = 3;         // text: why the sender cannot open a queue pair
constexpr uint32_t k_link_max_blob = 64u << 10;
constexpr auto k_link_poll = std::chrono::milliseconds(1); // MPI poll interval while no link is being opened
constexpr auto k_link_drain = std::chrono::seconds(2);     // teardown: wait this long for owed link messages

struct LinkMsg {
    uint32_t magic = k_link_magic;
    uint32_t type = 0;
    int32_t src = -1;
    int32_t dst = -1;
    uint64_t buffer_size = 0;
    uint32_t blob_len = 0;
    uint32_t reserved = 0;
    char text[224] = {};
};
static_assert(sizeof(LinkMsg) == 256);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Copies up to `max` bytes of `c` and advances it.
void run_idle_copy(IdleCopy& c, uint64_t max = ~0ull) noexcept {
    const uint64_t n = std::min(max, c.bytes);
    if (n != 0 && c.dst != c.src) std::memcpy(c.dst, c.src, n);
    c.dst += n;
    c.src += n;
    c.bytes -= n;
}

/// Payload bytes a message carries in its slot (a directly placed chunk carries none).
uint32_t carried(const MsgHeader& h) noexcept {
    return h.kind == k_kind_coll && h.first == k_first_direct ? 0 : h.len;
}

uint64_t load_u64(const std::byte* p) noexcept {
    return std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(p)).load(std::memory_order_acquire);
}

std::vector<int> log_peers(int rank, int size) {
    std::vector<int> out;
    for (int d = 1; d < size; d <<= 1) {
        out.push_back((rank + d) % size);
        out.push_back((rank - d % size + size) % size);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    out.erase(std::remove(out.begin(), out.end(), rank), out.end());
    return out;
}

mpi::WiringOptions wiring_for(const mpi::Communicator& comm, const EngineConfig& cfg) {
    mpi::WiringOptions wo;
    wo.buffer_size = cfg.buffer_size;
    if (cfg.all_peers) {
        wo.pattern = mpi::PeerPattern::all;
    } else {
        wo.pattern = mpi::PeerPattern::explicit_list;
        wo.peers = log_peers(comm.rank(), comm.size());
    }
    return wo;
}

std::string ranks_text(const std::vector<int>& r) {
    std::string s;
    for (std::size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + std::to_string(r[i]);
    return s;
}

}  // namespace

const char* kind_name(CollKind k) noexcept {
    switch (k) {
    case CollKind::barrier: return "barrier";
    case CollKind::broadcast: return "broadcast";
    case CollKind::reduce: return "reduce";
    case CollKind::allreduce: return "allreduce";
    case CollKind::gather: return "gather";
    case CollKind::allgather: return "allgather";
    case CollKind::scatter: return "scatter";
    case CollKind::reduce_scatter: return "reduce_scatter";
    case CollKind::alltoall: return "alltoall";
    }
    return "unknown collective";
}

std::string describe(const Signature& s) {
    std::string out = kind_name(s.kind);
    out += " of " + std::to_string(s.count) + " " +
           mpi::name(static_cast<mpi::Datatype>(s.dtype));
    if (s.root >= 0) out += " root " + std::to_string(s.root);
    if (s.kind == CollKind::reduce || s.kind == CollKind::allreduce || s.kind == CollKind::reduce_scatter)
        out += std::string(" op ") + mpi::name(static_cast<mpi::Op>(s.op));
    return out;
}

// ---- construction -----------------------------------------------------------------------------------

Engine::Engine(const mpi::Communicator& comm, const mpi::DeviceAssignment& device, const EngineConfig& cfg)
    : comm_(comm.share()), rank_(comm.rank()), size_(comm.size()), cfg_(cfg), qps_(comm, device, wiring_for(comm, cfg)),
      device_(device), owner_(std::this_thread::get_id()) {
    // More ranks than cores on this node: a waiting rank's peer is often descheduled, so yield at once.
    const unsigned cores = std::thread::hardware_concurrency();
    spin_passes_ = cores != 0 && static_cast<unsigned>(comm.local_size()) > cores ? 1 : k_spin_passes;
    bootstrap_ = mpi::BootstrapOptions::from_env();
    bootstrap_.on_timeout = mpi::OnTimeout::throw_error;
    const uint64_t slot_bytes = cfg.chunk_bytes + k_header_bytes;
    const uint64_t ring = (cfg.buffer_size - k_control_bytes) / 2;
    slots_ = static_cast<uint32_t>(std::min<uint64_t>(ring / slot_bytes, 1024));
    payload_ = static_cast<uint32_t>(cfg.chunk_bytes);
    chan_of_.assign(static_cast<std::size_t>(size_), nullptr);
    for (int p : qps_.peers())
        chan_of_[static_cast<std::size_t>(p)] =
            &chans_.emplace(p, make_channel(p, qps_.thread(p), static_cast<std::byte*>(qps_.buffer(p)))).first->second;
    MPI_Comm dup = MPI_COMM_NULL;
    mpi::check_mpi(MPI_Comm_dup(comm.get(), &dup), "MPI_Comm_dup", "collectives: communicator for queue-pair links");
    link_comm_ = std::make_shared<mpi::detail::CommHandle>(dup);
    // Nobody writes before every rank has taken its counter baselines.
    mpi::arrive(comm, "collectives ready", bootstrap_);
}

Channel Engine::make_channel(int peer, cThread& thread, std::byte* buf) {
    Channel c;
    c.peer = peer;
    c.thread = &thread;
    c.buf = buf;
    c.slots = slots_;
    c.slot_bytes = payload_ + k_header_bytes;
    c.recv_base = k_control_bytes;
    c.send_base = k_control_bytes + slots_ * c.slot_bytes;
    std::memset(c.buf, 0, k_control_bytes);
    c.arrive_base = thread.checkCompleted(CoyoteOper::LOCAL_WRITE);
    c.write_base = thread.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
    return c;
}

Engine::~Engine() {
    {
        // Queued non-blocking collectives still run (each bounded by the deadline), then the thread ends.
        std::lock_guard lk(async_mtx_);
        async_stop_ = true;
    }
    async_cv_.notify_all();
    if (async_thread_.joinable()) async_thread_.join();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (!broken_ && size_ > 1) {
        // Collective teardown: no rank frees its buffers while another may still write into them.
        MPI_Request req = MPI_REQUEST_NULL;
        if (MPI_Ibarrier(comm_->get(), &req) == MPI_SUCCESS) {
            const auto deadline = Clock::now() + cfg_.timeout;
            int flag = 0;
            while (MPI_Test(&req, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && !flag) {
                // A peer never arrived: leave the request (freeing an active collective request is not allowed).
                if (Clock::now() > deadline) break;
                ::sched_yield();
            }
        }
    }
    // Link messages still owed to us (a peer's ready we never polled for) are received so that none is left in
    // the communicator; our own sends are completed. Both are bounded.
    const auto drain_until = Clock::now() + k_link_drain;
    try {
        std::lock_guard lk(mtx_);
        for (;;) {
            progress_links(true, true);
            if ((links_waiting_ == 0 && link_sends_.empty()) || Clock::now() > drain_until) break;
            ::sched_yield();
        }
    } catch (...) {
        // teardown never throws; a malformed or failed link message changes nothing here
    }
    for (auto& s : link_sends_) {
        // An eager send not complete by now: let MPI finish it; its buffer is left allocated on purpose.
        if (s.req != MPI_REQUEST_NULL) {
            MPI_Request_free(&s.req);
            new std::vector<std::byte>(std::move(s.data));
        }
    }
    link_sends_.clear();
}

void Engine::submit(std::shared_ptr<OpState> op, std::function<void()> job) {
    {
        std::lock_guard lk(async_mtx_);
        async_q_.push_back(AsyncJob{std::move(op), std::move(job)});
        if (!async_thread_.joinable()) async_thread_ = std::thread([this] { run_async_jobs(); });
    }
    async_cv_.notify_one();
}

void Engine::run_async_jobs() {
    std::unique_lock lk(async_mtx_);
    for (;;) {
        async_cv_.wait(lk, [this] { return async_stop_ || !async_q_.empty(); });
        if (async_q_.empty()) return; // stopping, nothing left
        AsyncJob j = std::move(async_q_.front());
        async_q_.pop_front();
        lk.unlock();
        try {
            j.job();
        } catch (...) {
            j.op->error = std::current_exception();
        }
        j.op->done.store(true, std::memory_order_release);
        lk.lock();
    }
}

void Engine::check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size_ || peer == rank_)
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(peer) + " is not another rank of this communicator (size " +
                        std::to_string(size_) + ", this rank " + std::to_string(rank_) + ")");
}

Channel& Engine::chan(int peer, const char* what) {
    if (peer >= 0 && peer < size_)
        if (Channel* c = chan_of_[static_cast<std::size_t>(peer)]) return *c;
    check_peer(peer, what);
    throw_error(Errc::protocol, what,
                "no queue pair from rank " + std::to_string(rank_) + " to rank " + std::to_string(peer) +
                    " (collective schedules use the wired peers rank +- 2^k only)");
}

std::vector<int> Engine::link_peers() {
    std::lock_guard lk(mtx_);
    std::vector<int> out;
    for (const auto& [p, l] : links_)
        if (l.thread) out.push_back(p);
    return out;
}

Channel& Engine::p2p_chan(int peer, const char* what) {
    check_peer(peer, what);
    if (Channel* c = chan_of_[static_cast<std::size_t>(peer)]) {
        if (c->lazy) {
            const Link& l = links_.at(peer);
            if (l.error) std::rethrow_exception(l.error);
        }
        return *c;
    }
    if (!owner_thread())
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(rank_) + " has no queue pair to rank " + std::to_string(peer) +
                        " yet: the first message between them opens one over MPI, which only the thread that "
                        "created the Collectives object may call");
    Link& l = links_[peer];
    if (l.error) std::rethrow_exception(l.error);
    open_link(peer, l);
    send_link_msg(peer, k_link_hello, l.blob, {});
    l.hello_sent = true;
    ++links_waiting_;
    return *chan_of_[static_cast<std::size_t>(peer)];
}

// ---- links (mtx_ held) ---------------------------------------------------------------------------

void Engine::open_link(int peer, Link& l) {
    std::unique_ptr<cThread> t;
    try {
        t = std::make_unique<cThread>(device_.vfid, ::getpid(), device_.device);
    } catch (const Error& e) {
        if (e.code() != make_error_code(Errc::resource_exhausted)) throw;
        throw_error(Errc::resource_exhausted, "collectives",
                    "rank " + std::to_string(rank_) + " cannot open a queue pair to rank " + std::to_string(peer) +
                        " for point-to-point messages: every ctid of vFPGA " + std::to_string(device_.vfid) +
                        " on device " + std::to_string(device_.device) + " is taken (" +
                        std::to_string(chans_.size()) + " queue pairs of this Collectives object) [" + e.what() + "]");
    }
    auto* buf = static_cast<std::byte*>(
        t->getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(cfg_.buffer_size), true}));
    Channel c = make_channel(peer, *t, buf);
    c.lazy = true;
    c.ready = false;
    l.blob = t->exportQp();
    if (l.blob.empty() || l.blob.size() > k_link_max_blob)
        throw_error(Errc::protocol, "collectives", "exportQp gave a blob of " + std::to_string(l.blob.size()) + " bytes");
    l.thread = std::move(t);
    chan_of_[static_cast<std::size_t>(peer)] = &chans_.emplace(peer, std::move(c)).first->second;
}

void Engine::send_link_msg(int peer, uint32_t type, const std::vector<std::byte>& blob, const std::string& text) {
    LinkMsg m;
    m.type = type;
    m.src = rank_;
    m.dst = peer;
    m.buffer_size = cfg_.buffer_size;
    m.blob_len = static_cast<uint32_t>(blob.size());
    std::strncpy(m.text, text.c_str(), sizeof(m.text) - 1);
    LinkSend s;
    s.data.resize(sizeof(m) + blob.size());
    std::memcpy(s.data.data(), &m, sizeof(m));
    if (!blob.empty()) std::memcpy(s.data.data() + sizeof(m), blob.data(), blob.size());
    mpi::check_mpi(MPI_Isend(s.data.data(), static_cast<int>(s.data.size()), MPI_BYTE, peer, k_link_tag,
                             link_comm_->get(), &s.req),
                   "MPI_Isend", "queue-pair link message to rank " + std::to_string(peer));
    link_sends_.push_back(std::move(s));
}

void Engine::reap_link_sends() {
    while (!link_sends_.empty()) {
        int flag = 0;
        mpi::check_mpi(MPI_Test(&link_sends_.front().req, &flag, MPI_STATUS_IGNORE), "MPI_Test", "queue-pair link message");
        if (!flag) break;
        link_sends_.pop_front();
    }
}

void Engine::fail_link(int peer, std::exception_ptr error) {
    Link& l = links_[peer];
    if (l.hello_sent && !l.peer_ready && !l.error) --links_waiting_;
    l.error = error;
    auto it = chans_.find(peer);
    if (it == chans_.end()) return;
    Channel& c = it->second;
    for (auto* q : {&c.sendq, &c.posted}) {
        for (auto& op : *q) {
            op->error = error;
            op->done.store(true, std::memory_order_release);
        }
        q->clear();
    }
}

void Engine::progress_links(bool force, bool defer_errors) {
    if (!owner_thread()) return;
    if (!defer_errors && link_error_) {
        // Met inside a collective earlier: reported to the next point-to-point call.
        auto e = std::exchange(link_error_, nullptr);
        std::rethrow_exception(e);
    }
    const auto now = Clock::now();
    if (!force && links_waiting_ == 0 && now < next_link_poll_) return;
    next_link_poll_ = now + k_link_poll;
    if (!defer_errors) {
        poll_links();
        return;
    }
    // Inside a collective: a failing MPI call or a malformed link message is not the collective's failure (a
    // dead peer, for one, must be reported by the collective as such).
    try {
        poll_links();
    } catch (...) {
        if (!link_error_) link_error_ = std::current_exception();
    }
}

void Engine::poll_links() {
    reap_link_sends();
    for (;;) {
        int flag = 0;
        MPI_Status st;
        mpi::check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, k_link_tag, link_comm_->get(), &flag, &st), "MPI_Iprobe",
                       "queue-pair link messages");
        if (!flag) break;
        int n = 0;
        mpi::check_mpi(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count", "queue-pair link message");
        if (n < 0 || static_cast<std::size_t>(n) > sizeof(LinkMsg) + k_link_max_blob)
            throw_error(Errc::protocol, "collectives",
                        "malformed queue-pair link message from rank " + std::to_string(st.MPI_SOURCE) + ": " +
                            std::to_string(n) + " bytes, more than a hello can carry");
        std::vector<std::byte> msg(static_cast<std::size_t>(std::max(n, 0)));
        mpi::check_mpi(MPI_Recv(msg.data(), n, MPI_BYTE, st.MPI_SOURCE, k_link_tag, link_comm_->get(), MPI_STATUS_IGNORE),
                       "MPI_Recv", "queue-pair link message from rank " + std::to_string(st.MPI_SOURCE));
        on_link_msg(st.MPI_SOURCE, msg.data(), msg.size());
    }
}

void Engine::on_link_msg(int from, const std::byte* msg, std::size_t bytes) {
    LinkMsg m;
    auto malformed = [&](const std::string& why) {
        throw_error(Errc::protocol, "collectives",
                    "malformed queue-pair link message from rank " + std::to_string(from) + ": " + why);
    };
    if (bytes < sizeof(LinkMsg)) malformed(std::to_string(bytes) + " bytes, shorter than its 256-byte header");
    std::memcpy(&m, msg, sizeof(m));
    if (m.magic != k_link_magic) malformed("bad magic");
    if (m.src != from || m.dst != rank_)
        malformed("it names rank " + std::to_string(m.src) + " -> rank " + std::to_string(m.dst));
    if (m.blob_len != bytes - sizeof(LinkMsg) || m.blob_len > k_link_max_blob)
        malformed("blob length " + std::to_string(m.blob_len) + " in a message of " + std::to_string(bytes) + " bytes");
    if (m.type < k_link_hello || m.type > k_link_refuse) malformed("unknown type " + std::to_string(m.type));
    if (m.buffer_size != cfg_.buffer_size)
        malformed("buffer size " + std::to_string(m.buffer_size) + " where this rank uses " +
                  std::to_string(cfg_.buffer_size));
    if (qps_.has_peer(from)) malformed("a link was requested although the ranks are wired");
    Link& l = links_[from];
    if (m.type == k_link_refuse) {
        const std::string reason(m.text, strnlen(m.text, sizeof(m.text)));
        fail_link(from, std::make_exception_ptr(Error(
                            make_error_code(Errc::resource_exhausted), "collectives",
                            "rank " + std::to_string(from) + " cannot open a queue pair for rank " +
                                std::to_string(rank_) + ": " + reason)));
        return;
    }
    if (m.type == k_link_ready) {
        if (l.error) return; // this side failed (connecting to the peer's blob) and refused already
        if (!l.connected || l.peer_ready) malformed(l.peer_ready ? "a second ready" : "ready before its hello");
        l.peer_ready = true;
        --links_waiting_;
        chans_.at(from).ready = true;
        return;
    }
    // hello
    if (l.connected) malformed("a second hello");
    if (l.error) return; // this side failed or was refused; the peer has been (or is being) told
    if (!l.hello_sent) {
        try {
            open_link(from, l);
        } catch (const std::exception& e) {
            send_link_msg(from, k_link_refuse, {}, e.what());
            l.error = std::current_exception();
            return;
        }
        send_link_msg(from, k_link_hello, l.blob, {});
        l.hello_sent = true;
        ++links_waiting_;
    }
    try {
        l.thread->connectQp(std::span<const std::byte>(msg + sizeof(LinkMsg), m.blob_len));
    } catch (const std::exception& e) {
        send_link_msg(from, k_link_refuse, {}, std::string("connecting failed: ") + e.what());
        fail_link(from, std::current_exception());
        return;
    }
    l.connected = true;
    send_link_msg(from, k_link_ready, {}, {});
}

// ---- channel primitives (mtx_ held) ----------------------------------------------------------------

uint32_t Engine::arrived(Channel& c) {
    try {
        return c.thread->checkCompleted(CoyoteOper::LOCAL_WRITE) - c.arrive_base;
    } catch (const Error& e) {
        peer_failed(c, e);
    }
}

uint32_t Engine::free_slots(Channel& c) {
    const uint64_t credit = load_u64(c.buf + k_credit_in);
    const uint64_t outstanding = c.sent - credit;
    if (outstanding > c.slots)
        throw_error(Errc::protocol, "collectives",
                    "rank " + std::to_string(c.peer) + " returned credit " + std::to_string(credit) + " for " +
                        std::to_string(c.sent) + " messages sent");
    uint32_t free = c.slots - static_cast<uint32_t>(outstanding);
    if (free == 0) return 0;
    // The staging slot of message `sent` was last used by message sent - slots: its WRITE must be complete
    // (always so on the shm wire; the TCP wire completes on the peer's ACK).
    if (c.sent >= c.slots) {
        const uint32_t done = c.thread->checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) - c.write_base;
        if (static_cast<uint32_t>(c.sent - c.slots) >= done) return 0;
    }
    return free;
}

bool Engine::can_send(Channel& c, uint32_t reserve) { return free_slots(c) >= reserve; }

std::byte* Engine::staging(Channel& c) noexcept {
    return c.buf + c.send_base + slot_offset(c) + k_header_bytes;
}

void Engine::peer_failed(Channel& c, const Error& e) {
    if (e.code() != make_error_code(Errc::peer_gone) && e.code() != make_error_code(Errc::remote_rejected)) throw;
    lost_peer(c, "collectives", e);
}

void Engine::lost_peer(Channel& c, const std::string& what, const Error& e) {
    broken_ = true;
    check_abort(what);
    notify_failure(c.peer);
    throw_error(Errc::peer_gone, what,
                "rank " + std::to_string(c.peer) + " is gone (its queue pair failed: " + e.what() + ")");
}

void Engine::post(Channel& c, MsgHeader h, bool header_only) {
    h.seq = c.sent;
    const uint64_t slot = slot_offset(c);
    std::memcpy(c.buf + c.send_base + slot, &h, sizeof(h));
    try {
        c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                         rdmaSg{.local_offs = c.send_base + slot, .remote_offs = c.recv_base + slot,
                                .len = k_header_bytes + (header_only ? 0 : h.len)},
                         true);
    } catch (const Error& e) {
        peer_failed(c, e);
    }
    ++c.sent;
}

void Engine::post_copy(Channel& c, const MsgHeader& h, const std::byte* src) {
    // Large enough to pay for a second request: the payload goes from the source straight into the peer's ring
    // slot (no staging copy), then the header (last = true) follows it on the same queue pair. A backend that
    // writes only from the registered buffer denies it: stage.
    if (h.len >= k_ring_write_min &&
        write_from_source(c, src,
                          reinterpret_cast<uint64_t>(c.thread->getQpair()->remote.vaddr) + c.recv_base +
                              slot_offset(c) + k_header_bytes,
                          h.len, ring_write_denied_)) {
        post(c, h, true);
        unstaged_bytes_.fetch_add(h.len, std::memory_order_relaxed);
        return;
    }
    if (h.len != 0) std::memcpy(staging(c), src, h.len);
    post(c, h);
}

bool Engine::write_from_source(Channel& c, const std::byte* src, uint64_t remote, uint32_t len, bool& denied) {
    if (denied) return false;
    try {
        c.thread->invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, const_cast<std::byte*>(src), remote, len, false);
    } catch (const Error& e) {
        if (e.code() != make_error_code(Errc::not_supported)) peer_failed(c, e);
        denied = true;
        return false;
    }
    return true;
}

bool Engine::write_direct(Channel& c, const std::byte* src, uint64_t remote, uint32_t len) {
    // The wire may not reach the peer's memory (e.g. cross-process access denied): the receiver takes either.
    if (!write_from_source(c, src, remote, len, direct_denied_)) return false;
    direct_bytes_.fetch_add(len, std::memory_order_relaxed);
    return true;
}

int Engine::offer_window(Channel& c, const MsgHeader& proto, int index, std::byte* dst, uint64_t len) {
    uint64_t addr = 0;
    const int w = dst != nullptr ? acquire_window(c, dst, len) : -1;
    if (w >= 0) {
        ++c.windows;
        addr = reinterpret_cast<uint64_t>(dst);
    } // else no window (table full, backend without windows): the peer sends through the ring
    MsgHeader h = proto;
    h.kind = k_kind_rtr;
    h.len = 0;
    h.tag = index;
    h.addr = addr;
    post(c, h);
    return w;
}

void Engine::end_offer(Channel& c, int slot) noexcept {
    c.wins[static_cast<std::size_t>(slot)].in_use = false;
    --c.windows;
}

bool Engine::take_rtr(Channel& c, const MsgHeader& proto, uint64_t epoch, const Signature& sig, const char* what,
                      int index, uint64_t& addr) {
    const ReadyToReceive* r = find_rtr(c, epoch, index);
    if (r == nullptr) return false;
    check_sig(c.peer, r->h, proto, epoch, sig, what);
    addr = r->h.addr;
    c.rtrs.erase(std::find_if(c.rtrs.begin(), c.rtrs.end(), [r](const ReadyToReceive& x) { return &x == r; }));
    return true;
}

void Engine::post_placed(Channel& c, MsgHeader h, const std::byte* src, uint64_t remote) {
    if (remote != 0 && h.len != 0 && write_direct(c, src, remote, h.len)) {
        h.first = k_first_direct;
        post(c, h, true);
    } else {
        post_copy(c, h, src);
    }
}

void Engine::validate(Channel& c, const MsgHeader& h) {
    if ((h.kind != k_kind_coll && h.kind != k_kind_p2p && h.kind != k_kind_rtr) || h.seq != c.consumed ||
        h.len > payload_)
        throw_error(Errc::protocol, "collectives",
                    "malformed message " + std::to_string(c.consumed) + " from rank " + std::to_string(c.peer) +
                        " (kind " + std::to_string(h.kind) + ", seq " + std::to_string(h.seq) + ", len " +
                        std::to_string(h.len) + ", payload limit " + std::to_string(payload_) + ")");
}

const MsgHeader* Engine::head(Channel& c, const std::byte** payload) {
    if (arrived(c) == static_cast<uint32_t>(c.consumed)) return nullptr;
    const std::byte* slot = c.buf + c.recv_base + (c.consumed % c.slots) * c.slot_bytes;
    std::atomic_thread_fence(std::memory_order_acquire);
    const auto* h = reinterpret_cast<const MsgHeader*>(slot);
    validate(c, *h);
    *payload = slot + k_header_bytes;
    return h;
}

void Engine::return_credit(Channel& c) {
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(c.buf + k_credit_stage))
        .store(c.consumed, std::memory_order_release);
    try {
        c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                         rdmaSg{.local_offs = k_credit_stage, .remote_offs = k_credit_in, .len = 8}, false);
    } catch (const Error& e) {
        peer_failed(c, e);
    }
    c.credited = c.consumed;
}

void Engine::release_head(Channel& c) {
    ++c.consumed;
    if (c.consumed - c.credited >= std::max<uint32_t>(1, c.slots / 2)) return_credit(c);
}

void Engine::flush_credits() {
    for (auto& [p, c] : chans_)
        if (c.ready && c.consumed != c.credited) return_credit(c);
}

const MsgHeader* Engine::peek_coll(Channel& c, uint64_t epoch, const std::byte** payload, bool& from_stash) {
    for (auto& s : c.stash)
        if (s.h.epoch == epoch) {
            from_stash = true;
            *payload = s.data.data();
            return &s.h;
        }
    for (;;) {
        const std::byte* p = nullptr;
        const MsgHeader* h = head(c, &p);
        if (h == nullptr) return nullptr;
        if (h->kind == k_kind_coll) {
            if (h->epoch == epoch) {
                from_stash = false;
                *payload = p;
                return h;
            }
            set_aside(c, *h, p);
        } else if (h->kind == k_kind_rtr) {
            set_aside(c, *h, nullptr);
        } else {
            dispatch_p2p(c, *h, p);
        }
        release_head(c);
    }
}

const ReadyToReceive* Engine::find_rtr(Channel& c, uint64_t epoch, int index) {
    const auto match = [&](const ReadyToReceive& r) { return r.h.epoch == epoch && r.h.tag == index; };
    for (auto& r : c.rtrs)
        if (match(r)) return &r;
    // Read the ring up to it: other messages are dispatched (point-to-point) or set aside (collective).
    for (;;) {
        const std::byte* p = nullptr;
        const MsgHeader* h = head(c, &p);
        if (h == nullptr) return nullptr;
        if (h->kind == k_kind_rtr) {
            set_aside(c, *h, nullptr);
            release_head(c);
            if (match(c.rtrs.back())) return &c.rtrs.back();
            continue;
        }
        if (h->kind == k_kind_p2p) {
            dispatch_p2p(c, *h, p);
        } else {
            set_aside(c, *h, p);
        }
        release_head(c);
    }
}

void Engine::check_current(const Channel& c, const MsgHeader& h) const {
    // A message of the running call seen ahead of its turn shows a mismatch now, not at the deadline (e.g. a
    // peer that sends through the ring where this rank waits for its ready-to-receive).
    if (cur_.proto != nullptr && h.epoch == cur_.epoch && h.kind != k_kind_p2p &&
        cur_.thread == std::this_thread::get_id())
        check_sig(c.peer, h, *cur_.proto, cur_.epoch, *cur_.sig, cur_.what);
}

void Engine::set_aside(Channel& c, const MsgHeader& h, const std::byte* payload) {
    check_current(c, h);
    if (h.kind == k_kind_rtr) {
        c.rtrs.push_back(ReadyToReceive{h});
        return;
    }
    Stashed s;
    s.h = h;
    s.data.assign(payload, payload + carried(h));
    c.stash.push_back(std::move(s));
}

void Engine::drop_coll(Channel& c, bool from_stash, uint64_t epoch) {
    if (!from_stash) {
        release_head(c);
        return;
    }
    // peek_coll returned the first stash entry of the epoch.
    const auto it = std::find_if(c.stash.begin(), c.stash.end(), [&](const Stashed& s) { return s.h.epoch == epoch; });
    if (it != c.stash.end()) c.stash.erase(it);
}

// ---- failure propagation (mtx_ held) --------------------------------------------------------------

void Engine::notify_failure(int dead) noexcept {
    const uint64_t word = (static_cast<uint64_t>(rank_) + 1) << 32 | static_cast<uint64_t>(dead + 1);
    for (auto& [p, c] : chans_) {
        if (p == dead || !c.ready) continue;
        try {
            std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(c.buf + k_abort_stage)).store(word, std::memory_order_release);
            c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             rdmaSg{.local_offs = k_abort_stage, .remote_offs = k_abort_in, .len = 8}, false);
        } catch (...) {
            // that peer is gone too: nothing to tell it
        }
    }
}

void Engine::check_abort(const std::string& what) {
    for (auto& [p, c] : chans_) {
        if (!c.ready) continue;
        const uint64_t w = load_u64(c.buf + k_abort_in);
        if (w == 0) continue;
        const int reporter = static_cast<int>(w >> 32) - 1;
        const int dead = static_cast<int>(w & 0xffffffffu) - 1;
        broken_ = true;
        notify_failure(dead);
        if (dead >= 0)
            throw_error(Errc::peer_gone, what,
                        "rank " + std::to_string(dead) + " is gone (reported by rank " + std::to_string(reporter) + ")");
        throw_error(Errc::peer_gone, what, "rank " + std::to_string(reporter) + " failed and left the collectives");
    }
}

// ---- point-to-point (mtx_ held) ------------------------------------------------------------------

void Engine::dispatch_p2p(Channel& c, const MsgHeader& h, const std::byte* payload) {
    if (h.first != 0) {
        if (c.in_active)
            throw_error(Errc::protocol, "recv",
                        "rank " + std::to_string(c.peer) + " started a new message before finishing the previous one");
        c.in_active = true;
        c.in_total = h.total;
        c.in_got = 0;
        c.in_tag = h.tag;
        c.in_discard = false;
        c.in_req.reset();
        c.in_unexp.reset();
        const auto it = std::find_if(c.posted.begin(), c.posted.end(), [&](const std::shared_ptr<OpState>& r) {
            return r->tag == mpi::any_tag || r->tag == h.tag;
        });
        if (it != c.posted.end()) {
            auto req = *it;
            c.posted.erase(it);
            if (h.total > req->bytes) {
                req->error = std::make_exception_ptr(
                    Error(make_error_code(Errc::invalid_argument), "recv",
                          "message of " + std::to_string(h.total) + " bytes from rank " + std::to_string(c.peer) +
                              " (tag " + std::to_string(h.tag) + ") exceeds the receive buffer of " +
                              std::to_string(req->bytes) + " bytes"));
                req->done.store(true, std::memory_order_release);
                c.in_discard = true;
            } else {
                req->received = h.total;
                c.in_req = std::move(req);
            }
        } else {
            auto u = std::make_shared<Unexpected>();
            u->tag = h.tag;
            u->total = h.total;
            u->data.resize(h.total);
            c.unexpected.push_back(u);
            c.in_unexp = std::move(u);
        }
    } else if (!c.in_active) {
        throw_error(Errc::protocol, "recv", "rank " + std::to_string(c.peer) + " sent a continuation without a message");
    }
    if (h.len > c.in_total - c.in_got)
        throw_error(Errc::protocol, "recv",
                    "rank " + std::to_string(c.peer) + " sent more than the " + std::to_string(c.in_total) +
                        " bytes its message announced");
    if (h.len != 0) {
        if (c.in_req)
            std::memcpy(c.in_req->rbuf + c.in_got, payload, h.len);
        else if (c.in_unexp)
            std::memcpy(c.in_unexp->data.data() + c.in_got, payload, h.len);
    }
    c.in_got += h.len;
    if (c.in_got == c.in_total) {
        if (c.in_req) c.in_req->done.store(true, std::memory_order_release);
        if (c.in_unexp) c.in_unexp->complete = true;
        c.in_active = false;
        c.in_req.reset();
        c.in_unexp.reset();
    }
}

void Engine::complete_from_unexpected(OpState& op) {
    const auto& u = *op.from_unexpected;
    if (u.total > op.bytes) {
        op.error = std::make_exception_ptr(
            Error(make_error_code(Errc::invalid_argument), "recv",
                  "message of " + std::to_string(u.total) + " bytes from rank " + std::to_string(op.peer) + " (tag " +
                      std::to_string(u.tag) + ") exceeds the receive buffer of " + std::to_string(op.bytes) + " bytes"));
    } else {
        if (u.total != 0) std::memcpy(op.rbuf, u.data.data(), u.total);
        op.received = u.total;
    }
    op.from_unexpected.reset();
    op.done.store(true, std::memory_order_release);
}

void Engine::progress_p2p(Channel* drain, bool in_collective) {
    progress_links(false, in_collective);
    for (auto& [p, c] : chans_) {
        if (!c.ready) continue;
        while (!c.sendq.empty()) {
            OpState& op = *c.sendq.front();
            bool blocked = false;
            while (!op.started || op.progress < op.bytes) {
                if (!can_send(c, 2)) {
                    blocked = true;
                    break;
                }
                const auto len = static_cast<uint32_t>(std::min<uint64_t>(payload_, op.bytes - op.progress));
                if (len != 0) std::memcpy(staging(c), op.sbuf + op.progress, len);
                MsgHeader h;
                h.kind = k_kind_p2p;
                h.len = len;
                h.epoch = op.msg_id;
                h.tag = op.tag;
                h.first = op.started ? 0 : 1;
                h.total = op.bytes;
                post(c, h);
                op.started = true;
                op.progress += len;
            }
            if (blocked) break;
            op.done.store(true, std::memory_order_release);
            c.sendq.pop_front();
        }
        // Incoming point-to-point messages at the head of the ring.
        for (;;) {
            const std::byte* pl = nullptr;
            const MsgHeader* h = head(c, &pl);
            if (h == nullptr) break;
            if (h->kind == k_kind_p2p) {
                dispatch_p2p(c, *h, pl);
                release_head(c);
            } else if (h->kind == k_kind_rtr) {
                set_aside(c, *h, nullptr);
                release_head(c);
            } else if (&c == drain) {
                set_aside(c, *h, pl);
                release_head(c);
            } else {
                check_current(c, *h); // left at the head for its call
                break;
            }
        }
    }
    for (auto& op : p2p_pending_)
        if (op->from_unexpected && op->from_unexpected->complete) complete_from_unexpected(*op);
    p2p_pending_.erase(std::remove_if(p2p_pending_.begin(), p2p_pending_.end(),
                                      [](const std::shared_ptr<OpState>& o) { return o->done.load(); }),
                       p2p_pending_.end());
}

std::shared_ptr<OpState> Engine::post_send(const void* buf, uint64_t bytes, int peer, int tag) {
    std::lock_guard lk(mtx_);
    Channel& c = p2p_chan(peer, "send");
    auto op = std::make_shared<OpState>();
    op->is_p2p = true;
    op->is_send = true;
    op->peer = peer;
    op->tag = tag;
    op->sbuf = static_cast<const std::byte*>(buf);
    op->bytes = bytes;
    op->msg_id = c.p2p_msgs_out++;
    op->what = "send to rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ", " + std::to_string(bytes) +
               " bytes)";
    c.sendq.push_back(op);
    p2p_pending_.push_back(op);
    progress_p2p(nullptr);
    return op;
}

std::shared_ptr<OpState> Engine::post_recv(void* buf, uint64_t bytes, int peer, int tag) {
    std::lock_guard lk(mtx_);
    Channel& c = p2p_chan(peer, "recv");
    auto op = std::make_shared<OpState>();
    op->is_p2p = true;
    op->peer = peer;
    op->tag = tag;
    op->rbuf = static_cast<std::byte*>(buf);
    op->bytes = bytes;
    op->what = "recv from rank " + std::to_string(peer) + " (tag " +
               (tag == mpi::any_tag ? std::string("any") : std::to_string(tag)) + ", up to " + std::to_string(bytes) +
               " bytes)";
    const auto it = std::find_if(c.unexpected.begin(), c.unexpected.end(), [&](const std::shared_ptr<Unexpected>& u) {
        return tag == mpi::any_tag || u->tag == tag;
    });
    if (it != c.unexpected.end()) {
        op->from_unexpected = *it;
        c.unexpected.erase(it);
        if (op->from_unexpected->complete) {
            complete_from_unexpected(*op);
            return op;
        }
    } else {
        c.posted.push_back(op);
    }
    p2p_pending_.push_back(op);
    progress_p2p(&c);
    return op;
}

bool Engine::test(OpState& op) {
    if (op.is_p2p && !op.done.load(std::memory_order_acquire)) {
        std::lock_guard lk(mtx_);
        Channel* drain = op.is_send ? nullptr : &chan(op.peer, "test");
        progress_p2p(drain);
        if (!op.done.load(std::memory_order_acquire)) flush_credits();
    }
    if (!op.done.load(std::memory_order_acquire)) return false;
    if (op.error) std::rethrow_exception(op.error);
    return true;
}

bool Engine::wait(OpState& op, std::optional<std::chrono::milliseconds> timeout) {
    const auto start = Clock::now();
    const auto limit = timeout ? *timeout : cfg_.timeout;
    for (;;) {
        if (test(op)) return true;
        ::sched_yield();
        const auto now = Clock::now();
        bool linking = false;
        if (op.is_p2p) {
            std::lock_guard lk(mtx_);
            check_abort(op.what);
            Channel& c = chan(op.peer, "wait");
            linking = !c.ready;
            if (c.ready && now - c.last_probe >= cfg_.probe_interval && now - start >= cfg_.probe_interval) {
                c.last_probe = now;
                probe(c, op.what);
            }
        }
        if (now - start >= limit) {
            if (timeout) return false;
            if (!op.is_p2p) continue; // the worker applies the deadline itself
            if (linking)
                throw_error(Errc::timeout, op.what,
                            "not complete after " + std::to_string(limit.count()) + " ms: rank " +
                                std::to_string(op.peer) + " did not complete opening the queue pair (a rank answers "
                                "only while it is inside a call on its Collectives object)");
            throw_error(Errc::timeout, op.what,
                        "not complete after " + std::to_string(limit.count()) + " ms (rank " + std::to_string(op.peer) +
                            " did not " + (op.is_send ? "take the data" : "send a matching message") + ")");
        }
    }
}

void Engine::probe(Channel& c, const std::string& what) {
    try {
        c.thread->invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                         rdmaSg{.local_offs = k_probe_source, .remote_offs = k_probe_target, .len = 1}, false);
        (void)c.thread->checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
    } catch (const Error& e) {
        if (e.code() == make_error_code(Errc::peer_gone) || e.code() == make_error_code(Errc::remote_rejected))
            lost_peer(c, what, e);
        broken_ = true;
        notify_failure(c.peer);
        throw;
    }
}

// ---- schedules -----------------------------------------------------------------------------------

void Engine::release_window(Channel& c, CachedWindow& w) noexcept {
    if (w.len == 0) return;
    try {
        c.thread->unregisterWindow(w.addr);
    } catch (...) {
        // the queue pair is gone with its windows
    }
    w = {};
}

int Engine::acquire_window(Channel& c, std::byte* addr, uint64_t len) {
    int slot = -1;
    for (std::size_t i = 0; i < c.wins.size(); ++i) {
        CachedWindow& w = c.wins[i];
        if (w.len != 0 && !w.in_use && w.addr == addr && w.len == len) {
            slot = static_cast<int>(i);
            break;
        }
    }
    if (slot < 0) {
        // Idle windows overlapping the range go (the NIC refuses overlapping windows); the new one takes a free
        // slot, else the least recently used idle one.
        const auto lo = reinterpret_cast<uintptr_t>(addr);
        for (CachedWindow& w : c.wins) {
            const auto wlo = reinterpret_cast<uintptr_t>(w.addr);
            if (w.len != 0 && !w.in_use && lo < wlo + w.len && wlo < lo + len) release_window(c, w);
        }
        auto rank_of = [](const CachedWindow& w) { return w.len == 0 ? 0 : w.stamp + 1; }; // empty slots first
        for (std::size_t i = 0; i < c.wins.size(); ++i) {
            if (c.wins[i].in_use) continue;
            if (slot < 0 || rank_of(c.wins[i]) < rank_of(c.wins[static_cast<std::size_t>(slot)]))
                slot = static_cast<int>(i);
        }
        if (slot < 0) return -1;
        CachedWindow& w = c.wins[static_cast<std::size_t>(slot)];
        release_window(c, w);
        try {
            c.thread->registerWindow(addr, len);
        } catch (const Error&) {
            return -1; // table full (windows of other users of the queue pair), overlap, or no windows
        }
        w.addr = addr;
        w.len = len;
    }
    CachedWindow& w = c.wins[static_cast<std::size_t>(slot)];
    w.in_use = true;
    w.stamp = ++c.win_clock;
    return slot;
}

MsgHeader Engine::coll_proto(uint64_t epoch, const Signature& sig) noexcept {
    MsgHeader h;
    h.kind = k_kind_coll;
    h.epoch = epoch;
    h.total = sig.count;
    h.sig_kind = static_cast<uint32_t>(sig.kind);
    h.sig_dtype = sig.dtype;
    h.sig_root = sig.root;
    h.sig_op = sig.op;
    return h;
}

void Engine::check_sig(int peer, const MsgHeader& h, const MsgHeader& proto, uint64_t epoch, const Signature& sig,
                       const char* what) const {
    if (h.sig_kind == proto.sig_kind && h.sig_dtype == proto.sig_dtype && h.total == proto.total &&
        h.sig_root == proto.sig_root && h.sig_op == proto.sig_op)
        return;
    Signature theirs;
    theirs.kind = static_cast<CollKind>(h.sig_kind);
    theirs.dtype = h.sig_dtype;
    theirs.count = h.total;
    theirs.root = h.sig_root;
    theirs.op = h.sig_op;
    throw_error(Errc::invalid_argument, what,
                "mismatched collective call #" + std::to_string(epoch) + ": rank " + std::to_string(peer) + " called " +
                    describe(theirs) + ", rank " + std::to_string(rank_) + " called " + describe(sig));
}

void Engine::check_chunk(int peer, const MsgHeader& h, const MsgHeader& proto, uint32_t len, bool window,
                         uint64_t epoch, const Signature& sig, const char* what) const {
    check_sig(peer, h, proto, epoch, sig, what);
    if (h.len != len)
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(peer) + " sent a chunk of " + std::to_string(h.len) + " bytes where " +
                        std::to_string(len) + " were expected (call #" + std::to_string(epoch) + ", " +
                        describe(sig) + "; mismatched counts?)");
    if (h.first == k_first_direct && !window)
        throw_error(Errc::protocol, what,
                    "rank " + std::to_string(peer) + " placed a chunk directly where no window was offered (call #" +
                        std::to_string(epoch) + ")");
}

template <class Waiting>
void Engine::idle_pass(Idle& idle, std::unique_lock<std::mutex>& lk, uint64_t epoch, const Signature& sig,
                       const char* what, Waiting&& waiting) {
    // Spin briefly (a peer on another core answers within a microsecond), then yield on every pass (ranks may
    // share cores). Credits are returned eagerly only after sustained idleness: the threshold return covers
    // active flows, the flush breaks waits where both sides hold credits.
    if (idle.passes == 0) idle.since = Clock::now();
    ++idle.passes;
    if (idle.passes < spin_passes_) {
        cpu_relax();
        return;
    }
    if (idle.passes % k_flush_passes == 0) {
        check_abort(what);
        flush_credits();
        progress_p2p(nullptr, true);
    }
    lk.unlock();
    ::sched_yield();
    lk.lock();
    const auto stalled = Clock::now() - idle.since;
    if (stalled < cfg_.probe_interval) return;
    std::vector<Channel*> data, credit;
    const bool debug = stalled >= cfg_.timeout && std::getenv("COYOTE_COLL_DEBUG") != nullptr;
    std::string state;
    waiting(data, credit, debug ? &state : nullptr);
    for (auto* v : {&data, &credit}) {
        std::sort(v->begin(), v->end());
        v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    for (auto* v : {&data, &credit})
        for (Channel* c : *v) {
            if (Clock::now() - c->last_probe < cfg_.probe_interval) continue;
            c->last_probe = Clock::now();
            probe(*c, what);
        }
    if (stalled < cfg_.timeout) return;
    auto ranks = [](const std::vector<Channel*>& v) {
        std::vector<int> r;
        for (const Channel* c : v) r.push_back(c->peer);
        std::sort(r.begin(), r.end());
        return ranks_text(r);
    };
    if (debug)
        for (auto& [p, c] : chans_)
            state += " chan" + std::to_string(p) + "[sent " + std::to_string(c.sent) + " credit " +
                     std::to_string(load_u64(c.buf + k_credit_in)) + " consumed " + std::to_string(c.consumed) +
                     " arrived " + std::to_string(arrived(c)) + "]";
    notify_failure(-1);
    throw_error(Errc::timeout, what,
                state + "no progress for " +
                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(stalled).count()) +
                    " ms (call #" + std::to_string(epoch) + ", " + describe(sig) + "); waiting for data from rank(s) " +
                    ranks(data) + " / for credits from rank(s) " + ranks(credit));
}

void Engine::fail_call() noexcept {
    broken_ = true;
    for (auto& [p, c] : chans_) {
        c.windows = 0;
        for (auto& w : c.wins) release_window(c, w);
    }
}

void Engine::execute_eager(EagerOp* ops, std::size_t n, uint64_t epoch, const Signature& sig, const char* what,
                           IdleCopy idle_copy) {
    std::unique_lock lk(mtx_);
    const MsgHeader proto = coll_proto(epoch, sig);
    const CallScope scope(*this, epoch, proto, sig, what);
    // Copy messages from direct_min bytes on are placed directly; the k-th such message on a channel (in list
    // order, each direction apart) has ready-to-receive k, on both sides.
    std::size_t offers = 0;  // direct receives whose ready-to-receive is not out yet
    std::size_t sends = 0;   // index past the last send
    for (std::size_t j = 0; j < n; ++j) {
        EagerOp& op = ops[j];
        op.rtr = op.win = -1;
        op.offered = false;
        if (op.send) sends = j + 1;
        if (!op.copy || op.len == 0 || cfg_.direct_min == 0 || op.len < cfg_.direct_min) continue;
        int index = 0;
        for (std::size_t k = 0; k < j; ++k)
            if (ops[k].rtr >= 0 && ops[k].send == op.send && ops[k].peer == op.peer) ++index;
        op.rtr = index;
        if (!op.send) ++offers;
    }
    const bool idle_overlap = idle_copy.bytes <= k_idle_copy_max && spin_passes_ > 1;
    Idle idle;
    std::size_t i = 0;
    try {
        while (i < n) {
            // Windows first: a rank that offered its windows only when it reached the receive would make its
            // peers wait with their writes.
            for (std::size_t j = i; offers != 0 && j < n; ++j) {
                EagerOp& o = ops[j];
                if (o.send || o.rtr < 0 || o.offered) continue;
                Channel& c = chan(o.peer, what);
                if (!can_send(c, 1)) continue;
                o.win = c.windows < k_windows_per_channel ? offer_window(c, proto, o.rtr, o.dst, o.len)
                                                          : offer_window(c, proto, o.rtr, nullptr, 0);
                o.offered = true;
                --offers;
            }
            EagerOp& op = ops[i];
            Channel& c = chan(op.peer, what);
            if (op.send) {
                if (can_send(c, 1)) {
                    MsgHeader h = proto;
                    h.len = op.len;
                    if (op.rtr < 0) {
                        post_copy(c, h, op.src);
                        ++i;
                        idle.passes = 0;
                        continue;
                    }
                    if (uint64_t addr = 0; take_rtr(c, proto, epoch, sig, what, op.rtr, addr)) {
                        post_placed(c, h, op.src, addr);
                        ++i;
                        idle.passes = 0;
                        continue;
                    }
                }
            } else {
                const std::byte* pl = nullptr;
                bool from_stash = false;
                if (const MsgHeader* h = peek_coll(c, epoch, &pl, from_stash)) {
                    check_chunk(c.peer, *h, proto, op.len, op.win >= 0, epoch, sig, what);
                    if (op.len != 0 && h->first != k_first_direct) {
                        if (op.copy)
                            std::memcpy(op.dst, pl, op.len);
                        else
                            op.take(op.ctx, pl, op.len);
                    }
                    if (op.win >= 0) {
                        end_offer(c, op.win);
                        op.win = -1;
                    }
                    drop_coll(c, from_stash, epoch);
                    ++i;
                    idle.passes = 0;
                    continue;
                }
            }
            if (idle_overlap && idle_copy.bytes != 0 && i >= sends) {
                run_idle_copy(idle_copy, k_idle_copy_piece);
                continue;
            }
            idle_pass(idle, lk, epoch, sig, what,
                      [&](std::vector<Channel*>& data, std::vector<Channel*>& credit, std::string* debug) {
                          (op.send && op.rtr < 0 ? credit : data).push_back(&c);
                          if (debug != nullptr)
                              *debug += " op" + std::to_string(i) + "/" + std::to_string(n) +
                                        (op.send ? " send to " : " receive from ") + std::to_string(op.peer) +
                                        (op.rtr >= 0 ? " (direct)" : "");
                      });
        }
        run_idle_copy(idle_copy);
    } catch (...) {
        fail_call();
        throw;
    }
    eager_calls_.fetch_add(1, std::memory_order_relaxed);
}

void Engine::execute(std::vector<Step>& steps, uint64_t epoch, const Signature& sig, const char* what,
                     IdleCopy idle_copy) {
    if (steps.empty()) {
        run_idle_copy(idle_copy);
        return;
    }
    // Large copies are bandwidth-bound like the exchange itself: overlapping them gains nothing (measured:
    // 16 MiB allgather on 2 ranks), so they run after the schedule. On an oversubscribed node a waiting rank
    // gives its core to the rank it waits for instead (measured: 1 MiB alltoall on 4 ranks / 2 cores).
    const bool idle_overlap = idle_copy.bytes <= k_idle_copy_max && spin_passes_ > 1;
    std::unique_lock lk(mtx_); // one lock for the setup and the schedule loop
    {
        // Ready-to-receive numbering: the k-th direct stream on a channel in schedule order, on both sides.
        std::vector<std::pair<Channel*, int>> in_count, out_count;
        auto next_index = [](std::vector<std::pair<Channel*, int>>& v, Channel* c) {
            for (auto& [ch, n] : v)
                if (ch == c) return n++;
            v.emplace_back(c, 1);
            return 0;
        };
        for (std::size_t i = 0; i < steps.size(); ++i) {
            Step& s = steps[i];
            s.chunks = s.bytes == 0 ? 1 : (s.bytes + payload_ - 1) / payload_;
            s.done = s.in_done = 0;
            s.finished = false;
            s.prev_out = s.prev_in = -1;
            s.out = s.kind == Step::Kind::recv ? nullptr : &chan(s.to, what);
            s.in = s.kind == Step::Kind::send ? nullptr : &chan(s.from, what);
            for (std::size_t j = i; j-- > 0;) {
                if (s.out && s.prev_out < 0 && steps[j].out == s.out) s.prev_out = static_cast<int>(j);
                if (s.in && s.prev_in < 0 && steps[j].in == s.in) s.prev_in = static_cast<int>(j);
            }
            s.rtr_in = s.rtr_out = -1;
            s.rtr_sent = s.window = s.out_known = false;
            s.out_addr = 0;
            const bool big = cfg_.direct_min != 0 && s.bytes >= cfg_.direct_min;
            if (big && s.in && s.direct_in) s.rtr_in = next_index(in_count, s.in);
            if (big && s.out && (s.direct_out || (s.kind == Step::Kind::forward && s.direct_in)))
                s.rtr_out = next_index(out_count, s.out);
        }
    }
    const MsgHeader proto = coll_proto(epoch, sig);
    const CallScope scope(*this, epoch, proto, sig, what);
    auto check = [&](const Step& s, const MsgHeader& h, uint32_t len) {
        check_chunk(s.in->peer, h, proto, len, s.window, epoch, sig, what);
    };
    auto len_of = [&](const Step& s, uint64_t chunk) {
        const uint64_t off = chunk * payload_;
        return static_cast<uint32_t>(off >= s.bytes ? 0 : std::min<uint64_t>(payload_, s.bytes - off));
    };
    auto bytes_moved = [&](const Step& g) {
        if (g.finished) return g.bytes;
        const uint64_t c = g.kind == Step::Kind::forward ? std::min(g.done, g.in_done) : g.done;
        return std::min<uint64_t>(g.bytes, c * payload_);
    };
    auto gate_open = [&](const Step& s, uint64_t chunk) {
        if (s.gate < 0) return true;
        const uint64_t need = s.gate_shift + chunk * payload_ + len_of(s, chunk);
        return bytes_moved(steps[static_cast<std::size_t>(s.gate)]) >= need;
    };
    auto in_side_done = [](const Step& g) {
        return (g.kind == Step::Kind::forward ? g.in_done : g.done) == g.chunks;
    };
    auto backlog = [&](Channel& c) { return arrived(c) - static_cast<uint32_t>(c.consumed); };

    // Direct placement. Receiver: offer direct_in as a window (or the ring, address 0) with a ready-to-receive.
    auto send_rtr = [&](Step& s) {
        if (s.in->windows >= k_windows_per_channel || !can_send(*s.in, 1)) return false;
        s.win_slot = offer_window(*s.in, proto, s.rtr_in, s.direct_in, s.bytes);
        s.window = s.win_slot >= 0;
        s.rtr_sent = true;
        return true;
    };
    // The window stays registered (cached) for a later call with the same destination.
    auto drop_window = [&](Step& s) {
        if (!s.window) return;
        s.window = false;
        end_offer(*s.in, s.win_slot);
    };
    // Sender: learn where the stream goes.
    auto out_ready = [&](Step& s) {
        if (s.rtr_out < 0 || s.out_known) return true;
        s.out_known = take_rtr(*s.out, proto, epoch, sig, what, s.rtr_out, s.out_addr);
        return s.out_known;
    };
    // One chunk of a stream read from `src`: straight into the peer's window, or through the ring.
    auto send_copy = [&](Step& s, const std::byte* src) {
        const uint32_t len = len_of(s, s.done);
        const uint64_t off = s.done * payload_;
        MsgHeader h = proto;
        h.len = len;
        post_placed(*s.out, h, src + off, s.out_addr != 0 ? s.out_addr + off : 0);
        ++s.done;
    };
    // One received chunk of a copy stream: placed already, or copied (absorbed) into place.
    auto take_copy = [&](Step& s, uint64_t chunk, const MsgHeader& h, const std::byte* payload) {
        const uint32_t len = len_of(s, chunk);
        check(s, h, len);
        if (h.first != k_first_direct && len != 0) { // placed directly: already in the window
            if (s.direct_in != nullptr)
                std::memcpy(s.direct_in + chunk * payload_, payload, len);
            else
                s.absorb(chunk * payload_, payload, len);
        }
    };

    Idle idle;
    try {
        for (;;) {
            bool progress = false;
            bool all_done = true;
            // Windows are offered before any chunk goes out: a rank that wrote its streams first and offered its
            // windows afterwards would make its peers wait for the whole write (exchanges would run one after the
            // other instead of at the same time).
            for (Step& s : steps) {
                if (s.finished || s.rtr_in < 0 || s.rtr_sent) continue;
                bool ready = true;
                for (int a : s.after) ready = ready && steps[static_cast<std::size_t>(a)].finished;
                if (ready && send_rtr(s)) progress = true;
            }
            for (std::size_t i = 0; i < steps.size(); ++i) {
                Step& s = steps[i];
                if (s.finished) continue;
                all_done = false;
                bool ready = true;
                for (int a : s.after) ready = ready && steps[static_cast<std::size_t>(a)].finished;
                if (!ready) continue;
                // A channel's previous step must have finished its side of that channel only.
                const bool out_ok = s.prev_out < 0 || steps[static_cast<std::size_t>(s.prev_out)].done ==
                                                          steps[static_cast<std::size_t>(s.prev_out)].chunks;
                const bool in_ok = s.prev_in < 0 || in_side_done(steps[static_cast<std::size_t>(s.prev_in)]);
                if (s.kind == Step::Kind::send) {
                    if (s.direct_out != nullptr) {
                        // A few chunks per pass: between them the other steps consume what the peers sent and
                        // return their credits (a burst of direct writes takes ~40 us per chunk, and a peer
                        // waiting for credits would idle through it).
                        for (uint32_t burst = 0; burst < k_send_burst && out_ok && s.done < s.chunks &&
                                                 gate_open(s, s.done) && can_send(*s.out, 2) && out_ready(s);
                             ++burst) {
                            send_copy(s, s.direct_out);
                            progress = true;
                        }
                    } else {
                        for (uint32_t burst = 0; burst < k_send_burst && out_ok && s.done < s.chunks &&
                                                 gate_open(s, s.done) && can_send(*s.out, 2);
                             ++burst) {
                            const uint32_t len = len_of(s, s.done);
                            if (len != 0) s.produce(s.done * payload_, staging(*s.out), len);
                            MsgHeader h = proto;
                            h.len = len;
                            post(*s.out, h);
                            ++s.done;
                            progress = true;
                        }
                    }
                    s.finished = s.done == s.chunks;
                } else if (s.kind == Step::Kind::recv) {
                    while (in_ok && s.done < s.chunks && gate_open(s, s.done)) {
                        const std::byte* pl = nullptr;
                        bool from_stash = false;
                        const MsgHeader* h = peek_coll(*s.in, epoch, &pl, from_stash);
                        if (h == nullptr) break;
                        if (s.direct_in != nullptr) {
                            take_copy(s, s.done, *h, pl);
                        } else {
                            const uint32_t len = len_of(s, s.done);
                            check(s, *h, len);
                            if (len != 0) s.consume(s.done * payload_, pl, len);
                        }
                        drop_coll(*s.in, from_stash, epoch);
                        ++s.done;
                        progress = true;
                    }
                    s.finished = s.done == s.chunks;
                    if (s.finished) drop_window(s);
                } else if (s.direct_in != nullptr || s.direct_out != nullptr) {
                    // Copy forward: chunks land in user memory (directly or copied), then go out from there.
                    const std::byte* src = s.direct_out != nullptr ? s.direct_out : s.direct_in;
                    for (;;) {
                        bool moved = false;
                        while (out_ok && s.done < s.in_done && can_send(*s.out, 1) && out_ready(s)) {
                            send_copy(s, src);
                            moved = true;
                        }
                        if (in_ok && s.in_done < s.chunks) {
                            const std::byte* pl = nullptr;
                            bool from_stash = false;
                            if (const MsgHeader* h = peek_coll(*s.in, epoch, &pl, from_stash)) {
                                take_copy(s, s.in_done, *h, pl);
                                drop_coll(*s.in, from_stash, epoch);
                                ++s.in_done;
                                moved = true;
                            }
                        }
                        if (!moved) break;
                        progress = true;
                    }
                    if (s.in_done == s.chunks) drop_window(s);
                    s.finished = s.done == s.chunks && s.in_done == s.chunks;
                } else {
                    for (;;) {
                        // 1. chunks absorbed earlier go out first (message order)
                        if (out_ok && s.done < s.in_done && can_send(*s.out, 1)) {
                            const uint32_t len = len_of(s, s.done);
                            if (len != 0) s.emit(s.done * payload_, staging(*s.out), len);
                            MsgHeader o = proto;
                            o.len = len;
                            post(*s.out, o);
                            ++s.done;
                            progress = true;
                            continue;
                        }
                        if (!in_ok || s.in_done >= s.chunks) break;
                        const bool can_fwd = out_ok && s.done == s.in_done && can_send(*s.out, 1);
                        // 2. fused: received chunk transformed straight into the next message
                        // 3. absorbed: the outgoing side is blocked and the incoming ring fills up
                        const bool can_absorb = !can_fwd && s.absorb &&
                                                (!out_ok || backlog(*s.in) * 2 >= s.in->slots);
                        if (!can_fwd && !can_absorb) break;
                        const std::byte* pl = nullptr;
                        bool from_stash = false;
                        const MsgHeader* h = peek_coll(*s.in, epoch, &pl, from_stash);
                        if (h == nullptr) break;
                        const uint32_t len = len_of(s, s.in_done);
                        check(s, *h, len);
                        if (can_fwd) {
                            if (len != 0) s.forward(s.in_done * payload_, pl, staging(*s.out), len);
                            MsgHeader o = proto;
                            o.len = len;
                            post(*s.out, o);
                            ++s.done;
                        } else if (len != 0) {
                            s.absorb(s.in_done * payload_, pl, len);
                        }
                        drop_coll(*s.in, from_stash, epoch);
                        ++s.in_done;
                        progress = true;
                    }
                    s.finished = s.done == s.chunks && s.in_done == s.chunks;
                }
            }
            if (all_done) break;
            if (progress) {
                idle.passes = 0;
                continue;
            }
            if (idle_copy.bytes != 0 && idle_overlap) {
                bool sent_all = true;
                for (const Step& s : steps)
                    if (s.kind != Step::Kind::recv && s.done != s.chunks) sent_all = false;
                if (sent_all) {
                    // In pieces, polling in between: a long copy must not stop this rank from consuming (and
                    // crediting) what its peers still send.
                    run_idle_copy(idle_copy, k_idle_copy_piece);
                    continue;
                }
            }
            idle_pass(idle, lk, epoch, sig, what,
                      [&](std::vector<Channel*>& data, std::vector<Channel*>& credit, std::string* debug) {
                          for (const Step& st : steps) {
                              if (st.finished) continue;
                              if (st.in) data.push_back(st.in);
                              if (st.out) credit.push_back(st.out);
                          }
                          if (debug == nullptr) return;
                          for (std::size_t i = 0; i < steps.size(); ++i)
                              *debug += " step" + std::to_string(i) + "[k" + std::to_string(static_cast<int>(steps[i].kind)) +
                                       " " + std::to_string(steps[i].done) + "/" + std::to_string(steps[i].in_done) +
                                       "/" + std::to_string(steps[i].chunks) + "]";
                      });
        }
        run_idle_copy(idle_copy);
    } catch (...) {
        // Channels may hold messages of this call: the object cannot continue.
        for (auto& st : steps) st.window = false;
        fail_call();
        throw;
    }
}

}  // namespace coyote::detail::coll
