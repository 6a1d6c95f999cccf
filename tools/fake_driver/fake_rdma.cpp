// The fake vFPGA's RDMA between processes: each process is its own FPGA (its own IP), its sim NIC exposes the
// process's memory to the peers, and a registry in /dev/shm tells a peer's fake what the hardware never carries
// (the sim endpoint and rkey behind an (IP, qpn)); the QP context words are completed with them on the way in.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <coyote/cDefs.hpp>

#include "backend/registers.hpp"
#include "detail/handles.hpp"
#include "fake_vfpga.hpp"

namespace coyote_fake {

namespace {

/// The whole user address space as one remote-access window of the sim NIC: the FPGA reaches whatever the
/// process mapped for it; an unmapped address fails the copy (EFAULT), as a TLB miss without mapping would.
constexpr uint64_t k_window_base = 0x1000, k_window_end = 1ULL << 47;

constexpr uint32_t k_entry_magic = 0x43465150; // "CFQP"

/// What a process publishes per queue pair: the sim NIC's rkey, IP and endpoint bytes.
struct EntryHeader {
    uint32_t magic = k_entry_magic;
    uint32_t rkey = 0;
    uint32_t sim_ip = 0;
    uint32_t ep_len = 0;
    int32_t pid = 0; ///< the publishing process: its entries are reclaimed once it is gone
    uint32_t reserved = 0;
};

/// Entries are per user (the uid in the name): another user's entry neither blocks nor answers ours.
std::string entry_prefix() { return "coyote-fake-qp-" + std::to_string(::getuid()) + "-"; }

std::string entry_path(uint32_t ip, uint32_t qpn) {
    char name[48];
    std::snprintf(name, sizeof(name), "%08x-%06x", ip, qpn);
    return "/dev/shm/" + entry_prefix() + name;
}

/// Removes the entries of this user whose publishing process is gone (killed before it could unregister).
void reclaim_dead_entries() noexcept {
    DIR* d = ::opendir("/dev/shm");
    if (d == nullptr) return;
    const std::string prefix = entry_prefix();
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.compare(0, prefix.size(), prefix) != 0 || name.find('.') != std::string::npos) continue;
        const std::string path = "/dev/shm/" + name;
        const coyote::detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        // Another user's object at a name of ours (or a FIFO) is neither read nor removed.
        if (!fd || !coyote::detail::foreign_file_reason(fd.get(), path).empty()) continue;
        EntryHeader h;
        const bool ok =
            ::read(fd.get(), &h, sizeof(h)) == static_cast<ssize_t>(sizeof(h)) && h.magic == k_entry_magic;
        if (ok && h.pid > 0 && ::kill(h.pid, 0) != 0 && errno == ESRCH) (void)::unlink(path.c_str());
    }
    ::closedir(d);
}

bool write_all(int fd, const void* p, size_t n) {
    const auto* b = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

void publish_entry(uint32_t ip, uint32_t qpn, EntryHeader h, const std::vector<std::byte>& ep) {
    reclaim_dead_entries();
    h.pid = static_cast<int32_t>(::getpid());
    const std::string path = entry_path(ip, qpn);
    const std::string tmp = path + "." + std::to_string(::getpid());
    // Exclusive and never through a link: a file another user put at the name is not written (nor truncated). A
    // leftover of ours (a process that had this pid) is removed first.
    struct stat st {};
    if (::lstat(tmp.c_str(), &st) == 0 && st.st_uid == ::geteuid() && S_ISREG(st.st_mode)) (void)::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        const int err = errno;
        std::fprintf(stderr, "coyote fake driver: cannot publish queue pair %s: %s: %s\n", path.c_str(), tmp.c_str(),
                     err == EEXIST ? "another user's object is at that name; remove it" : std::strerror(err));
        return;
    }
    const bool ok = write_all(fd, &h, sizeof(h)) && write_all(fd, ep.data(), ep.size());
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        std::fprintf(stderr, "coyote fake driver: cannot publish queue pair %s\n", path.c_str());
        (void)::unlink(tmp.c_str());
    }
}

