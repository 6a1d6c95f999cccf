// The reconfiguration device: ALLOC/FREE_HOST_RECONFIG_MEM with the mmap of the pages in between, RECONFIGURE_APP,
// RECONFIGURE_SHELL, PR_CNFG (driver/src/reconfig/reconfig_ops.c).
#include "backend/hw/reconfig_device.hpp"

#include <coyote/error.hpp>

namespace coyote::detail::hw {

ReconfigBuffer& ReconfigBuffer::operator=(ReconfigBuffer&& o) noexcept {
    if (this != &o) {
        release();
        file_ = std::exchange(o.file_, nullptr);
        map_ = std::move(o.map_);
        pid_ = o.pid_;
        crid_ = o.crid_;
    }
    return *this;
}

void ReconfigBuffer::release() noexcept {
    if (file_ == nullptr || !map_) return;
    abi::Args args{};
    args[abi::slot::rc_vaddr] = reinterpret_cast<uint64_t>(map_.get());
    args[abi::slot::rc_alloc_pid] = static_cast<uint64_t>(pid_);
    args[abi::slot::rc_alloc_crid] = crid_;
    map_.reset();
    (void)file_->try_call(abi::k_free_host_reconfig_mem, args);
    file_ = nullptr;
}

ReconfigDevice::ReconfigDevice(uint32_t device) : file_(abi::reconfig_device_file(device)) {}

bool ReconfigDevice::pr_enabled() const {
    abi::Args args{};
    file_.call(abi::k_pr_cnfg, args);
    return args[abi::slot::value] != 0;
}

ReconfigBuffer ReconfigDevice::alloc(uint64_t bytes, pid_t pid, uint32_t crid) const {
    if (bytes == 0) throw_error(Errc::invalid_argument, "reconfiguration memory", "size 0");
    const uint64_t pages = (bytes + abi::k_reconfig_page_size - 1) / abi::k_reconfig_page_size;
    abi::Args args{};
    args[abi::slot::rc_pages] = pages;
    args[abi::slot::rc_alloc_pid] = static_cast<uint64_t>(pid);
    args[abi::slot::rc_alloc_crid] = crid;
    file_.call(abi::k_alloc_host_reconfig_mem, args, "allocating " + std::to_string(pages) + " pages of 2 MiB");
    ReconfigBuffer buf;
    buf.map_ = file_.map(abi::Region::reconfig, pages * abi::k_reconfig_page_size, "reconfiguration memory");
    buf.file_ = &file_;
    buf.pid_ = pid;
    buf.crid_ = crid;
    return buf;
}

void ReconfigDevice::check(const ReconfigBuffer& buf, uint64_t len, const char* call) const {
    if (!buf.map_ || buf.file_ != &file_)
        throw_error(Errc::invalid_argument, call, "the buffer was not allocated on " + file_.path());
    if (len == 0 || len > buf.size())
        throw_error(Errc::invalid_argument, call,
                    "length " + std::to_string(len) + " outside the buffer of " + std::to_string(buf.size()) + " bytes");
}

abi::Args ReconfigDevice::load_args(const ReconfigBuffer& buf, uint64_t len, const char* call) const {
    check(buf, len, call);
    abi::Args args{};
    args[abi::slot::rc_vaddr] = reinterpret_cast<uint64_t>(buf.data());
    args[abi::slot::rc_len] = len;
    args[abi::slot::rc_pid] = static_cast<uint64_t>(buf.pid_);
    args[abi::slot::rc_crid] = buf.crid_;
    return args;
}

void ReconfigDevice::reconfigure_app(const ReconfigBuffer& buf, uint64_t len, int32_t vfid) const {
    abi::Args args = load_args(buf, len, "reconfigureApp");
    args[abi::slot::rc_vfid] = static_cast<uint64_t>(vfid);
    file_.call(abi::k_reconfigure_app, args, "loading " + std::to_string(len) + " bytes into vFPGA " + std::to_string(vfid));
}

void ReconfigDevice::reconfigure_shell(const ReconfigBuffer& buf, uint64_t len) const {
    abi::Args args = load_args(buf, len, "reconfigureShell");
    file_.call(abi::k_reconfigure_shell, args, "loading a shell of " + std::to_string(len) + " bytes");
}

}  // namespace coyote::detail::hw
