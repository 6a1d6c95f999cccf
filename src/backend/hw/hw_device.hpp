// coyote-mpi hw backend: one vFPGA driven through the Coyote driver (/dev/coyote_fpga_<device>_v<vfid>): ioctls for
// ctids, memory, offload/sync and identity; mapped regions for commands (config), CSRs (user control) and
// completions (writeback); an eventfd per ctid and one epoll thread for user interrupts.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "backend/device.hpp"
#include "backend/hw/driver_abi.hpp"
#include "backend/hw/driver_file.hpp"
#include "backend/hw/gpu/gpu_memory.hpp"
#include "backend/hw/interrupts.hpp"
#include "backend/hw/mmio.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::hw {

class HwDevice final : public Device {
public:
    HwDevice(uint32_t device, int32_t vfid);
    ~HwDevice() override;
    HwDevice(const HwDevice&) = delete;
    HwDevice& operator=(const HwDevice&) = delete;

    const char* backend_name() const noexcept override { return "hw"; }
    uint32_t device_id() const noexcept override { return device_; }
    int32_t vfid() const noexcept override { return vfid_; }
    uint64_t shell_word() const override { return shell_word_; }
    uint64_t control_word() const override { return control_word_; }

    int32_t register_ctid(pid_t hpid) override;
    void unregister_ctid(int32_t ctid) noexcept override;

    Allocation alloc_mem(int32_t ctid, const CoyoteAlloc& req) override;
    void free_mem(int32_t ctid, const Allocation& a) noexcept override;
    void map_user(int32_t ctid, void* vaddr, uint64_t len) override;
    void unmap_user(int32_t ctid, void* vaddr) override;

    void set_csr(uint64_t val, uint32_t offs) override;
    uint64_t get_csr(uint32_t offs) const override;
    void write_cnfg(uint32_t reg, std::span<const uint64_t> words) override;
    uint64_t read_cnfg(uint32_t reg) const override;

    PostStatus post(const Command& cmd) override;
    void migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) override;

    uint32_t completed(int32_t ctid, CmplClass cls) const override;
    void clear_completed(int32_t ctid) override;
    void raise_pending_error(int32_t) override {} ///< the hardware reports no asynchronous errors
    uint32_t poll_completed(int32_t ctid, CmplClass cls) override { return completed(ctid, cls); }

    void set_interrupt_handler(int32_t ctid, InterruptHandler handler) override;

    uint32_t ip_address() const override { return ip_; }
    uint64_t mac_address() const override { return mac_; }
    uint32_t rkey(int32_t) const override { return 0; }
    std::vector<std::byte> local_endpoint(int32_t) const override { return {}; }
    void set_remote_endpoint(int32_t, std::span<const std::byte>) override {}

    std::string debug_string(int32_t ctid) const override;

    /// Changes the FPGA's IP / MAC address in the driver (IOCTL_SET_IP_ADDRESS / _MAC_); EPERM without network.
    void set_ip_address(uint32_t ip);
    void set_mac_address(uint64_t mac);

private:
    void read_identity();
    void map_regions();
    void check_ctid(int32_t ctid, const char* call) const;
    void store_command(const abi::CmdWords& w);
    uint32_t status_count(int32_t ctid, CmplClass cls) const noexcept;
    void* alloc_pages(const CoyoteAlloc& req, uint64_t& size);
    void release_pages(const Allocation& a) noexcept;
    Allocation alloc_gpu(int32_t ctid, const CoyoteAlloc& req); ///< hw_gpu_memory.cpp
    void free_gpu(int32_t ctid, const Allocation& a) noexcept;
    std::string stats_lines() const;
    /// The interrupt thread (started on first use when `create`), or null.
    InterruptThread* interrupt_thread(bool create);

    const uint32_t device_;
    const int32_t vfid_;
    DriverFile file_;
    uint64_t shell_word_ = 0;
    uint64_t control_word_ = 0;
    bool avx_ = false, wb_ = false, mem_ = false;
    std::atomic<uint32_t> ip_{0};
    std::atomic<uint64_t> mac_{0};

    Mmio mmio_;
    Mapping cnfg_map_, ctrl_map_, wback_map_;
    volatile uint64_t* cnfg_ = nullptr;  ///< legacy: 64-bit words; AVX: 4 words per register
    volatile uint64_t* ctrl_ = nullptr;  ///< user CSRs
    volatile uint32_t* wback_ = nullptr; ///< null when the shell has no writeback

    /// Commands posted per ctid since the credit register was last read (stock cThread's cmd_cnt).
    std::array<std::atomic<int32_t>, N_CTID_MAX> cmd_cnt_{};
    std::array<std::atomic<bool>, N_CTID_MAX> active_{};
    std::mutex legacy_post_mtx_; ///< the four legacy stores of one command must not interleave with another's

    mutable std::mutex mem_mtx_;
    std::set<std::pair<int32_t, uint64_t>> user_maps_; ///< (ctid, vaddr) mapped by map_user
    std::map<uint64_t, gpu::GpuBuffer> gpu_bufs_;      ///< GPU allocations by address (mapped with MAP_DMABUF)

    std::unique_ptr<InterruptThread> irq_;
};

}  // namespace coyote::detail::hw
