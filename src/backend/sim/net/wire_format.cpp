// coyote-mpi sim backend: the bytes the emulated NICs exchange (endpoints, TCP wire frames), the NIC state they
// publish in shared memory, and the validation every RDMA request passes at its target.
#include "backend/sim/net/wire_format.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <coyote/error.hpp>

#include "backend/sim/clock.hpp"
#include "backend/sim/identity.hpp"
#include "backend/sim/segments.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

// Little-endian field access on byte buffers.
template <typename T>
void put(std::byte* base, size_t off, T v) noexcept {
    for (size_t i = 0; i < sizeof(T); ++i)
        base[off + i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
}
template <typename T>
T get(const std::byte* base, size_t off) noexcept {
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(base[off + i]) << (8 * i);
    return static_cast<T>(v);
}

// Endpoint layout.
constexpr size_t ep_magic = 0, ep_version = 4, ep_length = 6, ep_boot = 8, ep_netns = 24, ep_uid = 32, ep_pid = 36,
                 ep_start = 40, ep_device = 48, ep_vfid = 52, ep_ctid = 56, ep_ip = 60, ep_mac = 64, ep_waddr = 72,
                 ep_wport = 76, ep_key = 80, ep_state = 88, ep_nic = 152, ep_name_len = 64;
static_assert(ep_nic + ep_name_len <= k_endpoint_size);

std::string read_name(const std::byte* p, const char* what) {
    size_t n = 0;
    while (n < ep_name_len && p[n] != std::byte{0}) ++n;
    if (n == ep_name_len)
        throw_error(Errc::protocol, "set_remote_endpoint", std::string(what) + " segment name is not terminated");
    std::string s(reinterpret_cast<const char*>(p), n);
    const std::string prefix = "/coyote-sim.";
    if (s.compare(0, prefix.size(), prefix) != 0 || s.find('/', 1) != std::string::npos)
        throw_error(Errc::protocol, "set_remote_endpoint",
                    std::string(what) + " segment name '" + s + "' is not a coyote-sim segment");
    return s;
}

void write_name(std::byte* p, const std::string& s) {
    if (s.size() > k_segment_name_max)
        throw_error(Errc::invalid_argument, "local_endpoint", "segment name '" + s + "' is too long");
    std::memcpy(p, s.data(), s.size());
}

}  // namespace

