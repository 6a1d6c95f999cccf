// coyote-mpi: the end of a thread that runs a user's handler (see handler_thread.hpp).
#include "detail/handler_thread.hpp"

#include <cstdio>

#include "detail/settings.hpp"

namespace coyote::detail {

namespace {

namespace settings = ::coyote::detail::settings;
constexpr std::chrono::milliseconds k_default_wait{30000};
const settings::Millis k_handler_wait{"COYOTE_HANDLER_WAIT_MS", "runtime", k_default_wait,
                                      "how long closing a cThread waits for its user-interrupt handler to return "
                                      "before it lets the handler's thread run on alone (with a warning)"};

/// COYOTE_HANDLER_WAIT_MS; its default where the value is malformed (that was refused at the first cThread).
std::chrono::milliseconds handler_wait() noexcept {
    try {
        return k_handler_wait.get();
    } catch (...) {
        return k_default_wait;
    }
}

} // namespace

void HandlerExit::mark_finished() noexcept {
    std::lock_guard lk(mtx);
    finished = true;
    cv.notify_all();
}

void HandlerExit::enter_handler() noexcept {
    std::lock_guard lk(mtx);
    busy = true;
    cv.notify_all();
}

bool HandlerExit::leave_handler() noexcept {
    std::lock_guard lk(mtx);
    busy = false;
    return !abandoned;
}

void join_or_abandon(std::thread& t, HandlerExit& exit, const std::string& what) noexcept {
    if (!t.joinable()) return;
    if (t.get_id() == std::this_thread::get_id()) { // from inside the handler: it ends when the handler returns
        {
            std::lock_guard lk(exit.mtx);
            exit.abandoned = true; // its owner is going away under it
        }
        t.detach();
        return;
    }
    const std::chrono::milliseconds wait = handler_wait();
    {
        std::unique_lock lk(exit.mtx);
        if (!exit.cv.wait_for(lk, wait, [&] { return exit.finished; })) {
            exit.cv.wait(lk, [&] { return exit.finished || exit.busy; }); // out of the handler: it ends soon
        }
        if (!exit.finished) {
            exit.abandoned = true;
            lk.unlock();
            std::fprintf(stderr,
                         "coyote: %s did not return within COYOTE_HANDLER_WAIT_MS (%lld ms): its thread runs on "
                         "detached and gets no more interrupts\n",
                         what.c_str(), static_cast<long long>(wait.count()));
            t.detach();
            return;
        }
    }
    t.join();
}

}  // namespace coyote::detail
