// coyote-mpi collectives engine: the wire format (buffer layout of a channel, message header, call signature).
//
// One channel per connected peer, on that peer's queue pair and registered buffer (size S, identical on all
// ranks):
//
//   [0, 4096)                control: +0 credit (written by the peer: how many of our messages it consumed),
//                            +8 credit staging, +16 liveness probe target, +24 probe source, +64 failure report,
//                            +72 its staging, +128 the call the peer is stalled in (StallRecord), +192 its staging
//   [4096, 4096 + K*slot)    receive ring: the peer's messages, message n in slot n % K
//   [4096 + K*slot, ...)     send staging: our message n is built in slot n % K, then one RDMA WRITE (last = true)
//                            copies header + payload into the peer's receive ring slot n % K. A chunk of a pure
//                            copy stream of at least 16 KiB skips the staging copy: one WRITE (last = false) from
//                            the source into the peer's slot, then the header alone (last = true)
//
// Arrival is the receiver's LOCAL_WRITE completion count (only data messages use last = true, and only this
// peer writes into this queue pair's buffer). Credits and liveness probes are WRITEs with last = false.
#pragma once

#include <cstdint>
#include <string>

namespace coyote::detail::coll {

constexpr uint64_t k_control_bytes = 4096;
constexpr uint32_t k_header_bytes = 64;
constexpr uint32_t k_kind_coll = 0x4c4c4f43; // "COLL"
constexpr uint32_t k_kind_p2p = 0x50325031;  // "1P2P"
constexpr uint32_t k_kind_rtr = 0x31525452;  // "RTR1": ready to receive (direct placement)
constexpr uint32_t k_first_direct = 2;       ///< MsgHeader::first of a collective chunk placed directly

// Offsets in the control area.
constexpr uint64_t k_credit_in = 0;
constexpr uint64_t k_credit_stage = 8;
constexpr uint64_t k_probe_target = 16;
constexpr uint64_t k_probe_source = 24;
constexpr uint64_t k_abort_in = 64; ///< written by a peer that failed: (reporter + 1) << 32 | (dead rank + 1)
constexpr uint64_t k_abort_stage = 72;
constexpr uint64_t k_stall_in = 128;    ///< written by a stalled peer: the call it waits in (StallRecord)
constexpr uint64_t k_stall_stage = 192;
constexpr uint64_t k_closed_in = 256;   ///< written by a peer whose engine closed: the calls it had started, plus 1
constexpr uint64_t k_closed_sent = 264; ///< written just before: the messages it had sent on this channel
constexpr uint64_t k_closed_stage = 272; ///< 16 bytes: the staging of both

/// The operation a collective message belongs to.
enum class CollKind : uint32_t {
    barrier = 1, broadcast, reduce, allreduce, gather, allgather, scatter, reduce_scatter, alltoall
};
const char* kind_name(CollKind k) noexcept;

/// What every rank must agree on for one collective call; carried in every message and checked on arrival.
struct Signature {
    CollKind kind = CollKind::barrier;
    uint32_t dtype = 0;
    uint64_t count = 0;
    int32_t root = -1;
    uint32_t op = 0;
    bool operator==(const Signature&) const = default;
};
std::string describe(const Signature& s);

/// What a rank that waits without progress writes into the control area of each peer it waits for, with its
/// liveness probe: the call it is in. A peer stalled in the same call number with another signature reports the
/// mismatch, although no message of the call ever reached it (both ranks of a reduce that name different roots
/// wait for each other).
struct StallRecord {
    uint64_t magic = 0;
    uint64_t epoch = 0;
    uint32_t kind = 0, dtype = 0;
    uint64_t count = 0;
    int32_t root = 0;
    uint32_t op = 0;
    uint64_t check = 0; ///< hash of the fields above: a record read while the peer rewrites it does not count
};
static_assert(sizeof(StallRecord) == 48 && sizeof(StallRecord) <= 64, "fits its control-area slot");
/// The record of call `epoch` with signature `sig`.
StallRecord stall_record(uint64_t epoch, const Signature& sig) noexcept;
/// Whether `r` is whole (magic and check).
bool stall_record_valid(const StallRecord& r) noexcept;
/// The signature a valid record carries.
Signature signature_of(const StallRecord& r) noexcept;

/// Header of every message (64 bytes, in front of the payload in the slot).
struct MsgHeader {
    uint32_t kind = 0;  ///< k_kind_coll or k_kind_p2p
    uint32_t len = 0;   ///< payload bytes of this message
    uint64_t seq = 0;   ///< message number on this channel (checked)
    uint64_t epoch = 0; ///< collective: call number; p2p: message number
    int32_t tag = 0;    ///< p2p tag
    uint32_t first = 0; ///< p2p: first chunk of a message; collective: k_first_direct (payload placed directly)
    uint64_t total = 0; ///< p2p: message bytes; collective: signature count
    uint32_t sig_kind = 0;
    uint32_t sig_dtype = 0;
    int32_t sig_root = 0;
    uint32_t sig_op = 0;
    uint64_t addr = 0;  ///< ready-to-receive: window address (0: send through the ring)
};
static_assert(sizeof(MsgHeader) == k_header_bytes);

/// Payload bytes a message carries in its slot (a directly placed chunk carries none).
inline uint32_t carried(const MsgHeader& h) noexcept {
    return h.kind == k_kind_coll && h.first == k_first_direct ? 0 : h.len;
}

/// The header fields every message of collective call `epoch` carries.
inline MsgHeader coll_proto(uint64_t epoch, const Signature& sig) noexcept {
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

}  // namespace coyote::detail::coll
