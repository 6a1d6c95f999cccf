// One vFPGA of the fake Coyote driver: the driver's bookkeeping (ctids, eventfds, notification handshake, error
// returns) in front of a sim vFPGA (the backend contract's sim Device) that plays the FPGA. Register stores arrive
// through the backend's MMIO seam; completions, the command credit and the CSRs are written back into the regions
// the process mapped, as the hardware would.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include "backend/device.hpp"
#include "hw_fields.hpp"

namespace coyote_fake {

/// A region's memory: a memfd every mapping of the region shares, and the fake's own mapping of it.
struct RegionMemory {
    int memfd = -1;
    unsigned long size = 0;
    volatile uint64_t* words = nullptr;
};

/// This process's FPGA IP on device `device`, derived from the sim NIC's IP `sim_ip` (fake_rdma.cpp).
uint32_t fake_process_ip(uint32_t sim_ip, uint32_t device);

class FakeVfpga {
public:
    FakeVfpga(uint32_t device, int32_t vfid);
    ~FakeVfpga();
    FakeVfpga(const FakeVfpga&) = delete;
    FakeVfpga& operator=(const FakeVfpga&) = delete;

    /// Handles an ioctl as vfpga_dev_ioctl does: 0, a negative errno, or the driver's positive code.
    long ioctl(unsigned long request, uint64_t* args);
    /// The memfd and size of region `index` (mmap offset >> 12), or -errno.
    long region_fd(unsigned long index, unsigned long len, const RegionMemory** out) const;
    /// A store the backend made at byte `offset` of region `index`.
    void on_store(unsigned long index, unsigned long offset, const void* data, size_t bytes) noexcept;
    /// The last file of the device closed: every ctid still registered goes (vfpga_dev_release).
    void release_all() noexcept;

    // ioctl handlers (one per call; see fake_ioctl.cpp)
    long register_ctid(uint64_t* a);
    long unregister_ctid(uint64_t* a);
    long register_eventfd(uint64_t* a);
    long unregister_eventfd(uint64_t* a);
    long map_user_mem(uint64_t* a);
    long unmap_user_mem(uint64_t* a);
    long map_dmabuf(uint64_t* a);   ///< fake_dmabuf.cpp
    long unmap_dmabuf(uint64_t* a);
    long migrate(uint64_t* a, bool to_card);
    long set_address(uint64_t* a, bool mac); ///< SET_IP_ADDRESS / SET_MAC_ADDRESS
    long get_address(uint64_t* a, bool mac); ///< GET_IP_ADDRESS / GET_MAC_ADDRESS
    long read_shell_config(uint64_t* a);
    long hdma_stats(uint64_t* a);
    long net_stats(uint64_t* a);
    long notification_processed(uint64_t* a);
    long notification_value(uint64_t* a);

private:
    /// The notification handshake of one ctid (user_notifier, user_notifier_lock, interrupt_value).
    struct Notifier {
        int efd = -1;          ///< our duplicate of the process's eventfd (the driver holds a reference too)
        bool busy = false;     ///< a notification waits for SET_NOTIFICATION_PROCESSED
        bool closing = false;
        int32_t value = 0;
    };

    int32_t sim_ctid(int64_t ctid) const noexcept; ///< -1 when `ctid` is not registered
    void notify(int32_t ctid, int32_t value) noexcept;
    void drop_notifier(int32_t ctid) noexcept;
    void on_cnfg_store(uint32_t reg, const uint64_t* w, size_t n) noexcept;

    /// A dma-buf mapped with IOCTL_MAP_DMABUF: the fake's reference (a dup of the fd) and its size.
    struct DmabufMap {
        int fd = -1;
        uint64_t size = 0;
    };
    void detach_dmabuf(int32_t ctid, uint64_t vaddr, const DmabufMap& m) noexcept; ///< dmabuf_mtx_ held
    void drop_dmabufs(int32_t ctid) noexcept; ///< every dma-buf of `ctid` (unregistration, as the driver does)