void fill_host_identity(Endpoint& ep) {
    ep.boot_id = {};
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (in >> id) {
        size_t k = 0;
        for (size_t i = 0; i + 1 < id.size() && k < ep.boot_id.size();) {
            if (id[i] == '-') {
                ++i;
                continue;
            }
            ep.boot_id[k++] = static_cast<uint8_t>(std::stoul(id.substr(i, 2), nullptr, 16));
            i += 2;
        }
    }
    struct stat st {};
    ep.netns = ::stat("/proc/self/ns/net", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
    ep.uid = ::getuid();
    ep.pid = ::getpid();
    ep.start_time = process_start_time(ep.pid);
}

std::vector<std::byte> encode_endpoint(const Endpoint& ep) {
    std::vector<std::byte> b(k_endpoint_size);
    std::byte* p = b.data();
    put<uint32_t>(p, ep_magic, k_endpoint_magic);
    put<uint16_t>(p, ep_version, k_endpoint_version);
    put<uint16_t>(p, ep_length, static_cast<uint16_t>(k_endpoint_size));
    std::memcpy(p + ep_boot, ep.boot_id.data(), ep.boot_id.size());
    put<uint64_t>(p, ep_netns, ep.netns);
    put<uint32_t>(p, ep_uid, ep.uid);
    put<uint32_t>(p, ep_pid, static_cast<uint32_t>(ep.pid));
    put<uint64_t>(p, ep_start, ep.start_time);
    put<uint32_t>(p, ep_device, ep.device);
    put<uint32_t>(p, ep_vfid, static_cast<uint32_t>(ep.vfid));
    put<uint32_t>(p, ep_ctid, static_cast<uint32_t>(ep.ctid));
    put<uint32_t>(p, ep_ip, ep.ip);
    put<uint64_t>(p, ep_mac, ep.mac);
    put<uint32_t>(p, ep_waddr, ep.wire_addr);
    put<uint16_t>(p, ep_wport, ep.wire_port);
    put<uint64_t>(p, ep_key, ep.key);
    write_name(p + ep_state, ep.state_name);
    write_name(p + ep_nic, ep.nic_name);
    return b;
}

Endpoint decode_endpoint(std::span<const std::byte> bytes) {
    const std::string call = "set_remote_endpoint";
    if (bytes.empty())
        throw_error(Errc::protocol, call,
                    "the peer sent no sim endpoint bytes after its ibvQ (is the peer running the hw backend?)");
    if (bytes.size() < 8)
        throw_error(Errc::protocol, call, "endpoint bytes too short: " + std::to_string(bytes.size()) + " bytes");
    const std::byte* p = bytes.data();
    if (get<uint32_t>(p, ep_magic) != k_endpoint_magic)
        throw_error(Errc::protocol, call, "endpoint bytes have a bad magic " + hex(get<uint32_t>(p, ep_magic), 8));
    if (get<uint16_t>(p, ep_version) != k_endpoint_version)
        throw_error(Errc::protocol, call,
                    "endpoint version " + std::to_string(get<uint16_t>(p, ep_version)) + " is not supported (expected " +
                        std::to_string(k_endpoint_version) + ")");
    const size_t declared = get<uint16_t>(p, ep_length);
    if (declared != k_endpoint_size || bytes.size() != k_endpoint_size)
        throw_error(Errc::protocol, call,
                    "endpoint length " + std::to_string(bytes.size()) + " (declared " + std::to_string(declared) +
                        ") does not match the expected " + std::to_string(k_endpoint_size) + " bytes");
    Endpoint ep;
    std::memcpy(ep.boot_id.data(), p + ep_boot, ep.boot_id.size());
    ep.netns = get<uint64_t>(p, ep_netns);
    ep.uid = get<uint32_t>(p, ep_uid);
    ep.pid = static_cast<int32_t>(get<uint32_t>(p, ep_pid));
    ep.start_time = get<uint64_t>(p, ep_start);
    ep.device = get<uint32_t>(p, ep_device);
    ep.vfid = static_cast<int32_t>(get<uint32_t>(p, ep_vfid));
    ep.ctid = static_cast<int32_t>(get<uint32_t>(p, ep_ctid));
    ep.ip = get<uint32_t>(p, ep_ip);
    ep.mac = get<uint64_t>(p, ep_mac);
    ep.wire_addr = get<uint32_t>(p, ep_waddr);
    ep.wire_port = get<uint16_t>(p, ep_wport);
    ep.key = get<uint64_t>(p, ep_key);
    ep.state_name = read_name(p + ep_state, "state");
    ep.nic_name = read_name(p + ep_nic, "NIC");
    if (ep.pid <= 0 || ep.ctid < 0 || ep.ctid >= N_CTID_MAX)
        throw_error(Errc::protocol, call,
                    "endpoint has an invalid pid " + std::to_string(ep.pid) + " or ctid " + std::to_string(ep.ctid));
    return ep;
}

// ---- published state ---------------------------------------------------------------------------

const char* check_name(Check c) noexcept {
    switch (c) {
    case Check::ok: return "ok";
    case Check::unknown_qpn: return "qpn";
    case Check::no_context: return "context";
    case Check::not_connected: return "connection";
    case Check::no_buffer: return "buffer";
    case Check::bad_rkey: return "rkey";
    case Check::out_of_bounds: return "bounds";
    case Check::bad_psn: return "psn";
    case Check::unmapped: return "mapping";
    case Check::count: break;
    }
    return "unknown";
}

void count_rejection(NicShared& nic, Check check, int32_t ctid) noexcept {
    nic.counters.rejected[static_cast<size_t>(check)].fetch_add(1, std::memory_order_relaxed);
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    nic.counters.rejected_check[ctid].store(static_cast<uint32_t>(check), std::memory_order_relaxed);
    nic.counters.rejected_at_ns[ctid].store(coarse_now_ns(), std::memory_order_release);
}

const char* opcode_label(RdmaOpcode op) noexcept {
    switch (op) {
    case RdmaOpcode::read: return "RDMA READ";
    case RdmaOpcode::write: return "RDMA WRITE";
    case RdmaOpcode::send: return "RDMA SEND";
    }
    return "RDMA";
}

namespace {

template <typename Fn>
uint32_t seq_read(const std::atomic<uint32_t>& seq, Fn&& fn) {
    for (unsigned spins = 0;; ++spins) {
        const uint32_t s1 = seq.load(std::memory_order_acquire);
        if ((s1 & 1u) == 0) {
            fn();
            std::atomic_thread_fence(std::memory_order_acquire);
            if (seq.load(std::memory_order_relaxed) == s1) return s1;
        }
        if (spins > 64) std::this_thread::yield();
    }
}

void seq_begin(std::atomic<uint32_t>& seq) noexcept {
    seq.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
}
void seq_end(std::atomic<uint32_t>& seq) noexcept { seq.fetch_add(1, std::memory_order_release); }

constexpr auto rlx = std::memory_order_relaxed;

}  // namespace

QpView read_qp(const QpSlot& s, uint32_t* seq) noexcept {
    QpView v;
    const uint32_t sq = seq_read(s.seq, [&] {
        v.flags = s.flags.load(rlx);
        v.local_qpn = s.local_qpn.load(rlx);
        v.remote_qpn = s.remote_qpn.load(rlx);
        v.remote_ip = s.remote_ip.load(rlx);
        v.remote_rkey = s.remote_rkey.load(rlx);
        v.local_psn = s.local_psn.load(rlx);
        v.remote_psn = s.remote_psn.load(rlx);
        v.remote_vaddr = s.remote_vaddr.load(rlx);
        v.port = s.port.load(rlx);
    });
    if (seq != nullptr) *seq = sq;
    return v;
}

void write_qp(QpSlot& s, const QpView& v) noexcept {
    seq_begin(s.seq);
    s.flags.store(v.flags, rlx);
    s.local_qpn.store(v.local_qpn, rlx);
    s.remote_qpn.store(v.remote_qpn, rlx);
    s.remote_ip.store(v.remote_ip, rlx);
    s.remote_rkey.store(v.remote_rkey, rlx);
    s.local_psn.store(v.local_psn, rlx);
    s.remote_psn.store(v.remote_psn, rlx);
    s.remote_vaddr.store(v.remote_vaddr, rlx);
    s.port.store(v.port, rlx);
    seq_end(s.seq);
}

namespace {
/// The slot's fields other than the name (inside a seq_read).
void load_buf_meta(const BufSlot& s, BufMeta& v) noexcept {
    v.valid = s.valid.load(rlx) != 0;
    v.rkey = s.rkey.load(rlx);
    v.vaddr = s.vaddr.load(rlx);
    v.size = s.size.load(rlx);
    v.generation = s.generation.load(rlx);
}
}  // namespace

BufView read_buf(const BufSlot& s) {
    BufView v;
    uint64_t words[8] = {};
    seq_read(s.seq, [&] {
        load_buf_meta(s, v);
        for (size_t i = 0; i < 8; ++i) words[i] = s.name[i].load(rlx);
    });
    char name[65] = {};
    std::memcpy(name, words, 64);
    v.name = name;
    return v;
}

BufMeta read_buf_meta(const BufSlot& s, uint32_t* seq) noexcept {
    BufMeta v;
    const uint32_t sq = seq_read(s.seq, [&] { load_buf_meta(s, v); });
    if (seq != nullptr) *seq = sq;
    return v;
}

void write_buf(BufSlot& s, const BufView& v) noexcept {
    uint64_t words[8] = {};
    std::memcpy(words, v.name.data(), std::min<size_t>(v.name.size(), 63));
    seq_begin(s.seq);
    s.valid.store(v.valid ? 1u : 0u, rlx);
    s.rkey.store(v.rkey, rlx);
    s.vaddr.store(v.vaddr, rlx);
    s.size.store(v.size, rlx);
    s.generation.store(v.generation, rlx);
    for (size_t i = 0; i < 8; ++i) s.name[i].store(words[i], rlx);
    seq_end(s.seq);
}

WinView read_win(const WinSlot& s) noexcept {
    WinView v;
    seq_read(s.seq, [&] {
        v.valid = s.valid.load(rlx) != 0;
        v.vaddr = s.vaddr.load(rlx);
        v.size = s.size.load(rlx);
        v.generation = s.generation.load(rlx);
    });
    return v;
}

void write_win(WinSlot& s, const WinView& v) noexcept {
    seq_begin(s.seq);
    s.valid.store(v.valid ? 1u : 0u, rlx);
    s.vaddr.store(v.vaddr, rlx);
    s.size.store(v.size, rlx);
    s.generation.store(v.generation, rlx);
    seq_end(s.seq);
}

std::optional<WindowHit> find_window(const NicShared& nic, int32_t ctid, uint64_t vaddr, uint64_t len) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return std::nullopt;
    uint32_t mask = nic.win_mask[ctid].load(std::memory_order_acquire);
    while (mask != 0) {
        const auto i = static_cast<uint32_t>(__builtin_ctz(mask));
        mask &= mask - 1;
        if (i >= k_nic_windows) break;
        const WinView w = read_win(nic.win[ctid][i]);
        if (w.valid && range_inside(vaddr, len, w.vaddr, w.size)) return WindowHit{i, w};
    }
    return std::nullopt;
}