/// The entry of (ip, qpn), if a process published one.
bool read_entry(uint32_t ip, uint32_t qpn, EntryHeader& h, std::vector<std::byte>& ep) {
    const std::string path = entry_path(ip, qpn);
    const coyote::detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd) return false;
    // Only this user's entries answer: another user's file at the name would redirect our queue pair to his NIC.
    if (const std::string why = coyote::detail::foreign_file_reason(fd.get(), path); !why.empty()) {
        std::fprintf(stderr, "coyote fake driver: ignoring the queue pair entry %s\n", why.c_str());
        return false;
    }
    bool ok = ::read(fd.get(), &h, sizeof(h)) == static_cast<ssize_t>(sizeof(h)) && h.magic == k_entry_magic &&
              h.ep_len <= 4096;
    if (ok) {
        ep.resize(h.ep_len);
        ok = ::read(fd.get(), ep.data(), ep.size()) == static_cast<ssize_t>(ep.size());
    }
    return ok;
}

uint64_t gid_word_of(uint32_t ip) {
    const uint64_t g = htonl(ip);
    return (g << 32) | g;
}

uint64_t with_field(uint64_t word, Field f, uint64_t value) {
    const uint64_t mask = (f.bits == 64 ? ~0ULL : ((1ULL << f.bits) - 1)) << f.offs;
    return (word & ~mask) | ((value << f.offs) & mask);
}

}  // namespace

/// This process's FPGA IP: the sim's with the low 16 bits taken from the process and device, so that the
/// processes of one host look like the FPGAs of a cluster (the sim NICs themselves share the host's IP).
uint32_t fake_process_ip(uint32_t sim_ip, uint32_t device) {
    const auto n = (static_cast<uint32_t>(::getpid()) * 16u + device) % 0xFFFEu + 1u;
    return (sim_ip & 0xFFFF0000u) | n;
}

int32_t FakeVfpga::register_sim_ctid(int32_t ctid, pid_t hpid) {
    // The sim hands out its lowest free ctid, the driver the last one freed: take sim ctids until `ctid` comes,
    // so that the qpns the backend writes name the sim's queue pairs too.
    std::vector<int32_t> extra;
    int32_t s = -1;
    try {
        for (int i = 0; i < k_ctids; ++i) {
            s = sim_->register_ctid(hpid);
            if (s == ctid) break;
            extra.push_back(s);
            s = -1;
        }
    } catch (...) {
        for (int32_t e : extra) sim_->unregister_ctid(e);
        if (extra.empty()) throw;
        s = -1;
    }
    for (int32_t e : extra) {
        if (s < 0) { // the sim's set of ctids differs from the driver's: keep the first one (qpns then differ)
            s = e;
            continue;
        }
        sim_->unregister_ctid(e);
    }
    return s;
}

void FakeVfpga::rdma_attach(int32_t ctid) noexcept {
    const int32_t s = sim_ctid(ctid);
    if (!rdma_ || s < 0) return;
    try {
        coyote::CoyoteAlloc req;
        req.alloc = coyote::CoyoteAllocType::REG;
        req.size = 4096;
        req.remote = true; // the sim NIC's registered buffer: its rkey guards the window below
        (void)sim_->alloc_mem(s, req);
        sim_->register_window(s, reinterpret_cast<void*>(k_window_base), k_window_end - k_window_base);
        EntryHeader h;
        h.rkey = sim_->rkey(s);
        h.sim_ip = sim_ip_;
        const std::vector<std::byte> ep = sim_->local_endpoint(s);
        h.ep_len = static_cast<uint32_t>(ep.size());
        publish_entry(static_cast<uint32_t>(ip_), coyote::detail::make_qpn(vfid_, ctid), h, ep);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: RDMA for ctid %d: %s\n", ctid, e.what());
    }
}

void FakeVfpga::rdma_detach(int32_t ctid) noexcept {
    if (!rdma_) return;
    (void)::unlink(entry_path(static_cast<uint32_t>(ip_), coyote::detail::make_qpn(vfid_, ctid)).c_str());
    std::lock_guard lk(net_mtx_);
    peer_[static_cast<size_t>(ctid)] = PeerRoute{};
}

