// coyote-mpi sim backend: the output streams of a vFPGA. The model's output of a dest fills the pending
// LOCAL_WRITEs of that dest in order; output with no write waiting is buffered (up to k_output_buffer_cap).
// A model may also reserve() a window straight into the front write's memory and commit() what it wrote.
// Everything here runs under the model lock.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "backend/sim/shell_port.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

/// The error of an output dest out of range (cold: kept off the hot path).
[[noreturn, gnu::cold]] void throw_bad_dest(uint32_t dest, const char* call) {
    throw_error(Errc::invalid_argument, call, "output dest " + std::to_string(dest) + " is out of range (0..15)");
}

/// Throws unless `dest` is an output dest of the shell.
inline void check_dest(uint32_t dest, const char* call) {
    if (dest >= coyote::sim::k_n_dests) [[unlikely]]
        throw_bad_dest(dest, call);
}

/// Largest shell buffer reserve() hands out while no write is pending: the buffer is allocated (and zeroed) at its
/// full size, so a model's reserve(dest, SIZE_MAX) failed with bad_alloc, and 8 GiB took that much memory.
constexpr size_t k_max_shell_window = size_t{2} << 20;

}  // namespace

// ---------------------------------------------------------------------------------------------
// The shell as the model sees it
// ---------------------------------------------------------------------------------------------

SimDevice::ShellPort::~ShellPort() = default;

void SimDevice::ShellPort::push(uint32_t dest, std::span<const std::byte> data) { d_.output_push(dest, data); }

std::span<std::byte> SimDevice::ShellPort::reserve(uint32_t dest, std::size_t max_bytes) {
    return d_.output_reserve(dest, max_bytes);
}

void SimDevice::ShellPort::commit(uint32_t dest, std::size_t n) { d_.output_commit(dest, n); }

uint64_t SimDevice::ShellPort::output_demand(uint32_t dest) const {
    if (dest >= coyote::sim::k_n_dests) return 0;
    uint64_t n = 0;
    for (const auto& w : d_.pending_[dest]) n += w.len - w.filled;
    return n;
}

uint64_t SimDevice::ShellPort::csr_read(uint32_t offs) const {
    return offs < coyote::sim::k_csr_words ? d_.csr_[offs].load(std::memory_order_acquire) : 0;
}

void SimDevice::ShellPort::csr_write(uint32_t offs, uint64_t value) {
    if (offs < coyote::sim::k_csr_words) d_.csr_[offs].store(value, std::memory_order_release);
}

void SimDevice::ShellPort::raise_interrupt(int32_t ctid, int32_t value) { d_.raise_interrupt(ctid, value); }

int32_t SimDevice::ShellPort::vfid() const noexcept { return d_.vfid_; }

uint32_t SimDevice::ShellPort::device() const noexcept { return d_.device_; }

void SimDevice::write(uint64_t vaddr, std::span<const std::byte> data) {
    card_.reserve(vaddr, data.size());
    uint64_t off = 0;
    while (off < data.size()) {
        const auto w = card_.write_window(vaddr + off, data.size() - off);
        std::memcpy(w.data(), data.data() + off, w.size());
        off += w.size();
    }
}

// ---------------------------------------------------------------------------------------------
// Reservations
// ---------------------------------------------------------------------------------------------

// inline: discard_reservations() runs after every model callback, over every dest.
inline void SimDevice::drop_reservation(uint32_t dest) noexcept {
    auto& r = reservation_[dest];
    if (r.active && !r.into_write) fifo_[dest].chunks.pop_back();
    r = Reservation{};
}

void SimDevice::discard_reservations() noexcept {
    for (uint32_t d = 0; d < coyote::sim::k_n_dests; ++d) drop_reservation(d);
}

// ---------------------------------------------------------------------------------------------
// Pending writes
// ---------------------------------------------------------------------------------------------