namespace {

/// The target queue pair's slot; with `cache`, from the cache (refreshed when either slot changed since), and
/// `cached_buf` receives the buffer slot read with it.
QpView read_target_qp(const NicShared& target, int32_t ctid, SlotCache* cache, BufMeta& cached_buf) noexcept {
    const QpSlot& slot = target.qp[ctid];
    if (cache == nullptr) return read_qp(slot);
    const uint32_t qs = slot.seq.load(std::memory_order_acquire);
    const uint32_t bs = target.buf[ctid].seq.load(std::memory_order_acquire);
    if (cache->target != &target || cache->ctid != ctid || qs != cache->qp_seq || bs != cache->buf_seq ||
        cache->owner_pid != target.owner_pid || cache->owner_start_time != target.owner_start_time) {
        uint32_t qseq = 1, bseq = 1;
        const QpView q = read_qp(slot, &qseq);
        const BufMeta b = read_buf_meta(target.buf[ctid], &bseq);
        *cache = SlotCache{&target, target.owner_pid, target.owner_start_time, ctid, qseq, bseq, q, b};
    }
    cached_buf = cache->buf;
    return cache->qp;
}

/// Why [r.vaddr, r.vaddr + r.len) is in neither the registered buffer `buf` nor a window of `ctid`.
std::string bounds_detail(const NicShared& target, const RdmaRequest& r, int32_t ctid, const BufMeta& buf) {
    const uint32_t n = static_cast<uint32_t>(__builtin_popcount(target.win_mask[ctid].load()));
    const std::string where = r.vaddr < buf.vaddr
                                  ? "remote address " + hex(r.vaddr) + " lies below the registered buffer at " +
                                        hex(buf.vaddr)
                                  : "remote_offs " + std::to_string(r.vaddr - buf.vaddr) + " + len " +
                                        std::to_string(r.len) + " exceeds the registered buffer of " +
                                        std::to_string(buf.size) + " bytes";
    return where + ": remote address " + hex(r.vaddr) + " + len " + std::to_string(r.len) +
           " is in neither the registered buffer nor a window of ctid " + std::to_string(ctid) + " (" +
           std::to_string(n) + " window" + (n == 1 ? "" : "s") + " registered)";
}

/// The checks that do not depend on the PSN: connection, registered buffer, rkey, bounds. Sets `buf` (once the
/// connection matches; from `cached_buf` when given) and `win` when the range lies in a window; `detail` on failure.
Check stateless_checks(const NicShared& target, const RdmaRequest& r, int32_t ctid, const QpView& qp,
                       const BufMeta* cached_buf, BufMeta& buf, std::optional<WindowHit>& win, std::string& detail) {
    if (qp.remote_qpn != r.src_qpn || qp.remote_ip != r.src_ip) {
        detail = "queue pair qpn " + hex(r.dst_qpn, 6) + " is connected to qpn " + hex(qp.remote_qpn, 6) + " at " +
                 ip_to_string(qp.remote_ip) + ", not to the sender qpn " + hex(r.src_qpn, 6) + " at " +
                 ip_to_string(r.src_ip);
        return Check::not_connected;
    }
    buf = cached_buf != nullptr ? *cached_buf : read_buf_meta(target.buf[ctid]);
    if (!buf.valid) {
        detail = "queue pair qpn " + hex(r.dst_qpn, 6) + " has no registered buffer";
        return Check::no_buffer;
    }
    if (r.rkey != buf.rkey) {
        // The right rkey is not named: the sender would learn the key a wrong guess is meant to be refused without.
        detail = "rkey " + hex(r.rkey, 4) + " does not match the registered buffer's rkey";
        return Check::bad_rkey;
    }
    if (range_inside(r.vaddr, r.len, buf.vaddr, buf.size)) return Check::ok;
    win = find_window(target, ctid, r.vaddr, r.len);
    if (win) return Check::ok;
    detail = bounds_detail(target, r, ctid, buf);
    return Check::out_of_bounds;
}

}  // namespace

