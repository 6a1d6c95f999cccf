// User interrupts of the hw backend: an eventfd per ctid registered with the driver, and one epoll thread per
// vFPGA that reads the notification value, calls the ctid's handler and tells the driver it was processed.
#pragma once

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "backend/device.hpp"
#include "backend/hw/driver_file.hpp"
#include "detail/handler_thread.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::hw {

class InterruptThread {
public:
    /// Creates the epoll set and starts the thread.
    explicit InterruptThread(const DriverFile& file);
    /// Stops and joins the thread; unregisters every eventfd still registered.
    ~InterruptThread();
    InterruptThread(const InterruptThread&) = delete;
    InterruptThread& operator=(const InterruptThread&) = delete;

    /// Installs `handler` for `ctid` (replacing one installed before): IOCTL_REGISTER_EVENTFD on first use.
    void install(int32_t ctid, InterruptHandler handler);
    /// Removes the handler of `ctid` and unregisters its eventfd (no-op when none). Waits (at most
    /// COYOTE_HANDLER_WAIT_MS) for a call of that handler in progress, so that nothing the handler uses goes away
    /// under it, unless called from the handler itself.
    void remove(int32_t ctid) noexcept;

private:
    void remove_now(int32_t ctid) noexcept;
    void run(HandlerExit& exit) noexcept;
    /// False when the owner gave up on a handler that did not return (the object may be gone).
    bool deliver(int32_t ctid, HandlerExit& exit) noexcept;

    const DriverFile& file_;
    Fd epoll_;
    Fd stop_;
    std::mutex mtx_;
    std::array<Fd, N_CTID_MAX> efd_;
    std::array<std::shared_ptr<const InterruptHandler>, N_CTID_MAX> handler_;
    int32_t delivering_ = -1;          ///< the ctid whose handler runs now (mtx_)
    std::condition_variable delivered_; ///< delivering_ went back to -1
    std::shared_ptr<HandlerExit> exit_ = std::make_shared<HandlerExit>(); // shared with the thread
    std::thread thread_;
};

}  // namespace coyote::detail::hw
