// coyote-mpi sim backend: the emulated RoCE NIC (class NicImpl), shared by its files: nic.cpp (lifecycle,
// endpoints, errors), nic_registers.cpp (register writes, ARP), nic_memory.cpp (registered buffer, windows),
// nic_post.cpp (posting), shm_wire.cpp (same-host peers), nic_tap.cpp (packet capture) and the TCP wire (tcp/).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "backend/sim/models/examples/packet_tap.hpp"
#include "backend/sim/net/nic.hpp"
#include "backend/sim/net/nic_state.hpp"
#include "backend/sim/net/wire_config.hpp"

namespace coyote::detail::sim::net {

class TcpWire;

/// The emulated RoCE NIC of one sim vFPGA.
class NicImpl final : public Nic {
public:
    explicit NicImpl(NicHost& host);
    ~NicImpl() override;

    bool on_cnfg_write(uint32_t reg, std::span<const uint64_t> words) override;
    uint64_t read_cnfg(uint32_t reg) const override;
    PostStatus post(const Command& cmd) override;
    void register_buffer(int32_t ctid, void* addr, uint64_t size, const std::string& shm_name) override;
    void unregister_buffer(int32_t ctid, void* addr) noexcept override;
    void register_window(int32_t ctid, uint64_t vaddr, uint64_t len) override;
    void unregister_window(int32_t ctid, uint64_t vaddr) override;
    uint32_t rkey(int32_t ctid) const override;
    std::vector<std::byte> local_endpoint(int32_t ctid) const override;
    void set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) override;
    void raise_pending_error(int32_t ctid) override;
    const std::atomic<bool>& pending_flag(int32_t ctid) const noexcept override {
        return ctids_[static_cast<size_t>(ctid)].has_pending;
    }
    void on_ctid_unregistered(int32_t ctid) noexcept override;
    const std::atomic<bool>& progress_flag() const noexcept override { return wire_live_; }
    void progress() noexcept override;
    const std::atomic<uint64_t>& deferred_flag() const noexcept override { return deferred_mask_; }
    void flush_deferred() noexcept override;
    PullLine& pull_line(int32_t ctid) noexcept override { return pulls_[static_cast<size_t>(ctid)]; }
    void pull(int32_t ctid) noexcept override;
    bool awaits_peer_copy(int32_t ctid) const noexcept override;
    std::atomic<bool>& polled_flag(int32_t ctid) noexcept override { return ctids_[static_cast<size_t>(ctid)].polled; }
    std::string debug_string(int32_t ctid) const override;
    std::string gone_peer(int32_t ctid) const noexcept override;
    void housekeeping(int64_t now) noexcept override;
    /// The sniffer watches' waker: asks `host` (a NicHost) for housekeeping.
    static void wake_host(void* host) noexcept { static_cast<NicHost*>(host)->wake_housekeeping(); }
    /// True when `ep` is a process of this boot that exited (a process of another host cannot be looked at).
    bool process_gone(const Endpoint& ep) const noexcept;

    // For the TCP wire.
    NicShared& shared() noexcept { return *shared_; }
    SharedState& state() noexcept { return host_.shared_state(); }
    uint32_t ip() const noexcept { return host_.ip_address(); }
    uint64_t key() const noexcept { return key_; }
    std::shared_mutex& buffers_mutex() noexcept { return bufs_mtx_; }
    /// The TCP wire has a connection: pollers call progress() from now on.
    void mark_wire_live() noexcept { wire_live_.store(true, std::memory_order_release); }
    CtidState& ctid_state(int32_t ctid) noexcept { return ctids_[static_cast<size_t>(ctid)]; }
    /// Records `e` as the pending error of `ctid` unless the queue pair changed since `generation`.
    void record_error(int32_t ctid, uint64_t generation, Error e) noexcept;

    // Packet capture (nic_tap.cpp): the frames this NIC sends and receives go to a packet sniffer capturing it.
    // While none captures, each hook costs two atomic loads, a coarse clock read (a shm post passes the one its
    // liveness check made) and two predictable branches.
    /// Where this NIC's frames go: the sniffer of its device in this process (its sniff word), else the one another
    /// process published in the device's rendezvous (re-read at most every k_watch_period). `now`: coarse_now_ns().
    sniffer::Target tap_target(int64_t now) noexcept {
        return sniffer::tap_target(shared_->sniff, shared_->owner_pid, watch_, now);
    }
    /// As the requester of `req`, this NIC sends its request packets (Parts::request) or receives the answer of
    /// `peer_ip` (Parts::answer; `nak`: its AETH syndrome, 0 for an ACK / READ response). `data`: where the
    /// payload is in this process (0: none).
    void tap_requester(sniffer::Parts parts, const RdmaRequest& req, uint32_t peer_ip, uint64_t data,
                       uint8_t nak) noexcept {
        if (const sniffer::Target t = tap_target(coarse_now_ns())) [[unlikely]]
            tap_requester_now(t, parts, req, peer_ip, data, nak);
    }
    /// As the target, this NIC received `req` (validated as `v`) and answers it with `answer` (ack, nak or
    /// read_resp); the payload is where `v` puts it.
    void tap_served(const RdmaRequest& req, const Verdict& v, FrameType answer) noexcept {
        if (const sniffer::Target t = tap_target(coarse_now_ns())) [[unlikely]]
            tap_served_now(t, req, v, answer);
    }

private:
    /// What a post needs of its queue pair, copied under the ctid's lock.
    struct QpSnapshot {
        DecodedQpContext ctx;
        DecodedConnContext conn;
        std::optional<Endpoint> own_peer;
        uint64_t generation = 0;
    };

