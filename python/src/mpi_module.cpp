// pycoyote.mpi: the pycoyote._mpi extension module: communicators from mpi4py, buffer views, QpSet wiring.
#include <mpi4py/mpi4py.h>

#include <cstring>
#include <optional>
#include <string>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <coyote/error.hpp>
#include <coyote/mpi/communicator.hpp>
#include <coyote/mpi/device.hpp>
#include <coyote/mpi/wiring.hpp>

#include "mpi_common.hpp"
#include "pyint.hpp"
#include "qpair.hpp"

namespace py = pybind11;
using coyote::Errc;
using coyote::mpi::Datatype;

namespace pycoyote::mpi {

MPI_Comm comm_of(const py::object& comm) {
    if (comm.is_none()) return MPI_COMM_WORLD;
    MPI_Comm* c = PyMPIComm_Get(comm.ptr());
    if (c == nullptr) throw py::error_already_set();
    return *c;
}

const MPI_Op* mpi_op_of(const py::object& op) {
    const MPI_Op* m = PyMPIOp_Get(op.ptr());
    if (m == nullptr) PyErr_Clear();
    return m;
}

namespace {

/// struct-module format -> Datatype, by kind and size (NumPy says 'l' or 'q' for int64 depending on platform).
bool datatype_of_format(std::string f, std::size_t size, Datatype* out) {
    while (!f.empty() && std::strchr("@=<!", f.front()) != nullptr) f.erase(0, 1);
    if (f.size() != 1) return false;
    const char c = f[0];
    if (c == 'e' && size == 2) return *out = Datatype::float16, true;
    if (c == 'f' && size == 4) return *out = Datatype::float32, true;
    if (c == 'd' && size == 8) return *out = Datatype::float64, true;
    const bool is_signed = std::strchr("bhilq", c) != nullptr;
    const bool is_unsigned = std::strchr("BHILQ", c) != nullptr;
    if (!is_signed && !is_unsigned) return false;
    switch (size) {
    case 1: return *out = is_signed ? Datatype::int8 : Datatype::uint8, true;
    case 4: return *out = is_signed ? Datatype::int32 : Datatype::uint32, true;
    case 8: return *out = is_signed ? Datatype::int64 : Datatype::uint64, true;
    default: return false;
    }
}

/// Whether `obj` exports a read-only buffer (clears the error of a failed request).
bool readable_buffer(const py::object& obj) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj.ptr(), &b, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        return false;
    }
    PyBuffer_Release(&b);
    return true;
}

}  // namespace

View view_of(const py::object& obj, bool writable, const char* call, const char* what) {
    if (!PyObject_CheckBuffer(obj.ptr()))
        coyote::throw_error(Errc::invalid_argument, call, std::string(what) + " does not support the buffer protocol");
    View v;
    v.owner = obj;
    try {
        v.info = std::make_unique<py::buffer_info>(py::reinterpret_borrow<py::buffer>(obj).request(writable));
    } catch (py::error_already_set&) {
        // Readable but not writable: say so naming the call and the argument (NumPy's ValueError "buffer source
        // array is read-only" names neither); any other failure propagates as it is.
        if (!writable || !readable_buffer(obj)) throw;
        coyote::throw_error(Errc::invalid_argument, call, std::string(what) + " is read-only: the call writes its result into it");
    }
    const auto& info = *v.info;
    py::ssize_t stride = info.itemsize;
    for (auto d = info.ndim; d-- > 0;) {
        if (info.shape[static_cast<std::size_t>(d)] > 1 && info.strides[static_cast<std::size_t>(d)] != stride)
            coyote::throw_error(Errc::invalid_argument, call, std::string(what) + " is not C-contiguous");
        stride *= info.shape[static_cast<std::size_t>(d)];
    }
    if (!datatype_of_format(info.format, static_cast<std::size_t>(info.itemsize), &v.type))
        coyote::throw_error(Errc::invalid_argument, call,
                            std::string(what) + ": element type '" + info.format +
                                "' not supported (int8, uint8, int32, uint32, int64, uint64, float16, float32, "
                                "float64)");
    v.data = info.ptr;
    v.count = static_cast<std::size_t>(info.size);
    return v;
}

py::object new_like(const View& like, std::size_t count) {
    static const char* const names[] = {"int8",    "uint8",    "int32",   "uint32",  "int64",
                                        "uint64",  "float16",  "bfloat16", "float32", "float64"};
    auto np = py::module_::import("numpy");
    const auto dtype = np.attr("dtype")(names[static_cast<std::size_t>(like.type)]);
    // As many elements as `like` (allreduce, reduce, alltoall): its shape too (also 0-d).
    if (count == like.count && like.info && like.info->ndim != 1) return np.attr("empty")(py::cast(like.info->shape), dtype);
    return np.attr("empty")(count, dtype);
}

