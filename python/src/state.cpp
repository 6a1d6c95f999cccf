// pycoyote: lifetime of threads and their buffers.
#include "state.hpp"

#include <string>

#include <coyote/error.hpp>

namespace pycoyote {

ThreadState::~ThreadState() {
    if (!thread) return;
    // The cThread's destructor joins its interrupt thread, which may be waiting for the GIL to run a callback.
    if (PyGILState_Check() != 0) {
        PyThreadState* saved = PyEval_SaveThread();
        thread.reset();
        PyEval_RestoreThread(saved);
    } else {
        thread.reset();
    }
}

coyote::cThread& ThreadState::get(const char* call) const {
    if (!thread) coyote::throw_error(coyote::Errc::invalid_argument, call, "the CoyoteThread was closed");
    return *thread;
}

void ThreadState::close() {
    if (!thread) return;
    if (calls_without_gil > 0)
        coyote::throw_error(coyote::Errc::invalid_argument, "close",
                            std::to_string(calls_without_gil) +
                                " call(s) on this CoyoteThread still run in other Python threads (init_rdma, "
                                "lock, conn_sync, a transfer ...); close it after they return");
    Py_ssize_t views = 0;
    for (const auto& a : allocations) views += a->alive ? a->exports : 0;
    if (views > 0)
        coyote::throw_error(coyote::Errc::invalid_argument, "close",
                            std::to_string(views) +
                                " NumPy arrays or memoryviews still view this thread's buffers; delete them first");
    shutdown();
}

void ThreadState::shutdown() {
    if (calls_without_gil > 0) {
        // Interpreter exit with a call still running in another thread: the cThread stays as it is.
        (void)thread.release();
        return;
    }
    for (auto& a : allocations) a->alive = false;
    allocations.clear();
    rdma.reset();
    PyThreadState* saved = PyEval_SaveThread();
    thread.reset(); // frees the thread's memory
    PyEval_RestoreThread(saved);
}

namespace {
std::vector<std::weak_ptr<ThreadState>>& interrupt_threads() {
    static auto* list = new std::vector<std::weak_ptr<ThreadState>>(); // used until exit: never destroyed
    return *list;
}
}  // namespace

void track_interrupt_thread(const std::shared_ptr<ThreadState>& state) {
    auto& list = interrupt_threads();
    std::erase_if(list, [](const auto& w) { return w.expired(); });
    list.push_back(state);
}

void shutdown_interrupt_threads() {
    for (auto& w : interrupt_threads())
        if (auto s = w.lock(); s && s->thread) s->shutdown();
    interrupt_threads().clear();
}

}  // namespace pycoyote