void FakeVfpga::on_net_store(uint32_t reg, const uint64_t* w, size_t n) noexcept {
    std::lock_guard lk(net_mtx_);
    const bool is_ctx = avx_ ? reg == avx::rdma_ctx : (reg >= leg::rdma_ctx_0 && reg <= leg::rdma_ctx_2);
    const bool is_conn = avx_ ? reg == avx::rdma_conn : (reg >= leg::rdma_conn_0 && reg <= leg::rdma_conn_2);
    if (is_ctx || is_conn) {
        auto& words = is_ctx ? ctx_ : conn_;
        const uint32_t first = avx_ ? reg : reg - (is_ctx ? leg::rdma_ctx_0 : leg::rdma_conn_0);
        if (avx_)
            for (size_t i = 0; i < 3 && i < n; ++i) words[i] = w[i];
        else
            words[first] = w[0];
        const bool complete = avx_ || first == 2;
        if (!complete) return;
        if (is_conn) {
            connect_qp();
            return;
        }
        // The context waits for the connection words, which name the peer (its rkey goes into the context).
        const auto ctid = static_cast<size_t>(qpn_ctid.get(qpctx::local_qpn.get(ctx_[0])));
        if (!peer_[ctid].known) {
            ctx_held_ = true;
            return;
        }
        uint64_t c[3] = {with_field(ctx_[0], qpctx::rkey, peer_[ctid].rkey), ctx_[1], ctx_[2]};
        forward_net(avx_ ? avx::rdma_ctx : leg::rdma_ctx_0, c, 3);
        return;
    }
    // ARP lookup: the sim NIC knows the peer by its sim IP.
    uint64_t word = w[0];
    const auto it = sim_ip_of_.find(static_cast<uint32_t>(word));
    if (it != sim_ip_of_.end()) word = it->second;
    forward_net(reg, &word, 1);
}

void FakeVfpga::connect_qp() noexcept {
    const uint32_t lqpn = static_cast<uint32_t>(conn::local_qpn.get(conn_[0]));
    const uint32_t rqpn = static_cast<uint32_t>(conn::remote_qpn.get(conn_[0]));
    const uint32_t rip = ntohl(static_cast<uint32_t>(conn::gid0.get(conn_[1])));
    const auto ctid = static_cast<int32_t>(qpn_ctid.get(lqpn));
    const int32_t s = sim_ctid(ctid);
    uint64_t ctx[3] = {ctx_[0], ctx_[1], ctx_[2]};
    uint64_t cw[3] = {conn_[0], conn_[1], conn_[2]};
    EntryHeader h;
    std::vector<std::byte> ep;
    if (rdma_ && s >= 0 && read_entry(rip, rqpn, h, ep)) {
        try {
            sim_->set_remote_endpoint(s, ep);
            PeerRoute& p = peer_[static_cast<size_t>(ctid)];
            p = PeerRoute{true, h.rkey, h.sim_ip};
            sim_ip_of_[rip] = h.sim_ip;
            ctx[0] = with_field(ctx[0], qpctx::rkey, h.rkey);
            cw[1] = cw[2] = gid_word_of(h.sim_ip);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote fake driver: connecting ctid %d to %08x qpn %06x: %s\n", ctid, rip, rqpn,
                         e.what());
        }
    }
    // Without an entry (a peer that is not on the fake driver) the words go to the sim as they are.
    if (ctx_held_ && qpn_ctid.get(qpctx::local_qpn.get(ctx_[0])) == static_cast<uint64_t>(ctid)) {
        forward_net(avx_ ? avx::rdma_ctx : leg::rdma_ctx_0, ctx, 3);
        ctx_held_ = false;
    }
    forward_net(avx_ ? avx::rdma_conn : leg::rdma_conn_0, cw, 3);
}

void FakeVfpga::forward_net(uint32_t first_reg, const uint64_t* w, size_t n) noexcept {
    try {
        if (avx_ || n == 1) {
            const uint64_t words[4] = {w[0], n > 1 ? w[1] : 0, n > 2 ? w[2] : 0, 0};
            sim_->write_cnfg(first_reg, std::span<const uint64_t>(words, avx_ ? 4 : 1));
            return;
        }
        for (uint32_t i = 0; i < n; ++i) sim_->write_cnfg(first_reg + i, std::span<const uint64_t>(w + i, 1));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: network register %u: %s\n", first_reg, e.what());
    }
}

}  // namespace coyote_fake
