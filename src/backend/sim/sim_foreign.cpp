// coyote-mpi sim backend: host memory of a ctid registered for another process (a service's cThread for a client):
// its addresses are that process's memory, checked against /proc/<pid>/maps and copied with process_vm_*.
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "backend/sim/net/process_memory.hpp"
#include "backend/sim/shell_port.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

constexpr uint64_t k_stage_bytes = 1ull << 20; // staging buffer of one direction (and of one output dest)

/// Why process `pid` could not be reached (errno `err` of process_vm_readv / writev).
std::string reach_error(pid_t pid, int err) {
    const std::string p = "process " + std::to_string(pid);
    switch (err) {
    case ESRCH: return p + " has exited";
    case EPERM: return "no permission to reach the memory of " + p + " (another user, or Yama ptrace_scope)";
    case EFAULT: return "the range is not mapped (or not writable) in " + p;
    default: return p + ": " + std::strerror(err);
    }
}

/// The staging buffer `v`, allocated on first use.
std::byte* stage(std::vector<std::byte>& v) {
    if (v.empty()) v.resize(k_stage_bytes);
    return v.data();
}

}  // namespace

void SimDevice::check_foreign_range(int32_t ctid, uint64_t addr, uint64_t len, bool write, const char* what,
                                    const char* call) {
    const pid_t pid = ctids_[static_cast<size_t>(ctid)].hpid;
    const std::vector<ProcRange> maps = read_proc_maps(pid);
    auto where = [&] {
        return std::string(what) + " at " + hex(addr) + " (len " + std::to_string(len) + ") in process " +
               std::to_string(pid) + " (ctid " + std::to_string(ctid) + ")";
    };
    if (maps.empty())
        throw_error(Errc::not_mapped, call, where() + ": its memory map cannot be read (it has exited?)");
    const uint64_t s = addr / k_host_page * k_host_page;
    const uint64_t e = round_up(addr + len, k_host_page);
    if (const ProcCheck c = check_proc_range(maps, s, e, write); !c.ok())
        throw_error(Errc::not_mapped, call, where() + ": address " + hex(c.bad) + " is " + describe(c.access));
}

void SimDevice::feed_foreign(coyote::sim::InputChunk& in, const SgSide& src, bool last) {
    const pid_t pid = ctids_[static_cast<size_t>(in.ctid)].hpid;
    std::byte* buf = stage(foreign_in_);
    uint64_t off = 0;
    while (off < src.len) {
        const uint64_t n = std::min(k_stage_bytes, src.len - off);
        const int err = net::vm_copy(pid, false, reinterpret_cast<uint64_t>(buf), src.addr + off, n);
        if (err != 0) {
            record_error(in.ctid, make_error_code(Errc::not_mapped),
                         "LOCAL read at " + hex(src.addr + off) + " (len " + std::to_string(n) +
                             ") failed: " + reach_error(pid, err));
            return;
        }
        off += n;
        in.data = std::span<const std::byte>(buf, static_cast<size_t>(n));
        in.end_of_command = off == src.len;
        in.last = in.end_of_command && last;
        model_->on_input(*port_, in);
    }
}

std::span<std::byte> SimDevice::staging_window(PendingWrite& w, uint64_t max) {
    return {stage(foreign_out_[w.dest]), static_cast<size_t>(std::min(max, k_stage_bytes))};
}

void SimDevice::flush_foreign(PendingWrite& w, uint64_t n) noexcept {
    if (w.failed || n == 0) return;
    const int err = net::vm_copy(w.pid, true, reinterpret_cast<uint64_t>(foreign_out_[w.dest].data()),
                                 w.addr + w.filled, n);
    if (err == 0) return;
    w.failed = true; // the rest of the write is dropped; the command still completes, with this error
    try {
        record_error(w.ctid, make_error_code(Errc::not_mapped),
                     "LOCAL_WRITE to " + hex(w.addr + w.filled) + " (len " + std::to_string(n) +
                         ") failed: " + reach_error(w.pid, err));
    } catch (...) {
    }
}

void SimDevice::migrate_foreign(int32_t ctid, uint64_t addr, uint64_t len, bool to_card) {
    const pid_t pid = ctids_[static_cast<size_t>(ctid)].hpid;
    std::lock_guard hw(hw_mtx_);
    if (to_card) card_.reserve(addr, len);
    uint64_t off = 0;
    while (off < len) {
        const std::span<std::byte> w = to_card ? card_.write_window(addr + off, len - off) : std::span<std::byte>{};
        const std::span<const std::byte> r =
            to_card ? std::span<const std::byte>{} : card_.read_window(addr + off, len - off);
        const auto local = reinterpret_cast<uint64_t>(to_card ? static_cast<const void*>(w.data()) : r.data());
        const uint64_t n = to_card ? w.size() : r.size();
        if (const int err = net::vm_copy(pid, !to_card, local, addr + off, n); err != 0)
            throw_error(Errc::not_mapped, "invoke",
                        std::string(to_card ? "LOCAL_OFFLOAD" : "LOCAL_SYNC") + " at " + hex(addr + off) +
                            ": " + reach_error(pid, err));
        off += n;
    }
}

}  // namespace coyote::detail::sim
