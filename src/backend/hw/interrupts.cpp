// The user interrupts of a hw vFPGA (the handshake of sw/src/cThread.cpp eventHandler and
// driver/src/vfpga/vfpga_ops.c: read the eventfd, GET_NOTIFICATION_VALUE, handler, SET_NOTIFICATION_PROCESSED).
#include "backend/hw/interrupts.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstdio>
#include <exception>

namespace coyote::detail::hw {

InterruptThread::~InterruptThread() {
    for (int32_t c = 0; c < N_CTID_MAX; ++c) remove(c);
}

void InterruptThread::install(int32_t ctid, InterruptHandler handler) {
    auto h = std::make_shared<const InterruptHandler>(std::move(handler));
    std::lock_guard lk(mtx_);
    auto& slot = ctids_[static_cast<size_t>(ctid)];
    if (slot) {
        slot->handler = std::move(h);
        return;
    }
    auto c = std::make_unique<Ctid>();
    const std::string what = "user interrupts of ctid " + std::to_string(ctid) + " on " + file_.path();
    c->efd.reset(::eventfd(0, EFD_CLOEXEC));
    if (!c->efd) throw_errno("eventfd", what);
    c->stop.reset(::eventfd(0, EFD_CLOEXEC));
    if (!c->stop) throw_errno("eventfd", what);
    abi::Args args{};
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    args[abi::slot::eventfd] = static_cast<uint64_t>(c->efd.get());
    file_.call(abi::k_register_eventfd, args);
    c->handler = std::move(h);
    Ctid* raw = c.get();
    try {
        c->thread = std::thread([this, ctid, raw, exit = c->exit] {
            run(ctid, *raw, *exit);
            exit->mark_finished(); // touches only `exit`: the rest may be gone after an abandoned handler
        });
        (void)::pthread_setname_np(c->thread.native_handle(), "coyote-irq");
    } catch (...) {
        (void)file_.try_call(abi::k_unregister_eventfd, args);
        throw;
    }
    slot = std::move(c);
}

void InterruptThread::remove(int32_t ctid) noexcept {
    std::unique_ptr<Ctid> c;
    {
        std::lock_guard lk(mtx_);
        c = std::move(ctids_[static_cast<size_t>(ctid)]);
    }
    if (!c) return;
    (void)::eventfd_write(c->stop.get(), 1);
    try {
        join_or_abandon(c->thread, *c->exit,
                        "the user-interrupt handler of ctid " + std::to_string(ctid) + " on " + file_.path());
    } catch (...) { // the message could not be built: wait as join_or_abandon would not
        if (c->thread.joinable()) c->thread.detach();
    }
    abi::Args args{};
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_unregister_eventfd, args);
    // As stock cThread does after unregistering: release a notification that may still hold the driver's lock.
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_set_notification_processed, args);
}

void InterruptThread::run(int32_t ctid, Ctid& c, HandlerExit& exit) noexcept {
    pollfd fds[2] = {{c.efd.get(), POLLIN, 0}, {c.stop.get(), POLLIN, 0}};
    for (;;) {
        const int n = ::poll(fds, 2, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("coyote: poll of the user-interrupt thread");
            return;
        }
        if (fds[1].revents != 0) return;
        if ((fds[0].revents & POLLIN) == 0) continue;
        eventfd_t count = 0;
        if (::eventfd_read(fds[0].fd, &count) != 0) continue;
        std::shared_ptr<const InterruptHandler> h;
        {
            std::lock_guard lk(mtx_);
            h = c.handler;
        }
        abi::Args args{};
        args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
        if (file_.try_call(abi::k_get_notification_value, args) != 0) continue;
        const auto value = static_cast<int32_t>(static_cast<uint32_t>(args[abi::slot::value])); // 4 bytes copied
        if (h && *h) {
            exit.enter_handler();
            try {
                (*h)(value);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "coyote: the user-interrupt handler of ctid %d threw: %s\n", ctid, e.what());
            } catch (...) {
                std::fprintf(stderr, "coyote: the user-interrupt handler of ctid %d threw\n", ctid);
            }
            if (!exit.leave_handler()) return; // its owner gave up on it and may be gone: touch nothing of it
        }
        args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
        (void)file_.try_call(abi::k_set_notification_processed, args);
    }
}

}  // namespace coyote::detail::hw