Verdict validate_and_claim(NicShared& target, const RdmaRequest& r, SlotCache* cache) {
    Verdict v;
    const uint32_t vf_bits = (r.dst_qpn >> PID_BITS) & 0xFu;
    const int32_t ctid = static_cast<int32_t>(r.dst_qpn & PID_MASK);
    const bool ours = (r.dst_qpn >> (PID_BITS + 4)) == 0 && vf_bits == (static_cast<uint32_t>(target.vfid) & 0xFu);
    auto reject = [&](Check c, std::string detail) {
        v.check = c;
        v.detail = std::move(detail);
        count_rejection(target, c, ours ? ctid : -1);
        return v;
    };
    if (!ours)
        return reject(Check::unknown_qpn, "no queue pair with qpn " + hex(r.dst_qpn, 6) + " on vFPGA " +
                                              std::to_string(target.vfid) + " (qpn vFPGA bits " +
                                              std::to_string(vf_bits) + ")");
    BufMeta cached_buf; // with a cache: the buffer slot, read together with the queue pair slot
    const QpView qp = read_target_qp(target, ctid, cache, cached_buf);
    v.ctid = ctid;
    if ((qp.flags & QpSlot::k_exists) == 0)
        return reject(Check::unknown_qpn, "no queue pair with qpn " + hex(r.dst_qpn, 6) + " (ctid " +
                                              std::to_string(ctid) + " is not registered on vFPGA " +
                                              std::to_string(target.vfid) + ")");
    if ((qp.flags & (QpSlot::k_ctx | QpSlot::k_conn)) != (QpSlot::k_ctx | QpSlot::k_conn))
        return reject(Check::no_context, std::string("queue pair qpn ") + hex(r.dst_qpn, 6) + " has no " +
                                             ((qp.flags & QpSlot::k_ctx) == 0 ? "QP context" : "connection context") +
                                             " (the target did not write its queue pair context)");

    // Stateless checks; the PSN is claimed below whatever their outcome.
    std::string detail;
    BufMeta buf;
    std::optional<WindowHit> win;
    const Check failed =
        stateless_checks(target, r, ctid, qp, cache != nullptr ? &cached_buf : nullptr, buf, win, detail);
    uint32_t expected = r.psn;
    const bool psn_ok =
        target.qp[ctid].expected_psn.compare_exchange_strong(expected, psn_after(r.psn, r.len), std::memory_order_acq_rel);
    if (failed != Check::ok) return reject(failed, std::move(detail));
    if (!psn_ok)
        return reject(Check::bad_psn,
                      "PSN " + hex(r.psn, 6) + " does not match the expected PSN " + hex(expected, 6));
    target.counters.accepted.fetch_add(1, std::memory_order_relaxed);
    if (win) {
        v.in_window = true;
        v.window = win->index;
        v.win = win->win;
        v.offset = r.vaddr - win->win.vaddr;
    } else {
        v.offset = r.vaddr - buf.vaddr;
    }
    v.buf = buf;
    return v;
}

