// pycoyote.mpi: shared pieces of the MPI extension (communicators from mpi4py, typed views of Python buffers).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include <pybind11/pybind11.h>

#include <coyote/mpi/collectives_types.hpp>

namespace pycoyote::mpi {

/// The MPI_Comm of an mpi4py communicator (mpi4py's C API); MPI_COMM_WORLD for None.
MPI_Comm comm_of(const pybind11::object& comm);

/// The MPI_Op of an mpi4py operation object, or null (error cleared) if `op` is not one. mpi4py's C API
/// pointers are per translation unit: only mpi_module.cpp, which imports them, may call it.
const MPI_Op* mpi_op_of(const pybind11::object& op);

/// A contiguous view of a Python buffer (NumPy array, CoyoteBuffer, bytearray, ...) and its element type.
struct View {
    std::unique_ptr<pybind11::buffer_info> info; ///< holds the buffer export while the view lives
    pybind11::object owner;                      ///< the Python object
    void* data = nullptr;
    std::size_t count = 0;                       ///< elements
    coyote::mpi::Datatype type = coyote::mpi::Datatype::uint8;
};

/// Views `obj` (C-contiguous; element types int8..float64 and float16); throws InvalidArgumentError naming
/// `call` and `what` ("send", "recv", ...).
View view_of(const pybind11::object& obj, bool writable, const char* call, const char* what);

/// A new NumPy array of `count` elements of the NumPy dtype of `like`.
pybind11::object new_like(const View& like, std::size_t count);

/// Binds Collectives and Request into `m`.
void bind_collectives(pybind11::module_& m);

}  // namespace pycoyote::mpi