    // RDMA between processes (fake_rdma.cpp)
    int32_t register_sim_ctid(int32_t ctid, pid_t hpid); ///< the sim ctid, equal to `ctid` whenever it is free
    void rdma_attach(int32_t ctid) noexcept;            ///< registered buffer, whole-process window, registry entry
    void rdma_detach(int32_t ctid) noexcept;            ///< withdraws the registry entry
    void on_net_store(uint32_t reg, const uint64_t* w, size_t n) noexcept;
    void connect_qp() noexcept;                          ///< the connection words are complete (net_mtx_ held)
    void forward_net(uint32_t first_reg, const uint64_t* w, size_t n) noexcept;
    void on_command(const uint64_t (&w)[4]) noexcept;
    void post_to_sim(const coyote::detail::Command& c) noexcept;
    /// Hands queued commands to the sim vFPGA while it takes them (the poller, without the state lock).
    void drain_backlog() noexcept;
    /// Forgets the queued commands of sim ctid `s` (it is being unregistered).
    void drop_backlog(int32_t s) noexcept;
    void clear(int32_t ctid) noexcept;
    void publish() noexcept; ///< completions, credit (state lock held)
    void refresh_csrs() noexcept; ///< copies the sim's user CSRs into the ctrl region (takes csr_mtx_)
    void poll_loop(std::stop_token stop) noexcept;

    const uint32_t device_;
    const int32_t vfid_;
    std::shared_ptr<coyote::detail::Device> sim_;
    uint64_t shell_word_ = 0;
    bool avx_ = false, wb_ = false, mem_ = false, net_ = false;
    uint64_t ip_ = 0, mac_ = 0;

    bool rdma_ = false;
    uint32_t sim_ip_ = 0; ///< the sim NIC's IP (ip_ is this process's own FPGA IP, see fake_rdma.cpp)

    std::array<RegionMemory, 4> regions_{}; ///< wb, cnfg, cnfg_avx, ctrl

    // RDMA: the QP context and connection words held until the peer is known, and what is known of the peers
    struct PeerRoute {
        bool known = false;
        uint32_t rkey = 0;   ///< the peer sim NIC's rkey
        uint32_t sim_ip = 0; ///< the peer sim NIC's IP
    };
    std::mutex net_mtx_;
    std::array<uint64_t, 3> ctx_{}, conn_{};
    bool ctx_held_ = false;
    std::array<PeerRoute, k_ctids> peer_{};
    std::map<uint32_t, uint32_t> sim_ip_of_; ///< peer FPGA IP -> its sim NIC's IP (for ARP lookups)

    // driver bookkeeping (pid_lock)
    mutable std::mutex pid_mtx_;
    std::array<int32_t, k_ctids> free_stack_{}; ///< the driver's free list: the last freed is taken first
    int n_free_ = 0;
    std::array<pid_t, k_ctids> pid_array_{};
    std::array<std::atomic<int32_t>, k_ctids> sim_ctid_{};

    std::mutex dmabuf_mtx_;
    std::map<std::pair<int32_t, uint64_t>, DmabufMap> dmabufs_; ///< by (ctid, vaddr)

    // notifications
    std::mutex irq_mtx_;
    std::condition_variable irq_cv_;
    std::array<Notifier, k_ctids> notifier_{};

    /// Orders the copies of the user CSRs into the ctrl region: a store's thread and the poller both refresh them.
    std::mutex csr_mtx_;

    // the hardware side: command decode, completions, credit
    std::mutex hw_mtx_;
    uint64_t legacy_[4] = {0, 0, 0, 0}; ///< legacy CTRL, VADDR_RD, CTRL_2, VADDR_WR as last stored
    std::condition_variable_any poll_cv_; ///< wakes the poller on a post (posted_ changes) or a stop request
    std::atomic<uint64_t> posted_{0};
    /// The shell's command queue beyond what the sim vFPGA holds in flight (k_max_inflight): the hardware queue
    /// is CMD_FIFO_DEPTH deep and the host's credit check lets one more command through than the sim holds.
    std::mutex backlog_mtx_;
    std::deque<coyote::detail::Command> backlog_;
    std::atomic<uint32_t> backlog_n_{0};
    std::array<std::array<uint32_t, 4>, k_ctids> shown_{}; ///< the counts publish() last made visible
    std::jthread poller_;
};

}  // namespace coyote_fake
