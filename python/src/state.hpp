// pycoyote: the C++ state behind CoyoteThread and CoyoteBuffer, and how they keep each other alive.
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <coyote/cThread.hpp>

#include "dtype.hpp"

namespace pycoyote {

/// Memory a CoyoteBuffer views: allocated by a thread (getMem), the RDMA buffer, or wrapped user memory.
struct Allocation {
    void* addr = nullptr;
    bool alive = true;         ///< false once freed (buffer access then raises)
    bool owned = false;        ///< freed with freeMem by free_buffer
    Py_ssize_t exports = 0;    ///< live buffer-protocol views (NumPy arrays, memoryviews)
};

/// A cThread and what hangs on it. Shared by the CoyoteThread object and every buffer it allocated, so that a
/// buffer keeps its thread alive; close() destroys the cThread early and invalidates the buffers.
struct ThreadState {
    std::unique_ptr<coyote::cThread> thread;
    std::vector<std::shared_ptr<Allocation>> allocations;
    std::shared_ptr<Allocation> rdma;     ///< the queue pair's buffer after init_rdma
    const Dtype* rdma_type = nullptr;     ///< dtype given to init_rdma
    std::size_t rdma_count = 0;           ///< elements of the RDMA buffer
    /// Calls on `thread` running without the GIL in other Python threads (changed with the GIL held): close()
    /// refuses while there are any, since they still use the cThread.
    int calls_without_gil = 0;

    ThreadState() = default;
    ThreadState(const ThreadState&) = delete;
    ThreadState& operator=(const ThreadState&) = delete;
    /// Destroys the cThread with the GIL released (its interrupt thread may be waiting for the GIL).
    ~ThreadState();

    /// The cThread; throws InvalidArgument naming `call` once closed.
    coyote::cThread& get(const char* call) const;
    /// Frees every allocation and destroys the cThread; throws if a buffer still has live views.
    void close();
    /// Same without the check (interpreter exit).
    void shutdown();
};

/// Remembers a thread with an interrupt callback, so that it is shut down at interpreter exit, before the
/// interpreter can no longer run the callback (its thread would wait for the GIL forever).
void track_interrupt_thread(const std::shared_ptr<ThreadState>& state);
/// Shuts down the tracked threads that are still alive (registered with atexit by the module).
void shutdown_interrupt_threads();

/// A typed view of memory (pyCoyote's CoyoteBuffer).
struct Buffer {
    std::shared_ptr<ThreadState> owner;   ///< null for wrapped memory
    std::shared_ptr<Allocation> memory;
    PyObject* keeper = nullptr;           ///< the NumPy array a wrapping buffer keeps alive (a strong reference)
    std::size_t count = 0;
    const Dtype* type = nullptr;
    Py_ssize_t shape[1] = {0};
    Py_ssize_t strides[1] = {0};

    Buffer(std::shared_ptr<ThreadState> owner_state, std::shared_ptr<Allocation> mem, std::size_t n,
           const Dtype& dtype);
    Buffer(const Buffer& o);
    Buffer& operator=(const Buffer&) = delete;
    /// Drops the reference to `keeper` (Python objects are destroyed with the GIL held).
    ~Buffer();
    /// The address; throws InvalidArgument naming `call` after the memory was freed.
    void* data(const char* call) const;
    std::size_t bytes() const noexcept { return count * type->itemsize; }
};

}  // namespace pycoyote
