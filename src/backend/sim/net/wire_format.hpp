// coyote-mpi sim backend: what the emulated RoCE NICs exchange and publish.
//  - Endpoint: the fixed-size bytes that follow the 64-byte ibvQ in the out-of-band message.
//  - NicShared: the NIC state a vFPGA publishes in shared memory (QP table, registered buffers,
//    remote-access windows, rejection counters), and the validation every RDMA request passes against it
//    (both wires).
//  - Frame: the header of the TCP wire's messages.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <coyote/cDefs.hpp>

#include "backend/registers.hpp"

namespace coyote::detail::sim {

// ---- endpoint ----------------------------------------------------------------------------------

inline constexpr uint32_t k_endpoint_magic = 0x50455943; // "CYEP" little-endian
inline constexpr uint16_t k_endpoint_version = 1;
inline constexpr size_t k_endpoint_size = 256;
inline constexpr size_t k_segment_name_max = 63;

/// The identity and wire addresses of one queue pair's NIC, as the peer needs them.
struct Endpoint {
    std::array<uint8_t, 16> boot_id{}; ///< /proc/sys/kernel/random/boot_id
    uint64_t netns = 0;                ///< inode of /proc/self/ns/net
    uint32_t uid = 0;
    int32_t pid = 0;
    uint64_t start_time = 0;           ///< /proc/<pid>/stat field 22
    uint32_t device = 0;
    int32_t vfid = 0;
    int32_t ctid = 0;
    uint32_t ip = 0;                   ///< the FPGA IP (host byte order)
    uint64_t mac = 0;
    uint32_t wire_addr = 0;            ///< TCP wire listener, IPv4 host byte order
    uint16_t wire_port = 0;
    uint64_t key = 0;                  ///< random access key of the NIC (HELLO on the TCP wire)
    std::string state_name;            ///< shared state segment (completion counters)
    std::string nic_name;              ///< published NIC state segment