std::string rejection_text(RdmaOpcode op, uint32_t target_ip, uint32_t dst_qpn, const std::string& detail) {
    return std::string(opcode_label(op)) + " rejected by " + ip_to_string(target_ip) + " qpn " + hex(dst_qpn, 6) +
           ": " + detail;
}

std::string rejection_message(const RdmaRequest& r, uint32_t target_ip, const Verdict& v) {
    return rejection_text(r.op, target_ip, r.dst_qpn, v.detail);
}

// ---- frames ------------------------------------------------------------------------------------

namespace {
constexpr size_t fr_magic = 0, fr_version = 4, fr_type = 5, fr_flags = 6, fr_plen = 8, fr_psn = 12, fr_req = 16,
                 fr_src_qpn = 24, fr_dst_qpn = 28, fr_src_ip = 32, fr_rkey = 36, fr_vaddr = 40, fr_len = 48,
                 fr_check = 52;

/// The payload length (and PSN) a decoded header may have for its type; false with `error` set otherwise.
bool check_lengths(const FrameHeader& h, std::string& error) {
    const auto bad_len = [&](const std::string& why) {
        error = "frame type " + std::to_string(static_cast<unsigned>(h.type)) + ": payload length " +
                std::to_string(h.payload_len) + " " + why;
        return false;
    };
    switch (h.type) {
    case FrameType::hello:
        if (h.payload_len != 16) return bad_len("(expected 16)");
        break;
    case FrameType::hello_ack:
    case FrameType::ack:
    case FrameType::read_req:
        if (h.payload_len != 0) return bad_len("(expected 0)");
        if (h.type == FrameType::read_req && h.len > MAX_TRANSFER_SIZE) return bad_len("/ read length too large");
        break;
    case FrameType::write:
    case FrameType::send:
    case FrameType::read_resp:
        if (h.payload_len > MAX_TRANSFER_SIZE) return bad_len("exceeds MAX_TRANSFER_SIZE");
        if (h.type != FrameType::read_resp && h.payload_len != h.len) return bad_len("!= len " + std::to_string(h.len));
        break;
    case FrameType::nak:
        if (h.payload_len > k_max_nak_text) return bad_len("exceeds the NAK text limit");
        if (h.check == 0 || h.check >= static_cast<uint32_t>(Check::count)) {
            error = "NAK with unknown reason " + std::to_string(h.check);
            return false;
        }
        break;
    }
    if ((h.type == FrameType::write || h.type == FrameType::send || h.type == FrameType::read_req) && h.psn > 0xFFFFFFu) {
        error = "PSN " + std::to_string(h.psn) + " exceeds 24 bits";
        return false;
    }
    return true;
}

}  // namespace

