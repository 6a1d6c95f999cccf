// coyote-mpi collectives: the local reduction step offloaded to the vFPGA's user logic (the sim `reduce` model or
// user logic with its register contract), see ReduceOffload in engine/engine.hpp.
#include "collectives/engine/engine.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>

#include <coyote/sim/reduce_model.hpp>

#include "detail/format.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::coll {

namespace {

namespace rm = coyote::sim::reduce;
namespace settings = ::coyote::detail::settings;
using Clock = std::chrono::steady_clock;

// The register contract numbers types and operations as coyote::mpi does.
static_assert(static_cast<uint64_t>(mpi::Datatype::int8) == rm::k_type_int8);
static_assert(static_cast<uint64_t>(mpi::Datatype::uint64) == rm::k_type_uint64);
static_assert(static_cast<uint64_t>(mpi::Datatype::float16) == rm::k_type_float16);
static_assert(static_cast<uint64_t>(mpi::Datatype::bfloat16) == rm::k_type_bfloat16);
static_assert(static_cast<uint64_t>(mpi::Datatype::float32) == rm::k_type_float32);
static_assert(static_cast<uint64_t>(mpi::Datatype::float64) == rm::k_type_float64);
static_assert(static_cast<uint64_t>(mpi::Op::sum) == rm::k_op_sum);
static_assert(static_cast<uint64_t>(mpi::Op::bxor) == rm::k_op_bxor);

std::string where(const mpi::DeviceAssignment& d) {
    return "vFPGA " + std::to_string(d.vfid) + " of device " + std::to_string(d.device) + " (" + d.backend + ")";
}

}  // namespace

ReduceOffload::ReduceOffload(const mpi::DeviceAssignment& device, std::chrono::milliseconds timeout)
    : thread_(std::make_unique<cThread>(device.vfid, ::getpid(), device.device)), timeout_(timeout) {
    // Any register write makes the model publish its registers; the identity register is read-only in the
    // contract, so writing it is harmless for the reduce model and leaves other user logic alone otherwise.
    thread_->setCSR(0, rm::k_csr_id);
    const uint64_t id = thread_->getCSR(rm::k_csr_id);
    if (id != rm::k_model_id) {
        const std::optional<std::string> env = settings::value_of("COYOTE_SIM_MODEL");
        const std::string model = env && !env->empty() ? "COYOTE_SIM_MODEL=" + *env
                                                       : std::string("COYOTE_SIM_MODEL is unset (passthrough)");
        throw_error(Errc::not_supported, "Collectives",
                    "reduction offload (CollectiveOptions::offload_reductions / COYOTE_COLL_OFFLOAD=1) needs the "
                    "reduce user-logic model on " + where(device) + ", but CSR " + std::to_string(rm::k_csr_id) +
                        " reads " + hex(id) + " instead of " + hex(rm::k_model_id) + " (" + model +
                        "); run with COYOTE_SIM_MODEL=reduce, or without COYOTE_COLL_OFFLOAD");
    }
    types_ = thread_->getCSR(rm::k_csr_types);
    if (((types_ >> rm::k_type_uint32) & 1u) != 0) {
        // A tiny known reduction: the data path works end to end.
        std::array<uint32_t, 3> a{1, 2, 3000000000u}, b{10, 20, 3000000000u}, out{};
        reduce(out.data(), a.data(), b.data(), a.size(), mpi::Datatype::uint32, mpi::Op::sum);
        if (out != std::array<uint32_t, 3>{11, 22, 1705032704u})
            throw_error(Errc::not_supported, "Collectives",
                        "reduction offload: the probe reduction on " + where(device) + " returned {" +
                            std::to_string(out[0]) + ", " + std::to_string(out[1]) + ", " + std::to_string(out[2]) +
                            "} instead of {11, 22, 1705032704} (uint32 sum); is the user logic the reduce model "
                            "(COYOTE_SIM_MODEL=reduce)?");
    }
}

ReduceOffload::~ReduceOffload() = default;

bool ReduceOffload::supports(mpi::Datatype type, mpi::Op op) const noexcept {
    const auto code = static_cast<uint64_t>(type);
    return mpi::is_valid(type) && mpi::is_valid(op) && code < 64 && ((types_ >> code) & 1u) != 0;
}

void ReduceOffload::reduce(void* dst, const void* a, const void* b, std::size_t count, mpi::Datatype type, mpi::Op op) {
    if (count == 0) return;
    std::lock_guard lk(mtx_);
    if (broken_)
        throw_error(Errc::protocol, "reduction offload", "an earlier offloaded reduction failed; the offload is unusable");
    const auto tcode = static_cast<uint64_t>(type);
    const auto ocode = static_cast<uint64_t>(op);
    if (tcode != cur_type_) {
        cur_type_ = ~0ull; // unknown until the write succeeded
        thread_->setCSR(tcode, rm::k_csr_type);
        cur_type_ = tcode;
    }
    if (ocode != cur_op_) {
        cur_op_ = ~0ull;
        thread_->setCSR(ocode, rm::k_csr_op);
        cur_op_ = ocode;
    }
    const std::size_t es = mpi::size_of(type);
    const std::size_t max_elems = MAX_TRANSFER_SIZE / es;
    auto* d = static_cast<std::byte*>(dst);
    auto* x = static_cast<std::byte*>(const_cast<void*>(a));
    auto* y = static_cast<std::byte*>(const_cast<void*>(b));
    try {
        for (std::size_t off = 0; off < count;) {
            const std::size_t k = std::min(count - off, max_elems);
            const auto len = static_cast<uint32_t>(k * es);
            const std::size_t at = off * es;
            const uint32_t base = thread_->checkCompleted(CoyoteOper::LOCAL_WRITE);
            // The write is queued first, so the model computes straight into it.
            thread_->invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = d + at, .len = len, .stream = STRM_HOST, .dest = 0}, true);
            thread_->invoke(CoyoteOper::LOCAL_READ, localSg{.addr = x + at, .len = len, .stream = STRM_HOST, .dest = 0}, false);
            thread_->invoke(CoyoteOper::LOCAL_READ, localSg{.addr = y + at, .len = len, .stream = STRM_HOST, .dest = 1}, false);
            const auto start = Clock::now();
            while (static_cast<uint32_t>(thread_->checkCompleted(CoyoteOper::LOCAL_WRITE) - base) == 0) {
                if (Clock::now() - start > timeout_)
                    throw_error(Errc::timeout, "reduction offload",
                                "the LOCAL_WRITE of " + std::to_string(len) + " bytes at " +
                                    hex(reinterpret_cast<uint64_t>(d + at)) + " (dest 0, " + mpi::name(type) + " " +
                                    mpi::name(op) + ") did not complete within " + std::to_string(timeout_.count()) +
                                    " ms: the user logic produced no output for it");
                ::sched_yield();
            }
            off += k;
            elements_.fetch_add(k, std::memory_order_relaxed);
        }
    } catch (...) {
        // Unregistering the Coyote thread drops its pending writes: nothing lands in the caller's buffers later.
        broken_ = true;
        try {
            thread_->setCSR(rm::k_ctrl_discard, rm::k_csr_ctrl);
        } catch (...) {
        }
        thread_.reset();
        throw;
    }
}

}  // namespace coyote::detail::coll
