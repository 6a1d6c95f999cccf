// The built-in `reduce` user-logic model: output dest 0 = input dest 0 <op> input dest 1, element by element,
// with the element type and the operation in user control registers (include/coyote/sim/reduce_model.hpp).
#include <array>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <coyote/error.hpp>
#include <coyote/sim/reduce_model.hpp>

#include "backend/sim/models/models.hpp"
#include "backend/sim/models/paired_input.hpp"
#include "detail/reduce_ops.hpp"

namespace coyote::detail::sim {

namespace {

using coyote::sim::InputChunk;
using coyote::sim::Shell;
using coyote::sim::UserLogic;
namespace rm = coyote::sim::reduce;

/// Bit c set: type code c is implemented (all but the 16-bit floats).
constexpr uint64_t k_supported_types = (1u << rm::k_type_int8) | (1u << rm::k_type_uint8) | (1u << rm::k_type_int32) |
                                       (1u << rm::k_type_uint32) | (1u << rm::k_type_int64) |
                                       (1u << rm::k_type_uint64) | (1u << rm::k_type_float32) |
                                       (1u << rm::k_type_float64);

const char* type_name(uint64_t code) noexcept {
    static constexpr std::array<const char*, 10> names = {"int8",  "uint8",   "int32",    "uint32",  "int64",
                                                          "uint64", "float16", "bfloat16", "float32", "float64"};
    return code < names.size() ? names[code] : "unknown";
}

const char* op_name(uint64_t code) noexcept {
    static constexpr std::array<const char*, 7> names = {"sum", "prod", "min", "max", "band", "bor", "bxor"};
    return code < names.size() ? names[code] : "unknown";
}

std::size_t type_size(uint64_t code) noexcept {
    switch (code) {
    case rm::k_type_int8:
    case rm::k_type_uint8: return 1;
    case rm::k_type_float16:
    case rm::k_type_bfloat16: return 2;
    case rm::k_type_int32:
    case rm::k_type_uint32:
    case rm::k_type_float32: return 4;
    default: return 8;
    }
}

// ---- element operations (detail/reduce_ops.hpp; integer sums and products wrap, as two's complement) ------

namespace ops = ::coyote::detail::reduce_ops;

/// Adds `k` to the element counter. Called before the elements' output is committed: a host that sees the
/// LOCAL_WRITE they complete must see them counted.
void count_elements(Shell& shell, std::size_t k) {
    shell.csr_write(rm::k_csr_elements, shell.csr_read(rm::k_csr_elements) + k);
}

/// Reduces `count` elements of a and b into output dest 0 and counts them: straight into the pending writes'
/// memory when the shell offers a window, element by element through push() where a window ends inside an element.
template <typename T, T (*F)(T, T)>
void run(Shell& shell, const std::byte* a, const std::byte* b, std::size_t count) {
    constexpr std::size_t es = sizeof(T);
    std::size_t done = 0;
    while (done < count) {
        auto w = shell.reserve(0, (count - done) * es);
        const std::size_t k = w.size() / es;
        if (k == 0) {
            shell.commit(0, 0);
            T x, y;
            std::memcpy(&x, a + done * es, es);
            std::memcpy(&y, b + done * es, es);
            const T z = F(x, y);
            std::byte tmp[es];
            std::memcpy(tmp, &z, es);
            count_elements(shell, 1);
            shell.push(0, std::span<const std::byte>(tmp, es));
            ++done;
            continue;
        }
        std::byte* out = w.data();
        const std::byte* pa = a + done * es;
        const std::byte* pb = b + done * es;
        for (std::size_t i = 0; i < k; ++i) {
            // Both operands are loaded before the result is stored: in-place (out == a or b) is fine.
            T x, y;
            std::memcpy(&x, pa + i * es, es);
            std::memcpy(&y, pb + i * es, es);
            const T z = F(x, y);
            std::memcpy(out + i * es, &z, es);
        }
        count_elements(shell, k);
        shell.commit(0, k * es);
        done += k;
    }
}

template <typename T>
bool run_op(Shell& shell, uint64_t op, const std::byte* a, const std::byte* b, std::size_t count) {
    switch (op) {
    case rm::k_op_sum: run<T, &ops::Sum<T>::apply>(shell, a, b, count); return true;
    case rm::k_op_prod: run<T, &ops::Prod<T>::apply>(shell, a, b, count); return true;
    case rm::k_op_min: run<T, &ops::Min<T>::apply>(shell, a, b, count); return true;
    case rm::k_op_max: run<T, &ops::Max<T>::apply>(shell, a, b, count); return true;
    default: break;
    }
    if constexpr (std::is_integral_v<T>) {
        switch (op) {
        case rm::k_op_band: run<T, &ops::Band<T>::apply>(shell, a, b, count); return true;
        case rm::k_op_bor: run<T, &ops::Bor<T>::apply>(shell, a, b, count); return true;
        case rm::k_op_bxor: run<T, &ops::Bxor<T>::apply>(shell, a, b, count); return true;
        default: break;
        }
    }
    return false;
}

/// Element-wise reduction of input dests 0 and 1 into output dest 0. Input without a partner yet is buffered
/// (a byte stream per dest: a command need not end on an element boundary); other dests are ignored.
class Reduce final : public UserLogic, public InputHolder {
public:
    void spill(Shell& shell) override { input_.spill(shell); }
    const char* name() const noexcept override { return "reduce"; }