FrameHeader request_frame(const RdmaRequest& r, uint64_t req_id, bool last) noexcept {
    FrameHeader h;
    h.type = r.op == RdmaOpcode::read ? FrameType::read_req
             : r.op == RdmaOpcode::send ? FrameType::send
                                        : FrameType::write;
    h.last = last;
    h.psn = r.psn;
    h.req_id = req_id;
    h.src_qpn = r.src_qpn;
    h.dst_qpn = r.dst_qpn;
    h.src_ip = r.src_ip;
    h.rkey = r.rkey;
    h.vaddr = r.vaddr;
    h.len = r.len;
    h.payload_len = r.op == RdmaOpcode::read ? 0 : r.len;
    return h;
}

RdmaRequest frame_request(const FrameHeader& h) noexcept {
    RdmaRequest r;
    r.op = h.type == FrameType::read_req ? RdmaOpcode::read
           : h.type == FrameType::send   ? RdmaOpcode::send
                                         : RdmaOpcode::write;
    r.src_qpn = h.src_qpn;
    r.src_ip = h.src_ip;
    r.dst_qpn = h.dst_qpn;
    r.psn = h.psn;
    r.rkey = h.rkey;
    r.vaddr = h.vaddr;
    r.len = h.len;
    return r;
}

std::array<std::byte, k_frame_header_size> encode_frame(const FrameHeader& h) noexcept {
    std::array<std::byte, k_frame_header_size> b{};
    std::byte* p = b.data();
    put<uint32_t>(p, fr_magic, k_frame_magic);
    put<uint8_t>(p, fr_version, k_frame_version);
    put<uint8_t>(p, fr_type, static_cast<uint8_t>(h.type));
    put<uint16_t>(p, fr_flags, static_cast<uint16_t>(h.last ? 1 : 0));
    put<uint32_t>(p, fr_plen, h.payload_len);
    put<uint32_t>(p, fr_psn, h.psn);
    put<uint64_t>(p, fr_req, h.req_id);
    put<uint32_t>(p, fr_src_qpn, h.src_qpn);
    put<uint32_t>(p, fr_dst_qpn, h.dst_qpn);
    put<uint32_t>(p, fr_src_ip, h.src_ip);
    put<uint32_t>(p, fr_rkey, h.rkey);
    put<uint64_t>(p, fr_vaddr, h.vaddr);
    put<uint32_t>(p, fr_len, h.len);
    put<uint32_t>(p, fr_check, h.check);
    return b;
}