    /// The state of `ctid`; throws invalid_argument (naming `call`) when it is out of range.
    CtidState& cs_checked(int32_t ctid, const char* call) const;
    /// The ctid a context word addresses, or -1 (counted as a rejected context) when its vFPGA bits are not ours.
    int32_t ctid_of_local_qpn(uint32_t local_qpn) const noexcept;
    /// A register write of the AVX layout (one register per context); false if `reg` is not a NIC register.
    bool on_avx_write(uint32_t reg, std::span<const uint64_t> words);
    /// A register write of the legacy layout (three registers per context, committed by the last one); false if
    /// `reg` is not a NIC register.
    bool on_legacy_write(uint32_t reg, uint64_t word);
    /// Decodes and publishes a complete QP context / connection context.
    void commit_ctx(const std::array<uint64_t, 3>& w);
    void commit_conn(const std::array<uint64_t, 3>& w);
    /// NET_ARP: resolves `ip` to a known endpoint (a miss is counted) and drops the resolved shm routes.
    void arp_lookup(uint32_t ip);
    /// Publishes the queue pair of `ctid` for peers (cs.mtx held).
    void publish_qp(int32_t ctid, CtidState& cs);
    /// Applies `update` to the state of the ctid owning `local_qpn` under its lock and republishes its queue pair.
    template <typename Update>
    void update_qp(uint32_t local_qpn, Update&& update);
    /// Withdraws the registered buffer of `ctid` (bufs_mtx_ and cs.mtx held): peers see a new generation.
    void withdraw_buffer(int32_t ctid, CtidState& cs) noexcept;
    /// Marks the queue pair of `ctid` as existing in the published state.
    void mark_exists(int32_t ctid) const;
    /// Starts the TCP wire unless COYOTE_SIM_WIRE=shm.
    void ensure_tcp() const;
    /// Whether requests to `ep` take the TCP wire (the wire setting, else whether `ep` is on another host).
    bool use_tcp(const Endpoint& ep) const;

    /// Posts over a route resolved by an earlier post; nullopt when the route went stale (post_mtx held).
    std::optional<PostStatus> post_on_route(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call,
                                            ShmPeer* route);
    /// Posts the slow way: snapshot of the queue pair, ARP lookup, wire choice (post_mtx held).
    PostStatus post_resolving(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call);
    /// The queue pair's context, connection and peer; throws invalid_argument when a context is missing.
    QpSnapshot snapshot_qp(CtidState& cs, const Command& cmd, RdmaOpcode op, const char* call);
    /// The endpoint `remote_ip` resolves to (the queue pair's own peer first); throws without an ARP entry.
    Endpoint arp_route(uint32_t remote_ip, const std::optional<Endpoint>& own_peer, int32_t ctid, const char* call);
    /// Posts over the TCP wire; throws not_supported when either side has no TCP wire.
    PostStatus post_tcp(CtidState& cs, const Command& cmd, const RdmaRequest& req, const Endpoint& ep,
                        const char* call);
    /// Remembers `peer` as the shm route of `cs` unless the queue pair was reconfigured since `qp`.
    static void remember_route(CtidState& cs, const QpSnapshot& qp, ShmPeer& peer);

    /// The same-host peer `ep` (mapped on first use); throws peer_gone when it is gone.
    ShmPeer& shm_peer(const Endpoint& ep);
    /// Maps a same-host peer's segments and checks their headers.
    std::unique_ptr<ShmPeer> open_shm_peer(const Endpoint& ep);
    /// Applies `req` (PSN assigned, generation = the queue pair's at that time) at a same-host peer; post_mtx held.
    /// `now`: coarse_now_ns() as the post's liveness check read it (for the sniffer rendezvous watches).
    PostStatus post_shm(CtidState& cs, int32_t ctid, const RdmaRequest& req, uint64_t generation, ShmPeer& peer,
                        uint64_t local_addr, bool last, int64_t now);
    /// The completions of a shm WRITE or SEND of `ctid` that landed in `target_ctid` of `peer` (post_mtx held).
    /// The first of a burst is counted at the target at once, the following ones to the same target are deferred
    /// (defer_local_write) until this process polls, posts elsewhere or the target's poller claims them.
    void complete_shm_write(CtidState& cs, int32_t ctid, ShmPeer& peer, int32_t target_ctid) noexcept;
    /// Counts the deferred completions `cs` left at its last target.
    static void flush_deferred(const CtidState& cs) noexcept;

