// coyote-mpi sim backend: the NIC's remotely accessible memory per queue pair: the registered buffer (rkey) and
// the remote-access windows, published for peers.
#include <random>

#include <coyote/error.hpp>

#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/process_memory.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

void NicImpl::register_buffer(int32_t ctid, void* addr, uint64_t size, const std::string& shm_name) {
    CtidState& cs = cs_checked(ctid, "register_buffer");
    if (shm_name.size() > k_segment_name_max)
        throw_error(Errc::invalid_argument, "register_buffer", "segment name '" + shm_name + "' is too long");
    static thread_local std::mt19937 rng(std::random_device{}());
    std::unique_lock bl(bufs_mtx_);
    std::lock_guard lk(cs.mtx);
    uint32_t key = 0;
    while (key == 0 || key == cs.rkey) key = static_cast<uint32_t>(rng());
    cs.rkey = key;
    cs.buf_addr = reinterpret_cast<uint64_t>(addr);
    cs.buf_size = size;
    cs.buf_name = shm_name;
    ++cs.buf_generation;
    BufView v;
    v.valid = true;
    v.rkey = key;
    v.vaddr = cs.buf_addr;
    v.size = size;
    v.generation = cs.buf_generation;
    v.name = shm_name;
    write_buf(shared_->buf[ctid], v);
    mark_exists(ctid);
}

void NicImpl::unregister_buffer(int32_t ctid, void* addr) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::unique_lock bl(bufs_mtx_); // waits for wire I/O into or out of the buffer
    std::lock_guard lk(cs.mtx);
    if (cs.buf_addr != reinterpret_cast<uint64_t>(addr)) return;
    withdraw_buffer(ctid, cs);
}

void NicImpl::withdraw_buffer(int32_t ctid, CtidState& cs) noexcept {
    cs.buf_addr = 0;
    cs.buf_size = 0;
    cs.rkey = 0;
    cs.buf_name.clear();
    ++cs.buf_generation;
    BufView v;
    v.generation = cs.buf_generation;
    write_buf(shared_->buf[ctid], v);
}

uint32_t NicImpl::rkey(int32_t ctid) const {
    CtidState& cs = cs_checked(ctid, "rkey");
    std::lock_guard lk(cs.mtx);
    return cs.rkey;
}

void NicImpl::register_window(int32_t ctid, uint64_t vaddr, uint64_t len) {
    CtidState& cs = cs_checked(ctid, "registerWindow");
    const char* call = "registerWindow";
    // Messages are built only on failure.
    auto range = [&] { return hex(vaddr, 1) + " + len " + std::to_string(len); };
    if (vaddr == 0) throw_error(Errc::invalid_argument, call, "null window address (ctid " + std::to_string(ctid) + ")");
    if (len == 0) throw_error(Errc::invalid_argument, call, "empty window at " + hex(vaddr, 1));
    if (vaddr + len < vaddr)
        throw_error(Errc::invalid_argument, call, "window " + range() + " wraps around the address space");
    if (vaddr + len > (1ULL << 48))
        throw_error(Errc::invalid_argument, call,
                    "window " + range() + " ends beyond the 48-bit virtual addresses RDMA requests carry");
    std::lock_guard lk(cs.mtx);
    size_t free_slot = k_nic_windows;
    for (size_t i = 0; i < k_nic_windows; ++i) {
        const CtidState::Window& w = cs.wins[i];
        if (w.size == 0) {
            if (free_slot == k_nic_windows) free_slot = i;
            continue;
        }
        if (vaddr < w.vaddr + w.size && w.vaddr < vaddr + len)
            throw_error(Errc::invalid_argument, call,
                        "window " + range() + " overlaps the window " + hex(w.vaddr, 1) + " + len " +
                            std::to_string(w.size) + " of ctid " + std::to_string(ctid));
    }
    if (free_slot == k_nic_windows)
        throw_error(Errc::invalid_argument, call,
                    "window table of ctid " + std::to_string(ctid) + " is full: all " + std::to_string(k_nic_windows) +
                        " windows (cThread::k_max_windows) are registered; cannot add " + range());
    cs.wins[free_slot] = {vaddr, len};
    ++cs.win_count;
    WinView v;
    v.valid = true;
    v.vaddr = vaddr;
    v.size = len;
    v.generation = ++cs.win_generation;
    write_win(shared_->win[ctid][free_slot], v);
    shared_->win_mask[ctid].fetch_or(1u << free_slot, std::memory_order_release);
    mark_exists(ctid);
}

void NicImpl::unregister_window(int32_t ctid, uint64_t vaddr) {
    CtidState& cs = cs_checked(ctid, "unregisterWindow");
    std::unique_lock bl(bufs_mtx_); // waits for tcp wire I/O into or out of a window
    std::lock_guard lk(cs.mtx);
    size_t slot = k_nic_windows;
    for (size_t i = 0; i < k_nic_windows && slot == k_nic_windows; ++i)
        if (cs.wins[i].size != 0 && cs.wins[i].vaddr == vaddr) slot = i;
    if (slot == k_nic_windows)
        throw_error(Errc::invalid_argument, "unregisterWindow",
                    "no window of ctid " + std::to_string(ctid) + " starts at " + hex(vaddr, 1) + " (" +
                        std::to_string(cs.win_count) + " registered)");
    shared_->win_mask[ctid].fetch_and(~(1u << slot), std::memory_order_release);
    WinView v;
    v.generation = ++cs.win_generation;
    write_win(shared_->win[ctid][slot], v);
    cs.wins[slot] = {};
    --cs.win_count;
}

}  // namespace coyote::detail::sim::net