void SimDevice::add_pending_write(int32_t ctid, const SgSide& dst, bool last) {
    PendingWrite w{ctid, dst.addr, dst.len, 0, dst.stream == STRM_CARD, last};
    w.dest = dst.dest;
    const auto& st = ctids_[static_cast<size_t>(ctid)];
    if (st.foreign && !w.card) [[unlikely]]
        w.pid = st.hpid;
    if (w.len == 0) {
        finish_write(w);
        return;
    }
    if (w.card) card_.reserve(w.addr, w.len);
    pending_[dst.dest].push_back(w);
    drain_fifo_into_writes(dst.dest);
    try {
        model_->on_output_request(*port_, dst.dest, dst.len);
        discard_reservations();
    } catch (...) {
        discard_reservations();
        record_exception(ctid, "user-logic model '" + model_.origin() + "' on output request dest " +
                                   std::to_string(dst.dest));
    }
    // Writes complete in order: if any is left, the last one is this write, still waiting for (part of) its data.
    auto& q = pending_[dst.dest];
    if (!q.empty() && !q.back().card && q.back().pid == 0)
        q.back().recheck = !tlb_.lookup(w.addr + q.back().filled, w.len - q.back().filled, true).owned_only;
}

std::span<std::byte> SimDevice::write_window(PendingWrite& w, uint64_t max) {
    const uint64_t n = std::min(max, w.len - w.filled);
    if (w.card) return card_.write_window(w.addr + w.filled, n);
    if (w.pid != 0 || w.recheck || w.failed) [[unlikely]]
        return checked_window(w, n);
    return {reinterpret_cast<std::byte*>(w.addr + w.filled), static_cast<size_t>(n)};
}

std::span<std::byte> SimDevice::checked_window(PendingWrite& w, uint64_t n) {
    if (w.recheck) {
        // Checked at its post; the process may have unmapped or protected it while it waited for data.
        w.recheck = false;
        const uint64_t s = (w.addr + w.filled) / k_host_page * k_host_page;
        if (const char* why = process_access(s, round_up(w.addr + w.len, k_host_page), true)) {
            w.failed = true;
            record_error(w.ctid, make_error_code(Errc::not_mapped),
                         "LOCAL_WRITE to " + hex(w.addr) + " (len " + std::to_string(w.len) +
                             ") failed: its memory " + why + " when its data came");
        }
    }
    if (w.pid != 0 || w.failed) return staging_window(w, n);
    return {reinterpret_cast<std::byte*>(w.addr + w.filled), static_cast<size_t>(n)};
}

inline void SimDevice::fill_front(std::deque<PendingWrite>& q, uint64_t n) {
    auto& w = q.front();
    if (w.pid != 0) [[unlikely]]
        flush_foreign(w, n);
    w.filled += n;
    if (w.filled == w.len) {
        finish_write(w);
        q.pop_front();
    }
}

void SimDevice::finish_write(PendingWrite& w) {
    ctids_[static_cast<size_t>(w.ctid)].bytes_written.fetch_add(w.len, std::memory_order_relaxed);
    if (w.last) bump(w.ctid, CmplClass::local_write);
    command_done(w.ctid);
}

void SimDevice::abort_writes_in(uint64_t start, uint64_t end, const std::string& why) {
    spill_held(); // the model copies held input before its memory goes away
    for (auto& q : pending_) {
        for (auto it = q.begin(); it != q.end();) {
            if (it->pid == 0 && it->addr < end && start < it->addr + it->len) { // a foreign write is elsewhere
                record_error(it->ctid, make_error_code(Errc::not_mapped),
                             "LOCAL_WRITE to " + hex(it->addr) + " (len " + std::to_string(it->len) +
                                 ") was cancelled: " + why);
                command_done(it->ctid);
                it = q.erase(it);
            } else {
                ++it;
            }
        }
    }
}

void SimDevice::reset_streams() noexcept {
    discard_reservations();
    for (uint32_t d = 0; d < coyote::sim::k_n_dests; ++d) // the model that held them is gone: the reads complete
        while (!held_[d].empty()) release_input(d);
    for (auto& q : pending_) {
        for (const PendingWrite& w : q) {
            try {
                record_error(w.ctid, make_error_code(Errc::not_supported),
                             "LOCAL_WRITE to " + hex(w.addr) + " (len " + std::to_string(w.len) +
                                 ") was cancelled: the vFPGA was reconfigured before its data came");
            } catch (...) {
            }
            command_done(w.ctid);
        }
        q.clear();
    }
    for (auto& f : fifo_) f = OutputFifo{};
}

