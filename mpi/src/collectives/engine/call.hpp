// coyote-mpi collectives engine: what a collective call hands to its algorithm (arguments, algorithm switch
// points, reduction kernels, the vFPGA reduction offload) and the entry point of the algorithms.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include <coyote/cThread.hpp>
#include <coyote/mpi/collectives_types.hpp>
#include <coyote/mpi/device.hpp>

#include "collectives/engine/wire.hpp"

namespace coyote::detail::coll {

class Engine;

/// Reduction kernels of one (type, op): acc: d op= s; red3: d = a op b (no overlap).
struct Kernels {
    void (*acc)(void*, const void*, std::size_t) = nullptr;
    void (*red3)(void*, const void*, const void*, std::size_t) = nullptr;
};
Kernels kernels(mpi::Datatype t, mpi::Op o) noexcept;

/// Reductions run by the vFPGA's user logic instead of the CPU (CollectiveOptions::offload_reductions): the
/// sim `reduce` model (COYOTE_SIM_MODEL=reduce) or user logic with its register contract
/// (<coyote/sim/reduce_model.hpp>). d = a op b is LOCAL_WRITE(d, dest 0), LOCAL_READ(a, dest 0),
/// LOCAL_READ(b, dest 1) on an own cThread, waiting (bounded) for the write's completion. Thread-safe.
class ReduceOffload {
public:
    /// Opens a cThread on `device` and checks the contract (identity register, one probe reduction); throws
    /// Errc::not_supported naming COYOTE_SIM_MODEL=reduce when the user logic is something else.
    ReduceOffload(const mpi::DeviceAssignment& device, std::chrono::milliseconds timeout);
    ~ReduceOffload();
    ReduceOffload(const ReduceOffload&) = delete;
    ReduceOffload& operator=(const ReduceOffload&) = delete;

    /// True when the user logic implements `type` (op: every op check_op allows); else reduce on the CPU.
    bool supports(mpi::Datatype type, mpi::Op op) const noexcept;
    /// dst[i] = a[i] op b[i] for i < count; dst may equal a and/or b.
    void reduce(void* dst, const void* a, const void* b, std::size_t count, mpi::Datatype type, mpi::Op op);
    /// Elements reduced by the user logic through this object.
    uint64_t elements() const noexcept { return elements_.load(std::memory_order_relaxed); }

private:
    std::mutex mtx_;
    std::unique_ptr<cThread> thread_;
    std::chrono::milliseconds timeout_;
    uint64_t types_ = 0;       ///< supported type codes (bit per code)
    uint64_t cur_type_ = ~0ull; ///< what the type / op registers hold
    uint64_t cur_op_ = ~0ull;
    bool broken_ = false;
    std::atomic<uint64_t> elements_{0};
};

/// Arguments of one collective call (validated by the caller).
struct CallArgs {
    const void* send = nullptr; ///< MPI_IN_PLACE resolved: null when in place
    void* recv = nullptr;
    uint64_t count = 0;
    mpi::Datatype type = mpi::Datatype::uint8;
    mpi::Op op = mpi::Op::sum;
    int root = -1;
    bool in_place = false;
    ReduceOffload* offload = nullptr; ///< reductions through the vFPGA (types it supports), else the CPU
};

/// Algorithm switch points in bytes (see CollectiveOptions).
struct Thresholds {
    uint64_t allreduce_small = 0;
    uint64_t allreduce_large = 0;
    uint64_t reduce_scatter_small = 0;
    uint64_t tree_small = 0;
    uint64_t alltoall_small = 0;
    uint64_t allgather_small = 0;
};

/// Runs collective `kind` as call number `epoch`; returns the name of the algorithm used.
const char* run_collective(Engine& e, CollKind kind, const CallArgs& a, const Thresholds& t, uint64_t epoch);

}  // namespace coyote::detail::coll