    // Pulls (shm_pull.cpp; net/pull_line.hpp).
    /// Offers WRITE `req` (validated as `v`, its payload at `local_addr`) to the target's poller when it polls
    /// lately and the payload lies in this ctid's registered buffer; returns false when it was not offered (the
    /// caller copies). An offer nobody takes in time is copied and counted here. post_mtx held.
    bool offer_write(CtidState& cs, int32_t ctid, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                     uint64_t local_addr, bool last);
    /// Waits until every WRITE `cs` offered is copied and counted (post_mtx held): a payload copied now goes after
    /// them. Throws peer_gone when the target died meanwhile.
    void settle_offers(CtidState& cs);
    /// Takes offer `seq` (`o`) of `line` for `ctid`: copies it and counts it, or refuses it (returns false: its
    /// producer copies it). pull_mtx held.
    bool take_offer(CtidState& cs, int32_t ctid, PullLine& line, uint64_t seq, const PullOffer& o);
    /// Where the payload of `o` is in this process (the producer's registered buffer, mapped), or null when it cannot
    /// be reached or `o` does not fit it; `peer` receives the producer. pull_mtx held.
    const std::byte* pull_source(CtidState& cs, const PullOffer& o, ShmPeer*& peer) noexcept;
    /// Hands the packets of a shm request and of its answer (`nak`: its syndrome) to the sniffers capturing this NIC
    /// (`mine`) and the peer's (`theirs`). Call only when one of them is set.
    void tap_shm(const RdmaRequest& req, ShmPeer& peer, uint64_t local_addr, uint8_t nak, sniffer::Target mine,
                 sniffer::Target theirs) noexcept;
    void tap_requester_now(sniffer::Target t, sniffer::Parts parts, const RdmaRequest& req, uint32_t peer_ip,
                           uint64_t data, uint8_t nak) noexcept;
    void tap_served_now(sniffer::Target t, const RdmaRequest& req, const Verdict& v, FrameType answer) noexcept;
    /// The MAC of the endpoint known by `ip` (else the default 02:00:<ip>).
    uint64_t mac_of(uint32_t ip) const noexcept;
    /// Maps the target's registered buffer that `v` accepted the request into and remembers it in cs.mapped.
    static void map_target(CtidState& cs, const RdmaRequest& req, ShmPeer& peer, const Verdict& v);
    /// Throws peer_gone when the peer process died (checked at most every k_liveness_period). Inline: every post
    /// runs it, and between two checks it only reads the clock. Returns the clock (coarse_now_ns()).
    static int64_t check_alive(ShmPeer& p) {
        const int64_t now = coarse_now_ns();
        if (!p.gone.load(std::memory_order_acquire) &&
            now - p.last_check_ns.load(std::memory_order_relaxed) < std::chrono::nanoseconds(k_liveness_period).count())
            return now;
        check_alive_now(p, now);
        return now;
    }
    /// check_alive once the period is over (or the peer was found gone).
    static void check_alive_now(ShmPeer& p, int64_t now);
    /// Throws invalid_argument unless a READ's local target lies in the registered buffer or a window (cs.mtx held).
    static void check_read_target(const CtidState& cs, int32_t ctid, uint64_t addr, uint32_t len, const char* call);
    /// Copies to / from window memory of a same-host peer. Returns false when the window memory is no longer
    /// mapped in the target (error recorded on the queue pair); throws peer_gone / not_supported.
    bool window_copy(int32_t ctid, uint64_t generation, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                     uint64_t local_addr);

    NicHost& host_;
    WireConfig cfg_;
    Endpoint me_; ///< host identity of this process
    uint64_t key_ = 0;
    ShmSegment seg_;
    NicShared* shared_ = nullptr;
    mutable std::array<CtidState, N_CTID_MAX> ctids_;
    PullLine* pulls_ = nullptr; ///< this vFPGA's pull lines (net area of its state segment), one per ctid
    mutable std::shared_mutex bufs_mtx_;

    mutable std::mutex mtx_; ///< ARP, endpoints, legacy staging, last words, tcp start
    std::map<uint32_t, Endpoint> known_by_ip_;
    std::map<uint32_t, Endpoint> arp_;
    std::array<uint64_t, 3> leg_ctx_{}, leg_conn_{};
    std::map<uint32_t, uint64_t> last_word_;

    std::mutex peers_mtx_;
    std::map<uint64_t, std::unique_ptr<ShmPeer>> peers_;

    mutable std::unique_ptr<TcpWire> tcp_;
    /// Bit c: ctid c has a burst of WRITEs open; its later completions may sit deferred at its target.
    std::atomic<uint64_t> deferred_mask_{0};
    std::atomic<bool> wire_live_{false}; ///< set (after tcp_) when the TCP wire adopts its first connection
    sniffer::TapCache tap_; ///< the capture buffer this NIC's frames go to
    sniffer::Watch watch_;  ///< the rendezvous of this NIC's device (releases the buffer in tap_ when it ends)
};

}  // namespace coyote::detail::sim::net