// ---------------------------------------------------------------------------------------------
// Buffered output
// ---------------------------------------------------------------------------------------------

void SimDevice::drain_fifo_into_writes(uint32_t dest) {
    auto& f = fifo_[dest];
    auto& q = pending_[dest];
    while (f.bytes > 0 && !q.empty()) {
        auto& chunk = f.chunks.front();
        const auto win = write_window(q.front(), chunk.size() - f.head);
        std::memcpy(win.data(), chunk.data() + f.head, win.size());
        f.head += win.size();
        f.bytes -= win.size();
        if (f.head == chunk.size()) {
            f.chunks.pop_front();
            f.head = 0;
        }
        fill_front(q, win.size());
    }
}

void SimDevice::buffer_output(uint32_t dest, std::span<const std::byte> data) {
    auto& f = fifo_[dest];
    uint64_t keep = data.size();
    if (f.bytes + keep > k_output_buffer_cap) {
        keep = k_output_buffer_cap > f.bytes ? k_output_buffer_cap - f.bytes : 0;
        if (dropped_output_ == 0)
            std::fprintf(stderr,
                         "coyote sim: vFPGA %d output dest %u overflows (%llu MiB buffered and no LOCAL_WRITE "
                         "posted); dropping data\n",
                         vfid_, dest, static_cast<unsigned long long>(k_output_buffer_cap >> 20));
        dropped_output_ += data.size() - keep;
    }
    if (keep == 0) return;
    f.chunks.emplace_back(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(keep));
    f.bytes += keep;
}

// ---------------------------------------------------------------------------------------------
// push / reserve / commit
// ---------------------------------------------------------------------------------------------

void SimDevice::output_push(uint32_t dest, std::span<const std::byte> data) {
    check_dest(dest, "Shell::push");
    drop_reservation(dest);
    auto& q = pending_[dest];
    while (!data.empty() && !q.empty()) {
        const auto win = write_window(q.front(), data.size());
        std::memmove(win.data(), data.data(), win.size()); // source and destination may be the same buffer
        data = data.subspan(win.size());
        fill_front(q, win.size());
    }
    if (!data.empty()) buffer_output(dest, data);
}

std::span<std::byte> SimDevice::output_reserve(uint32_t dest, size_t max) {
    check_dest(dest, "Shell::reserve");
    drop_reservation(dest);
    if (max == 0) return {};
    auto& r = reservation_[dest];
    auto& q = pending_[dest];
    if (!q.empty()) {
        const auto win = write_window(q.front(), max);
        r = Reservation{true, true, win.size()};
        return win;
    }
    max = std::min(max, k_max_shell_window);
    auto& chunk = fifo_[dest].chunks.emplace_back(max);
    r = Reservation{true, false, max};
    return {chunk.data(), chunk.size()};
}

void SimDevice::output_commit(uint32_t dest, size_t n) {
    check_dest(dest, "Shell::commit");
    auto& r = reservation_[dest];
    if (!r.active) {
        if (n == 0) return;
        throw_error(Errc::invalid_argument, "Shell::commit", "commit of dest " + std::to_string(dest) + " without reserve");
    }
    if (n > r.size)
        throw_error(Errc::invalid_argument, "Shell::commit",
                    "commit of " + std::to_string(n) + " bytes on dest " + std::to_string(dest) + " exceeds the " +
                        std::to_string(r.size) + "-byte window");
    r.active = false;
    if (r.into_write) {
        fill_front(pending_[dest], n);
        return;
    }
    auto& f = fifo_[dest];
    auto chunk = std::move(f.chunks.back());
    f.chunks.pop_back();
    if (n > 0) buffer_output(dest, std::span<const std::byte>(chunk.data(), n));
}

}  // namespace coyote::detail::sim
