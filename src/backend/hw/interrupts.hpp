// User interrupts of the hw backend: per ctid with a handler, an eventfd registered with the driver and a thread that
// reads the notification value, calls the handler and tells the driver it was processed (as stock Coyote's
// cThread runs one event thread per thread). A slow handler holds up its own ctid only.
#pragma once

#include <array>
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
    explicit InterruptThread(const DriverFile& file) : file_(file) {}
    /// Removes every handler still installed.
    ~InterruptThread();
    InterruptThread(const InterruptThread&) = delete;
    InterruptThread& operator=(const InterruptThread&) = delete;

    /// Installs `handler` for `ctid` (replacing one installed before): IOCTL_REGISTER_EVENTFD and the ctid's thread
    /// on first use.
    void install(int32_t ctid, InterruptHandler handler);
    /// Removes the handler of `ctid`, stops its thread and unregisters its eventfd (no-op when none). Waits (at
    /// most COYOTE_HANDLER_WAIT_MS) for a call of the handler in progress, so that nothing it uses goes away under
    /// it; from inside the handler, its thread ends when the handler returns.
    void remove(int32_t ctid) noexcept;

private:
    /// One ctid's interrupts: its eventfd, a stop eventfd and its thread.
    struct Ctid {
        Fd efd;
        Fd stop;
        std::shared_ptr<const InterruptHandler> handler; // mtx_: install replaces it
        std::shared_ptr<HandlerExit> exit = std::make_shared<HandlerExit>();
        std::thread thread;
    };
    /// The ctid's thread; returns without touching `this` or `c` once its owner gave up on a handler.
    void run(int32_t ctid, Ctid& c, HandlerExit& exit) noexcept;

    const DriverFile& file_;
    std::mutex mtx_;
    std::array<std::unique_ptr<Ctid>, N_CTID_MAX> ctids_;
};

}  // namespace coyote::detail::hw
