// The fake vFPGA's ioctls, one small handler per call (driver/src/vfpga/vfpga_ops.c, vfpga_uisr.c): arguments and
// error returns as the driver has them; where the driver has no defined return (it would oops or silently go on)
// the fake returns -EINVAL or -EFAULT, as docs/hardware.md lists.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <cstdint>
#include <optional>
#include <string>

#include "detail/settings.hpp"

#include "fake_vfpga.hpp"

namespace coyote_fake {

namespace {

using Handler = long (*)(FakeVfpga&, uint64_t*);

struct Entry {
    unsigned long request;
    Handler handler;
};

// clang-format off
constexpr Entry k_table[] = {
    {ioc::register_ctid, [](FakeVfpga& d, uint64_t* a) { return d.register_ctid(a); }},
    {ioc::unregister_ctid, [](FakeVfpga& d, uint64_t* a) { return d.unregister_ctid(a); }},
    {ioc::register_eventfd, [](FakeVfpga& d, uint64_t* a) { return d.register_eventfd(a); }},
    {ioc::unregister_eventfd, [](FakeVfpga& d, uint64_t* a) { return d.unregister_eventfd(a); }},
    {ioc::map_user_mem, [](FakeVfpga& d, uint64_t* a) { return d.map_user_mem(a); }},
    {ioc::unmap_user_mem, [](FakeVfpga& d, uint64_t* a) { return d.unmap_user_mem(a); }},
    {ioc::map_dmabuf, [](FakeVfpga& d, uint64_t* a) { return d.map_dmabuf(a); }},
    {ioc::unmap_dmabuf, [](FakeVfpga& d, uint64_t* a) { return d.unmap_dmabuf(a); }},
    {ioc::offload_req, [](FakeVfpga& d, uint64_t* a) { return d.migrate(a, true); }},
    {ioc::sync_req, [](FakeVfpga& d, uint64_t* a) { return d.migrate(a, false); }},
    {ioc::set_ip, [](FakeVfpga& d, uint64_t* a) { return d.set_address(a, false); }},
    {ioc::set_mac, [](FakeVfpga& d, uint64_t* a) { return d.set_address(a, true); }},
    {ioc::get_ip, [](FakeVfpga& d, uint64_t* a) { return d.get_address(a, false); }},
    {ioc::get_mac, [](FakeVfpga& d, uint64_t* a) { return d.get_address(a, true); }},
    {ioc::read_shell_config, [](FakeVfpga& d, uint64_t* a) { return d.read_shell_config(a); }},
    {ioc::hdma_stats, [](FakeVfpga& d, uint64_t* a) { return d.hdma_stats(a); }},
    {ioc::net_stats, [](FakeVfpga& d, uint64_t* a) { return d.net_stats(a); }},
    {ioc::set_notification_processed, [](FakeVfpga& d, uint64_t* a) { return d.notification_processed(a); }},
    {ioc::get_notification_value, [](FakeVfpga& d, uint64_t* a) { return d.notification_value(a); }},
};
// clang-format on

const coyote::detail::settings::Integer k_shell_word{
    "COYOTE_FAKE_SHELL_WORD", "hw-fake", 0, 0, INT64_MAX,
    "fake driver: the shell word READ_SHELL_CONFIG returns instead of the sim's (decimal), e.g. to test the "
    "backend's check for a driver of another version",
    "the sim shell's"};

/// The shell word the tests set, if any.
std::optional<uint64_t> shell_word_override() {
    if (!k_shell_word.is_set()) return std::nullopt;
    return static_cast<uint64_t>(k_shell_word.get());
}

/// The errno a sim Device error stands for.
long errno_of(const coyote::Error& e) {
    if (e.code().category() == std::generic_category()) return -e.code().value();
    switch (static_cast<coyote::Errc>(e.code().value())) {
    case coyote::Errc::resource_exhausted: return -ENOMEM;
    case coyote::Errc::not_mapped: return -EFAULT;
    case coyote::Errc::not_supported: return -EPERM;
    default: return -EINVAL;
    }
}

}  // namespace

long FakeVfpga::ioctl(unsigned long request, uint64_t* args) {
    for (const Entry& e : k_table) {
        if (e.request != request) continue;
        if (args == nullptr) return 8; // copy_from_user/copy_to_user: bytes not copied
        return e.handler(*this, args);
    }
    return 1; // "received unknown IOCTL call": ret_val = 1
}

// ---- ctids ----------------------------------------------------------------------------------------------

long FakeVfpga::register_ctid(uint64_t* a) {
    std::lock_guard lk(pid_mtx_);
    if (n_free_ == 0) return -ENOMEM;
    const int32_t ctid = free_stack_[static_cast<size_t>(n_free_ - 1)];
    const auto hpid = static_cast<pid_t>(a[0]);
    int32_t s = -1;
    try {
        s = register_sim_ctid(ctid, hpid);
    } catch (const coyote::Error& e) {
        return errno_of(e);
    }
    --n_free_;
    pid_array_[static_cast<size_t>(ctid)] = hpid;
    sim_ctid_[static_cast<size_t>(ctid)].store(s, std::memory_order_release);
    a[1] = static_cast<uint64_t>(ctid);
    rdma_attach(ctid);
    return 0;
}

long FakeVfpga::unregister_ctid(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[0]);
    if (ctid < 0 || ctid >= k_ctids) return -EINVAL; // the driver indexes its tables unchecked
    std::lock_guard lk(pid_mtx_);
    const int32_t s = sim_ctid(ctid);
    if (s < 0) return 0; // not registered: the driver finds no entry and returns 0
    drop_notifier(static_cast<int32_t>(ctid));
    drop_dmabufs(static_cast<int32_t>(ctid));
    rdma_detach(static_cast<int32_t>(ctid));
    sim_ctid_[static_cast<size_t>(ctid)].store(-1, std::memory_order_release);
    drop_backlog(s); // its queued commands go with it: a later ctid on the same slot must not get them
    sim_->unregister_ctid(s);
    free_stack_[static_cast<size_t>(n_free_++)] = static_cast<int32_t>(ctid);
    return 0;
}