bool decode_frame(std::span<const std::byte, k_frame_header_size> bytes, FrameHeader& h, std::string& error) {
    const std::byte* p = bytes.data();
    if (get<uint32_t>(p, fr_magic) != k_frame_magic) {
        error = "bad frame magic " + hex(get<uint32_t>(p, fr_magic), 8);
        return false;
    }
    if (get<uint8_t>(p, fr_version) != k_frame_version) {
        error = "unsupported frame version " + std::to_string(get<uint8_t>(p, fr_version));
        return false;
    }
    const uint8_t type = get<uint8_t>(p, fr_type);
    if (type < static_cast<uint8_t>(FrameType::hello) || type > static_cast<uint8_t>(FrameType::nak)) {
        error = "unknown frame type " + std::to_string(type);
        return false;
    }
    h.type = static_cast<FrameType>(type);
    const uint16_t flags = get<uint16_t>(p, fr_flags);
    if ((flags & ~1u) != 0) {
        error = "unknown frame flags " + std::to_string(flags);
        return false;
    }
    h.last = (flags & 1u) != 0;
    h.payload_len = get<uint32_t>(p, fr_plen);
    h.psn = get<uint32_t>(p, fr_psn);
    h.req_id = get<uint64_t>(p, fr_req);
    h.src_qpn = get<uint32_t>(p, fr_src_qpn);
    h.dst_qpn = get<uint32_t>(p, fr_dst_qpn);
    h.src_ip = get<uint32_t>(p, fr_src_ip);
    h.rkey = get<uint32_t>(p, fr_rkey);
    h.vaddr = get<uint64_t>(p, fr_vaddr);
    h.len = get<uint32_t>(p, fr_len);
    h.check = get<uint32_t>(p, fr_check);
    return check_lengths(h, error);
}

}  // namespace coyote::detail::sim