namespace {

coyote::mpi::PeerPattern pattern_of(const std::string& s) {
    using P = coyote::mpi::PeerPattern;
    for (P p : {P::all, P::ring, P::recursive_doubling, P::binomial})
        if (s == coyote::mpi::pattern_name(p)) return p;
    coyote::throw_error(Errc::invalid_argument, "QpSet",
                        "unknown pattern '" + s + "' (expected all, ring, recursive_doubling or binomial)");
}

/// Queue pairs to a set of peers over a communicator (one collective exchange), kept with its communicator until
/// close() (or the last reference).
struct QpSetState {
    std::optional<coyote::mpi::Communicator> comm;
    std::optional<coyote::mpi::QpSet> qps;
    int buffer_views = 0; ///< arrays from buffer() still alive: close() refuses while there are any
    QpSetState(MPI_Comm c, uint64_t buffer_size, coyote::mpi::PeerPattern pattern) : comm(std::in_place, c) {
        qps.emplace(*comm, coyote::mpi::select_device(*comm),
                    coyote::mpi::WiringOptions{.buffer_size = buffer_size, .pattern = pattern});
    }
    coyote::mpi::QpSet& q(const char* call) {
        if (!qps) coyote::throw_error(Errc::invalid_argument, call, "the QpSet is closed");
        return *qps;
    }
    const coyote::mpi::Communicator& c(const char* call) const {
        if (!comm) coyote::throw_error(Errc::invalid_argument, call, "the QpSet is closed");
        return *comm;
    }
    /// Refused (GIL held) while arrays from buffer() remain: they view the registered buffers.
    void check_closable() const {
        if (buffer_views > 0)
            coyote::throw_error(Errc::invalid_argument, "QpSet.close",
                                std::to_string(buffer_views) + " arrays from buffer() still view the registered "
                                "buffers; delete them first");
    }
};

void bind_qpset(py::module_& m) {
    py::class_<QpSetState, std::shared_ptr<QpSetState>>(m, "QpSet",
        "Queue pairs from this rank to its peers, wired over an mpi4py communicator in one collective.")
        .def(py::init([](py::object comm, const Int& buffer_size, const std::string& pattern) {
                 const MPI_Comm c = comm_of(comm);
                 const auto p = pattern_of(pattern);
                 const uint64_t size = buffer_size.get_unsigned(0xffffffffULL, "QpSet", "buffer_size");
                 py::gil_scoped_release nogil;
                 return std::make_shared<QpSetState>(c, size, p);
             }),
             py::arg("comm") = py::none(), py::arg("buffer_size") = 1 << 20, py::arg("pattern") = "all")
        .def("peers", [](QpSetState& s) { return s.q("peers").peers(); })
        .def("rank", [](const QpSetState& s) { return s.c("rank").rank(); })
        .def("size", [](const QpSetState& s) { return s.c("size").size(); })
        .def("qpair", [](QpSetState& s, int peer) {
                 return qpair_dict(*s.q("qpair").thread(peer).getQpair());
             }, py::arg("peer"), "Both sides of the queue pair to `peer`.")
        .def("buffer", [](std::shared_ptr<QpSetState> s, int peer) {
                 auto& c = s->q("buffer").connection(peer);
                 auto* holder = new std::shared_ptr<QpSetState>(s);
                 ++s->buffer_views;
                 py::capsule keep(holder, [](void* p) {
                     auto* h = static_cast<std::shared_ptr<QpSetState>*>(p);
                     --(*h)->buffer_views;
                     delete h;
                 });
                 return py::array_t<uint8_t>({static_cast<py::ssize_t>(c.size)}, {1},
                                             static_cast<uint8_t*>(c.buffer), keep);
             }, py::arg("peer"), "The registered buffer of the queue pair to `peer` (uint8 NumPy array, no copy).")
        .def("rdma_write", [](QpSetState& s, int peer, const Int& size, const Int& local_offs, const Int& remote_offs) {
                 auto& c = s.q("rdma_write").connection(peer);
                 const uint64_t n = size.get_unsigned(c.size, "rdma_write", "size");
                 const uint64_t lo = local_offs.get_unsigned(c.size - n, "rdma_write", "local_offs");
                 const uint64_t ro = remote_offs.get_unsigned(c.size - n, "rdma_write", "remote_offs");
                 auto& t = *c.thread;
                 py::gil_scoped_release nogil;
                 t.invoke(coyote::CoyoteOper::REMOTE_RDMA_WRITE,
                          coyote::rdmaSg{.local_offs = lo, .remote_offs = ro, .len = static_cast<uint32_t>(n)});
             }, py::arg("peer"), py::arg("size"), py::arg("local_offs") = 0, py::arg("remote_offs") = 0,
             "RDMA WRITE of `size` bytes from this side's buffer to the peer's (both within the buffer size).")
        .def("get_completed", [](QpSetState& s, int peer, const std::string& oper) {
                 using O = coyote::CoyoteOper;
                 const O o = oper == "rdma_write" ? O::REMOTE_RDMA_WRITE
                           : oper == "rdma_read"  ? O::REMOTE_RDMA_READ
                           : oper == "local_write" ? O::LOCAL_WRITE
                           : throw coyote::Error(Errc::invalid_argument, "get_completed", "unknown operation '" + oper + "'");
                 return s.q("get_completed").thread(peer).checkCompleted(o);
             }, py::arg("peer"), py::arg("oper"))
        .def("barrier", [](QpSetState& s) {
                 const auto& comm = s.c("barrier");
                 py::gil_scoped_release nogil;
                 coyote::mpi::barrier(comm);
             })
        .def("close", [](QpSetState& s) {
                 s.check_closable();
                 py::gil_scoped_release nogil;
                 s.qps.reset();
                 s.comm.reset();
             }, "Closes the queue pairs and frees their buffers (refused while arrays from buffer() remain).")
        .def_property_readonly("closed", [](const QpSetState& s) { return !s.qps; });
}

}  // namespace

}  // namespace pycoyote::mpi

PYBIND11_MODULE(_mpi, m) {
    m.doc() = "Coyote MPI layer bindings (queue-pair wiring and collectives over mpi4py communicators).";
    if (import_mpi4py() < 0) throw py::error_already_set();
    py::module_::import("pycoyote._core"); // the exception classes and their translator
    pycoyote::mpi::bind_qpset(m);
    pycoyote::mpi::bind_collectives(m);
}
