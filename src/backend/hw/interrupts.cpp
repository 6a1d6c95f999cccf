// The user-interrupt thread of a hw vFPGA (the handshake of sw/src/cThread.cpp eventHandler and
// driver/src/vfpga/vfpga_ops.c: read the eventfd, GET_NOTIFICATION_VALUE, handler, SET_NOTIFICATION_PROCESSED).
#include "backend/hw/interrupts.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <cstdio>
#include <exception>

namespace coyote::detail::hw {

namespace {

constexpr uint64_t k_stop_tag = ~0ULL;

}  // namespace

InterruptThread::InterruptThread(const DriverFile& file) : file_(file) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw_errno("epoll_create1", "user-interrupt thread of " + file_.path());
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
    if (!stop_) throw_errno("eventfd", "user-interrupt thread of " + file_.path());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = k_stop_tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_.get(), &ev) != 0)
        throw_errno("epoll_ctl", "user-interrupt thread of " + file_.path());
    thread_ = std::thread([this, exit = exit_] {
        run(*exit);
        exit->mark_finished(); // touches only `exit`: the object may be gone after an abandoned handler
    });
}

InterruptThread::~InterruptThread() {
    (void)::eventfd_write(stop_.get(), 1);
    join_or_abandon(thread_, *exit_, "the user-interrupt handler of " + file_.path());
    for (int32_t c = 0; c < N_CTID_MAX; ++c) remove_now(c);
}

void InterruptThread::install(int32_t ctid, InterruptHandler handler) {
    auto h = std::make_shared<const InterruptHandler>(std::move(handler));
    std::lock_guard lk(mtx_);
    auto& efd = efd_[static_cast<size_t>(ctid)];
    if (!efd) {
        Fd fd(::eventfd(0, EFD_CLOEXEC));
        if (!fd) throw_errno("eventfd", "user interrupts of ctid " + std::to_string(ctid) + " on " + file_.path());
        abi::Args args{};
        args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
        args[abi::slot::eventfd] = static_cast<uint64_t>(fd.get());
        file_.call(abi::k_register_eventfd, args);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<uint64_t>(ctid);
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
            const int err = errno;
            (void)file_.try_call(abi::k_unregister_eventfd, args);
            errno = err;
            throw_errno("epoll_ctl", "user interrupts of ctid " + std::to_string(ctid));
        }
        efd = std::move(fd);
    }
    handler_[static_cast<size_t>(ctid)] = std::move(h);
}

void InterruptThread::remove(int32_t ctid) noexcept {
    if (std::this_thread::get_id() != thread_.get_id()) {
        std::unique_lock lk(mtx_);
        std::chrono::milliseconds wait{30000};
        try {
            wait = handler_wait();
        } catch (...) { // refused at the first cThread already; the default here
        }
        if (!delivered_.wait_for(lk, wait, [&] { return delivering_ != ctid; }))
            std::fprintf(stderr,
                         "coyote: the user-interrupt handler of ctid %d on %s did not return within "
                         "COYOTE_HANDLER_WAIT_MS (%lld ms); its cThread closes under it\n",
                         ctid, file_.path().c_str(), static_cast<long long>(wait.count()));
    }
    remove_now(ctid);
}

void InterruptThread::remove_now(int32_t ctid) noexcept {
    std::lock_guard lk(mtx_);
    auto& efd = efd_[static_cast<size_t>(ctid)];
    handler_[static_cast<size_t>(ctid)].reset();
    if (!efd) return;
    abi::Args args{};
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_unregister_eventfd, args);
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, efd.get(), nullptr);
    efd.reset();
    // As stock cThread does after unregistering: release a notification that may still hold the driver's lock.
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_set_notification_processed, args);
}

void InterruptThread::run(HandlerExit& exit) noexcept {
    epoll_event events[8];
    for (;;) {
        const int n = ::epoll_wait(epoll_.get(), events, 8, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("coyote: epoll_wait of the user-interrupt thread");
            return;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == k_stop_tag) return;
            if (!deliver(static_cast<int32_t>(events[i].data.u64), exit)) return;
        }
    }
}

bool InterruptThread::deliver(int32_t ctid, HandlerExit& exit) noexcept {
    std::shared_ptr<const InterruptHandler> h;
    {
        std::lock_guard lk(mtx_);
        const auto& efd = efd_[static_cast<size_t>(ctid)];
        if (!efd) return true;
        eventfd_t count = 0;
        if (::eventfd_read(efd.get(), &count) != 0) return true;
        h = handler_[static_cast<size_t>(ctid)];
        delivering_ = ctid;
    }
    auto delivered = [&] {
        std::lock_guard lk(mtx_);
        delivering_ = -1;
        delivered_.notify_all();
    };
    abi::Args args{};
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    if (file_.try_call(abi::k_get_notification_value, args) != 0) {
        delivered();
        return true;
    }
    const auto value = static_cast<int32_t>(static_cast<uint32_t>(args[abi::slot::value])); // the driver copies 4 bytes
    if (h && *h) {
        exit.enter_handler();
        try {
            (*h)(value);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote: the user-interrupt handler of ctid %d threw: %s\n", ctid, e.what());
        } catch (...) {
            std::fprintf(stderr, "coyote: the user-interrupt handler of ctid %d threw\n", ctid);
        }
        if (!exit.leave_handler()) return false; // its owner gave up on it and may be gone: touch nothing of it
    }
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_set_notification_processed, args);
    delivered();
    return true;
}

}  // namespace coyote::detail::hw