void FakeVfpga::release_all() noexcept {
    for (int c = 0; c < k_ctids; ++c) {
        uint64_t a[2] = {static_cast<uint64_t>(c), 0};
        (void)unregister_ctid(a);
    }
}

// ---- memory ---------------------------------------------------------------------------------------------

long FakeVfpga::map_user_mem(uint64_t* a) {
    const int32_t s = sim_ctid(static_cast<int64_t>(a[2]));
    if (s < 0) return -EINVAL;
    if (a[0] == 0 || a[1] == 0) return -EINVAL;
    try {
        sim_->map_user(s, reinterpret_cast<void*>(a[0]), a[1]);
    } catch (const coyote::Error& e) {
        return errno_of(e);
    }
    return 0;
}

long FakeVfpga::unmap_user_mem(uint64_t* a) {
    const int32_t s = sim_ctid(static_cast<int64_t>(a[1]));
    if (s < 0) return -EINVAL;
    try {
        sim_->unmap_user(s, reinterpret_cast<void*>(a[0]));
    } catch (const coyote::Error&) {
        // tlb_put_user_pages finds nothing to release: no error
    }
    return 0;
}

long FakeVfpga::migrate(uint64_t* a, bool to_card) {
    if (!mem_) return -1; // "cannot off-load/sync buffer when shell is built without memory": -1 (EPERM)
    const int32_t s = sim_ctid(static_cast<int64_t>(a[2]));
    if (s < 0) return -EINVAL;
    try {
        sim_->migrate(s, reinterpret_cast<void*>(a[0]), static_cast<uint32_t>(a[1]), to_card);
    } catch (const coyote::Error& e) {
        return errno_of(e);
    }
    return 0;
}

// ---- identity and statistics ----------------------------------------------------------------------------

