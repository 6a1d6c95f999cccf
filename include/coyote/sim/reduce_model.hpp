// coyote-mpi: the register contract of the built-in `reduce` user-logic model of the sim backend
// (COYOTE_SIM_MODEL=reduce). Output dest 0 = input dest 0 <op> input dest 1, element by element; the element
// type and the operation are user control registers. See docs/user_logic_models.md.
#pragma once

#include <cstdint>

namespace coyote::sim::reduce {

/// CSR 0: element type code (read/write; default float32).
inline constexpr uint32_t k_csr_type = 0;
/// CSR 1: operation code (read/write; default sum).
inline constexpr uint32_t k_csr_op = 1;
/// CSR 2: control (write k_ctrl_discard to drop input buffered without a partner; reads back 0).
inline constexpr uint32_t k_csr_ctrl = 2;
/// CSR 3: elements reduced since start (the host may write it, e.g. 0 to reset).
inline constexpr uint32_t k_csr_elements = 3;
/// CSR 4: data reduced with an undefined type/op combination (bitwise op on a floating type); host-writable.
inline constexpr uint32_t k_csr_errors = 4;
/// CSR 5: bytes buffered on input dests 0 and 1 waiting for a partner (read only).
inline constexpr uint32_t k_csr_buffered = 5;
/// CSR 6: bit c set = type code c is supported (read only).
inline constexpr uint32_t k_csr_types = 6;
/// CSR 7: contract identifier, k_model_id (read only).
inline constexpr uint32_t k_csr_id = 7;

/// Value of CSR 7 ("REDUCE" and contract version 1).
inline constexpr uint64_t k_model_id = 0x5245'4455'4345'0001ull;
/// CSR 2 bit 0: discard buffered input of dests 0 and 1.
inline constexpr uint64_t k_ctrl_discard = 1;

/// Element type codes (the numbering of coyote::mpi::Datatype).
inline constexpr uint64_t k_type_int8 = 0;
inline constexpr uint64_t k_type_uint8 = 1;
inline constexpr uint64_t k_type_int32 = 2;
inline constexpr uint64_t k_type_uint32 = 3;
inline constexpr uint64_t k_type_int64 = 4;
inline constexpr uint64_t k_type_uint64 = 5;
inline constexpr uint64_t k_type_float16 = 6;  ///< not supported by the built-in model
inline constexpr uint64_t k_type_bfloat16 = 7; ///< not supported by the built-in model
inline constexpr uint64_t k_type_float32 = 8;
inline constexpr uint64_t k_type_float64 = 9;

/// Operation codes (the numbering of coyote::mpi::Op). Bitwise operations are defined for integer types only.
inline constexpr uint64_t k_op_sum = 0;
inline constexpr uint64_t k_op_prod = 1;
inline constexpr uint64_t k_op_min = 2;
inline constexpr uint64_t k_op_max = 3;
inline constexpr uint64_t k_op_band = 4;
inline constexpr uint64_t k_op_bor = 5;
inline constexpr uint64_t k_op_bxor = 6;

}  // namespace coyote::sim::reduce