    /// Same boot, same network namespace and same user: shared memory is reachable.
    bool same_host(const Endpoint& o) const noexcept {
        return boot_id == o.boot_id && netns == o.netns && uid == o.uid;
    }
};

/// Fills the host identity fields (boot id, netns, uid, pid, start time) of the calling process.
void fill_host_identity(Endpoint& ep);
/// Serializes to exactly k_endpoint_size bytes (little-endian fields, versioned with a magic).
std::vector<std::byte> encode_endpoint(const Endpoint& ep);
/// Parses endpoint bytes; throws Errc::protocol on a bad magic, version, length or segment name.
Endpoint decode_endpoint(std::span<const std::byte> bytes);

// ---- published NIC state -----------------------------------------------------------------------

inline constexpr uint64_t k_nic_magic = 0x3143494e4f594f43ULL; // "COYONIC1"
inline constexpr uint32_t k_nic_version = 8;
/// Remote-access windows per ctid (cThread::k_max_windows).
inline constexpr uint32_t k_nic_windows = 16;

/// The checks a request passes at its target, in order. `ok` means accepted.
enum class Check : uint32_t {
    ok = 0,
    unknown_qpn,   ///< no queue pair with that qpn on the target
    no_context,    ///< the target queue pair has no context written
    not_connected, ///< the target queue pair is connected to another qpn / IP
    no_buffer,     ///< the target queue pair has no registered buffer
    bad_rkey,      ///< rkey != the registered buffer's rkey
    out_of_bounds, ///< remote range neither inside the registered buffer nor inside one window
    bad_psn,       ///< PSN != the target's expected PSN
    unmapped,      ///< accepted, but the window memory is no longer mapped in the target (found while applying)
    count
};
/// Short name of a check ("rkey", "psn", ...).
const char* check_name(Check c) noexcept;

/// One queue pair as decoded from the register writes. Seqlock-protected (single writer: the owner).
struct QpSlot {
    static constexpr uint32_t k_exists = 1, k_ctx = 2, k_conn = 4;
    std::atomic<uint32_t> seq{0};
    std::atomic<uint32_t> flags{0};
    std::atomic<uint32_t> local_qpn{0};
    std::atomic<uint32_t> remote_qpn{0};
    std::atomic<uint32_t> remote_ip{0};
    std::atomic<uint32_t> remote_rkey{0};
    std::atomic<uint32_t> local_psn{0};
    std::atomic<uint32_t> remote_psn{0};
    std::atomic<uint64_t> remote_vaddr{0};
    std::atomic<uint32_t> port{0};
    /// Next PSN this queue pair accepts from its peer (initiators CAS it forward).
    std::atomic<uint32_t> expected_psn{0};
};

/// The registered buffer of one ctid. Seqlock-protected (single writer: the owner).
struct BufSlot {
    std::atomic<uint32_t> seq{0};
    std::atomic<uint32_t> valid{0};
    std::atomic<uint32_t> rkey{0};
    std::atomic<uint32_t> pad{0};
    std::atomic<uint64_t> vaddr{0}; ///< in the owner's address space
    std::atomic<uint64_t> size{0};
    std::atomic<uint64_t> generation{0};
    std::atomic<uint64_t> name[8]{}; ///< shm name, NUL-padded, 64 bytes
};

/// One remote-access window of a ctid: process memory of the owner the peer may access by absolute address.
/// Seqlock-protected (single writer: the owner). A window is addressed with the registered buffer's rkey.
struct WinSlot {
    std::atomic<uint32_t> seq{0};
    std::atomic<uint32_t> valid{0};
    std::atomic<uint64_t> vaddr{0}; ///< in the owner's address space
    std::atomic<uint64_t> size{0};
    std::atomic<uint64_t> generation{0}; ///< unique per registration (never reused by the owner)
};

/// Target-side counters (published so the initiator's debug output and tests can read them).
struct NicCounters {
    std::atomic<uint64_t> rejected[static_cast<size_t>(Check::count)]{}; ///< per failed check
    /// Per queue pair (ctid) of this NIC: CLOCK_MONOTONIC_COARSE ns of the latest request to it refused (0: none), and
    /// the check it failed (for the stall doctor, which blames a refusal only on the queue pair it was on).
    std::atomic<int64_t> rejected_at_ns[N_CTID_MAX]{};
    std::atomic<uint32_t> rejected_check[N_CTID_MAX]{};
    std::atomic<uint64_t> ctx_rejected{0};  ///< context writes with a foreign vfid
    std::atomic<uint64_t> arp_misses{0};    ///< NET_ARP writes of an IP with no known endpoint
    std::atomic<uint64_t> bad_key_conns{0}; ///< TCP wire connections presenting an unknown key
    std::atomic<uint64_t> bad_frames{0};    ///< TCP wire connections dropped for malformed frames
    std::atomic<uint64_t> local_failures{0};///< posts failed locally (no context, no ARP entry)
    /// Requests accepted as target. Counted by the initiators (shm wire), hence on a line of its own: beside the
    /// counters this NIC moves at every request it would bounce between the two cores at every crossing.
    alignas(64) std::atomic<uint64_t> accepted{0};
    alignas(64) std::atomic<uint64_t> acks_sent{0};     ///< TCP wire: ACK frames sent as target
    std::atomic<uint64_t> acks_coalesced{0};///< TCP wire: WRITEs / SENDs acknowledged by a later (cumulative) ACK
    std::atomic<uint64_t> conns_adopted{0}; ///< TCP wire: connections served, accepted or dialed (2 threads each)
    std::atomic<uint64_t> conn_threads_ended{0}; ///< TCP wire: their threads that returned (2 per closed one)
    std::atomic<uint64_t> pulled{0};        ///< shm WRITEs whose payload this NIC's pollers copied as target
    std::atomic<uint64_t> pull_refused{0};  ///< offers this NIC's pollers refused (their initiator copied them)
    std::atomic<uint64_t> pull_taken_back{0}; ///< offers of this NIC nobody took in time (copied here)
    std::atomic<uint64_t> pull_offers_taken{0}; ///< offers of this NIC its targets' pollers took
};

/// The shared segment of one NIC: "<vfpga prefix>.nic".
struct NicShared {
    uint64_t magic = 0;
    uint32_t version = 0;
    uint32_t size = 0;
    int32_t owner_pid = 0;
    int32_t vfid = 0;
    uint64_t owner_start_time = 0;
    uint32_t device = 0;
    uint32_t ip = 0;
    uint64_t mac = 0;
    NicCounters counters;
    QpSlot qp[N_CTID_MAX];
    BufSlot buf[N_CTID_MAX];
    /// Bit i set: win[ctid][i] may be valid (set after the slot is written, cleared before it is withdrawn).
    std::atomic<uint32_t> win_mask[N_CTID_MAX]{};
    WinSlot win[N_CTID_MAX][k_nic_windows];
    /// Non-zero while a packet sniffer of the owner captures this NIC's traffic: the id of its capture buffer
    /// (models/examples/packet_tap.hpp), to which same-host peers append the frames of their shm requests too.
    std::atomic<uint64_t> sniff{0};
};

/// Counts a request this NIC refused under `check`; `ctid`: the queue pair of this NIC it was for (-1: none of its),
/// whose latest refusal is stamped with the time and the check.
void count_rejection(NicShared& nic, Check check, int32_t ctid) noexcept;

/// Consistent copies of the slots.
struct QpView {
    uint32_t flags = 0;
    uint32_t local_qpn = 0, remote_qpn = 0, remote_ip = 0, remote_rkey = 0, local_psn = 0, remote_psn = 0, port = 0;
    uint64_t remote_vaddr = 0;
};
/// A registered buffer slot without its shm name (what request validation needs; no allocation).
struct BufMeta {
    bool valid = false;
    uint32_t rkey = 0;
    uint64_t vaddr = 0, size = 0, generation = 0;
};
struct BufView : BufMeta {
    std::string name;
};
struct WinView {
    bool valid = false;
    uint64_t vaddr = 0, size = 0, generation = 0;
};
/// `seq` (optional) receives the sequence number the copy is consistent with.
QpView read_qp(const QpSlot& s, uint32_t* seq = nullptr) noexcept;
BufView read_buf(const BufSlot& s);
/// read_buf without the shm name.
BufMeta read_buf_meta(const BufSlot& s, uint32_t* seq = nullptr) noexcept;
WinView read_win(const WinSlot& s) noexcept;
/// Seqlock writers (the owner only, serialized by the owner's lock).
void write_qp(QpSlot& s, const QpView& v) noexcept;
void write_buf(BufSlot& s, const BufView& v) noexcept;
void write_win(WinSlot& s, const WinView& v) noexcept;
/// The valid window of `ctid` in `nic` that holds [vaddr, vaddr + len) whole, with its slot index; nullopt if none.
struct WindowHit {
    uint32_t index = 0;
    WinView win;
};
std::optional<WindowHit> find_window(const NicShared& nic, int32_t ctid, uint64_t vaddr, uint64_t len) noexcept;
/// [vaddr, vaddr + len) lies whole in [base, base + size) (no overflow).
constexpr bool range_inside(uint64_t vaddr, uint64_t len, uint64_t base, uint64_t size) noexcept {
    return vaddr >= base && vaddr - base <= size && len <= size - (vaddr - base);
}

/// An RDMA request as it reaches the target.
struct RdmaRequest {
    RdmaOpcode op = RdmaOpcode::write;
    uint32_t src_qpn = 0; ///< initiator's qpn
    uint32_t src_ip = 0;  ///< initiator's FPGA IP
    uint32_t dst_qpn = 0; ///< from the initiator's connection context
    uint32_t psn = 0;
    uint32_t rkey = 0;    ///< from the initiator's QP context
    uint64_t vaddr = 0;   ///< absolute remote address (registered vaddr + remote_offs)
    uint32_t len = 0;
};

/// Outcome of validating a request against the target's published state.
struct Verdict {
    Check check = Check::ok;
    std::string detail;     ///< what failed, naming the values
    int32_t ctid = -1;      ///< the target ctid (valid when the qpn is known)
    bool in_window = false; ///< accepted into a window (else into the registered buffer)
    uint32_t window = 0;    ///< the window's slot index (when in_window)
    WinView win;            ///< the window: vaddr, size, generation (when in_window)
    uint64_t offset = 0;    ///< offset into the registered buffer, or into the window when in_window
    BufMeta buf;            ///< the registered buffer (when accepted; its rkey also guards the windows)
};

/// What an initiator remembers of one target queue pair's slots between requests: reused while both slots'
/// sequence numbers are unchanged (validation then reads two words instead of the slots). Odd seqs: empty.
struct SlotCache {
    const NicShared* target = nullptr;
    int32_t owner_pid = 0;         ///< with the address: the same target, not a later one mapped there
    uint64_t owner_start_time = 0;
    int32_t ctid = -1;
    uint32_t qp_seq = 1, buf_seq = 1;
    QpView qp;
    BufMeta buf;
};

/// Validates `r` against `target` in the documented order and, when the PSN matches, advances the
/// target's expected PSN (also when a later stateless check fails: the packet was received in
/// sequence). The remote range must lie whole in the registered buffer or whole in one valid window of the
/// target ctid. Counts a rejection in target.counters. Never touches buffer or window memory. With `cache`
/// (the initiator's, for this target queue pair) the slots are read only when they changed since.
Verdict validate_and_claim(NicShared& target, const RdmaRequest& r, SlotCache* cache = nullptr);

/// "RDMA WRITE rejected by 10.1.2.3 qpn 0x000001: <detail>".
std::string rejection_text(RdmaOpcode op, uint32_t target_ip, uint32_t dst_qpn, const std::string& detail);
/// rejection_text of `r` with the verdict's detail.
std::string rejection_message(const RdmaRequest& r, uint32_t target_ip, const Verdict& v);
/// "RDMA WRITE" / "RDMA READ" / "RDMA SEND".
const char* opcode_label(RdmaOpcode op) noexcept;

/// Path MTU of the emulated RoCE wire: a message travels as packets of at most this much payload.
inline constexpr uint32_t k_path_mtu = 4096;
/// The PSN after a message of `len` bytes starting at `psn`: each packet takes one (a READ request as many as its
/// response has packets), as on a RoCE wire.
inline constexpr uint32_t psn_after(uint32_t psn, uint32_t len) noexcept {
    const uint64_t packets = len == 0 ? 1 : (uint64_t{len} + k_path_mtu - 1) / k_path_mtu;
    return static_cast<uint32_t>((psn + packets) & 0xFFFFFFu);
}

// ---- TCP wire frames ---------------------------------------------------------------------------

inline constexpr uint32_t k_frame_magic = 0x46575943; // "CYWF"
inline constexpr uint8_t k_frame_version = 1;
inline constexpr size_t k_frame_header_size = 64;
inline constexpr uint32_t k_max_nak_text = 1024;

enum class FrameType : uint8_t {
    hello = 1,     ///< payload: target key (u64), sender key (u64)
    hello_ack = 2, ///< no payload
    write = 3,     ///< payload: len bytes of data
    send = 4,      ///< payload: len bytes of data
    read_req = 5,  ///< no payload; len bytes requested
    read_resp = 6, ///< payload: the data of request req_id
    ack = 7,       ///< request req_id applied
    nak = 8,       ///< request req_id rejected: `check`, payload = message text
};

struct FrameHeader {
    FrameType type = FrameType::ack;
    bool last = false;
    uint32_t payload_len = 0;
    uint32_t psn = 0;
    uint64_t req_id = 0;
    uint32_t src_qpn = 0;
    uint32_t dst_qpn = 0;
    uint32_t src_ip = 0;
    uint32_t rkey = 0;
    uint64_t vaddr = 0;
    uint32_t len = 0;
    uint32_t check = 0;
};

/// The frame that carries request `r` (WRITE / SEND with its data as payload, READ request without payload).
FrameHeader request_frame(const RdmaRequest& r, uint64_t req_id, bool last) noexcept;
/// The request a WRITE / SEND / READ request frame carries.
RdmaRequest frame_request(const FrameHeader& h) noexcept;

/// Serializes a header into exactly k_frame_header_size bytes.
std::array<std::byte, k_frame_header_size> encode_frame(const FrameHeader& h) noexcept;
/// Parses and checks a header (magic, version, type, payload length for the type). Returns false
/// with `error` set when malformed.
bool decode_frame(std::span<const std::byte, k_frame_header_size> bytes, FrameHeader& h, std::string& error);

}  // namespace coyote::detail::sim