long FakeVfpga::set_address(uint64_t* a, bool mac) {
    if (!net_) return -1; // "network not enabled"
    (mac ? mac_ : ip_) = a[0];
    return 0;
}
long FakeVfpga::get_address(uint64_t* a, bool mac) {
    a[0] = mac ? mac_ : ip_;
    return 0;
}
long FakeVfpga::read_shell_config(uint64_t* a) {
    a[0] = shell_word_override().value_or(shell_word_); // the driver copies one word
    return 0;
}
long FakeVfpga::hdma_stats(uint64_t* a) {
    coyote::fpgaCnfg cfg;
    cfg.parseCnfg(shell_word_);
    for (int i = 0; i < cfg.n_xdma_chan * 4 && i < 32; ++i) a[i] = 0;
    return 0;
}
long FakeVfpga::net_stats(uint64_t* a) {
    if (!net_) return -1;
    for (int i = 0; i < 10; ++i) a[i] = 0;
    return 0;
}

// ---- notifications --------------------------------------------------------------------------------------

long FakeVfpga::register_eventfd(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[0]);
    const int32_t s = sim_ctid(ctid);
    if (s < 0) return -EINVAL;
    const int fd = static_cast<int>(a[1]);
    if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) return -EBADF; // eventfd_ctx_fdget of a closed fd
    char link[64] = {0};
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (::readlink(path.c_str(), link, sizeof(link) - 1) < 0 || std::strstr(link, "eventfd") == nullptr)
        return -EINVAL; // not an eventfd
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return -errno;
    drop_notifier(static_cast<int32_t>(ctid));
    {
        std::lock_guard lk(irq_mtx_);
        notifier_[static_cast<size_t>(ctid)] = Notifier{dup, false, false, 0};
    }
    const auto c = static_cast<int32_t>(ctid);
    sim_->set_interrupt_handler(s, [this, c](int v) { notify(c, v); });
    return 0;
}

long FakeVfpga::unregister_eventfd(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[0]);
    if (ctid < 0 || ctid >= k_ctids) return -EINVAL;
    drop_notifier(static_cast<int32_t>(ctid));
    return 0;
}

void FakeVfpga::drop_notifier(int32_t ctid) noexcept {
    auto& n = notifier_[static_cast<size_t>(ctid)];
    {
        std::lock_guard lk(irq_mtx_);
        if (n.efd < 0) return;
        n.closing = true;
    }
    irq_cv_.notify_all();
    const int32_t s = sim_ctid(ctid);
    if (s >= 0) {
        try {
            sim_->set_interrupt_handler(s, nullptr); // joins the sim's interrupt thread of the ctid
        } catch (const std::exception&) {
        }
    }
    std::lock_guard lk(irq_mtx_);
    ::close(n.efd);
    n = Notifier{};
}

void FakeVfpga::notify(int32_t ctid, int32_t value) noexcept {
    // vfpga_isr: take the ctid's notifier lock (held until SET_NOTIFICATION_PROCESSED), store the value, signal.
    std::unique_lock lk(irq_mtx_);
    auto& n = notifier_[static_cast<size_t>(ctid)];
    if (!irq_cv_.wait_for(lk, std::chrono::seconds(30), [&] { return !n.busy || n.closing || n.efd < 0; })) {
        std::fprintf(stderr, "coyote fake driver: notification of ctid %d not processed for 30 s; dropped\n", ctid);
        return;
    }
    if (n.closing || n.efd < 0) return;
    n.busy = true;
    n.value = value;
    (void)::eventfd_write(n.efd, 1);
}

long FakeVfpga::notification_processed(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[0]);
    if (ctid < 0 || ctid >= k_ctids) return -EINVAL;
    {
        std::lock_guard lk(irq_mtx_);
        notifier_[static_cast<size_t>(ctid)].busy = false;
    }
    irq_cv_.notify_all();
    return 0;
}

long FakeVfpga::notification_value(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[0]);
    if (ctid < 0 || ctid >= k_ctids) return -EINVAL;
    std::lock_guard lk(irq_mtx_);
    const int32_t v = notifier_[static_cast<size_t>(ctid)].value;
    std::memcpy(a, &v, sizeof(v)); // the driver copies sizeof(uint32_t)
    return 0;
}

}  // namespace coyote_fake