    void on_csr_write(Shell& shell, uint32_t offs, uint64_t value) override {
        publish(shell, offs);
        switch (offs) {
        case rm::k_csr_type:
            if (value >= 64 || ((k_supported_types >> value) & 1u) == 0) {
                shell.csr_write(rm::k_csr_type, type_); // keep the previous setting
                throw_error(Errc::invalid_argument, "reduce model",
                            "type code " + std::to_string(value) + " (" + type_name(value) +
                                ") is not supported; supported codes: 0 int8, 1 uint8, 2 int32, 3 uint32, 4 int64, "
                                "5 uint64, 8 float32, 9 float64 (CSR 6 has one bit per supported code); type stays " +
                                type_name(type_));
            }
            type_ = value;
            break;
        case rm::k_csr_op:
            if (value > rm::k_op_bxor) {
                shell.csr_write(rm::k_csr_op, op_);
                throw_error(Errc::invalid_argument, "reduce model",
                            "op code " + std::to_string(value) +
                                " is not an operation; codes: 0 sum, 1 prod, 2 min, 3 max, 4 band, 5 bor, 6 bxor; op "
                                "stays " + op_name(op_));
            }
            op_ = value;
            break;
        case rm::k_csr_ctrl:
            if ((value & rm::k_ctrl_discard) != 0) input_.clear(shell);
            shell.csr_write(rm::k_csr_ctrl, 0);
            shell.csr_write(rm::k_csr_buffered, input_.buffered());
            break;
        case rm::k_csr_buffered: shell.csr_write(rm::k_csr_buffered, input_.buffered()); break;
        case rm::k_csr_types: shell.csr_write(rm::k_csr_types, k_supported_types); break;
        case rm::k_csr_id: shell.csr_write(rm::k_csr_id, rm::k_model_id); break;
        default: break; // counters (host may reset them) and free registers
        }
    }

    void on_output_request(Shell& shell, uint32_t dest, uint64_t len) override {
        (void)dest;
        (void)len;
        publish(shell, k_none);
    }

    void on_input(Shell& shell, const InputChunk& in) override {
        publish(shell, k_none);
        if (in.dest > 1) return;
        const std::size_t es = type_size(type_);
        bool bad = false;
        input_.feed(shell, in.dest, in.data, es, [&](const std::byte* a, const std::byte* b, std::size_t n) {
            bad |= !reduce(shell, a, b, n / es);
        });
        shell.csr_write(rm::k_csr_buffered, input_.buffered());
        if (bad)
            throw_error(Errc::invalid_argument, "reduce model",
                        std::string("operation ") + op_name(op_) + " is not defined for " + type_name(type_) +
                            " (bitwise operations take integer types); input dest 0 was passed through unchanged");
    }

private:
    static constexpr uint32_t k_none = ~0u;

    /// Sets the registers the model owns on its first callback (there is no shell before that).
    void publish(Shell& shell, uint32_t written) {
        if (published_) return;
        published_ = true;
        shell.csr_write(rm::k_csr_id, rm::k_model_id);
        shell.csr_write(rm::k_csr_types, k_supported_types);
        if (written != rm::k_csr_type) shell.csr_write(rm::k_csr_type, type_);
        if (written != rm::k_csr_op) shell.csr_write(rm::k_csr_op, op_);
    }

    /// Reduces `count` elements into output dest 0; false (and a passes through) for an undefined combination.
    bool reduce(Shell& shell, const std::byte* a, const std::byte* b, std::size_t count) {
        bool ok = false;
        switch (type_) {
        case rm::k_type_int8: ok = run_op<int8_t>(shell, op_, a, b, count); break;
        case rm::k_type_uint8: ok = run_op<uint8_t>(shell, op_, a, b, count); break;
        case rm::k_type_int32: ok = run_op<int32_t>(shell, op_, a, b, count); break;
        case rm::k_type_uint32: ok = run_op<uint32_t>(shell, op_, a, b, count); break;
        case rm::k_type_int64: ok = run_op<int64_t>(shell, op_, a, b, count); break;
        case rm::k_type_uint64: ok = run_op<uint64_t>(shell, op_, a, b, count); break;
        case rm::k_type_float32: ok = run_op<float>(shell, op_, a, b, count); break;
        case rm::k_type_float64: ok = run_op<double>(shell, op_, a, b, count); break;
        default: break;
        }
        if (!ok) {
            // Keep the output stream in step with the input: the pending writes still complete (after the count).
            shell.csr_write(rm::k_csr_errors, shell.csr_read(rm::k_csr_errors) + 1);
            shell.push(0, std::span<const std::byte>(a, count * type_size(type_)));
        }
        return ok;
    }

    uint64_t type_ = rm::k_type_float32;
    uint64_t op_ = rm::k_op_sum;
    bool published_ = false;
    PairedInput input_;
};

}  // namespace

std::unique_ptr<UserLogic> make_reduce() { return std::make_unique<Reduce>(); }

}  // namespace coyote::detail::sim
