// pycoyote.mpi: Collectives and Request on NumPy arrays / CoyoteBuffers (any C-contiguous Python buffer).
// Counts come from the arrays; a missing result array is allocated (NumPy, same dtype) and returned.
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <pybind11/stl.h>

#include <coyote/error.hpp>
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/device.hpp>

#include "mpi_common.hpp"

namespace py = pybind11;
using coyote::Errc;
using coyote::mpi::Op;

namespace pycoyote::mpi {

namespace {

[[noreturn]] void bad(const char* call, const std::string& what) { coyote::throw_error(Errc::invalid_argument, call, what); }

/// A reduction: a name ("sum", ...) or an mpi4py operation (MPI.SUM, ...).
Op op_of(const py::object& op, const char* call) {
    static const std::array<std::pair<Op, MPI_Op>, 7> k_mpi{{{Op::sum, MPI_SUM}, {Op::prod, MPI_PROD},
        {Op::min, MPI_MIN}, {Op::max, MPI_MAX}, {Op::band, MPI_BAND}, {Op::bor, MPI_BOR}, {Op::bxor, MPI_BXOR}}};
    if (py::isinstance<py::str>(op)) {
        const auto s = op.cast<std::string>();
        for (const auto& [o, m] : k_mpi)
            if (s == coyote::mpi::name(o)) return o;
        bad(call, "unknown op '" + s + "' (expected sum, prod, min, max, band, bor or bxor)");
    }
    if (const MPI_Op* m = mpi_op_of(op); m != nullptr) {
        for (const auto& [o, mo] : k_mpi)
            if (*m == mo) return o;
        bad(call, "this mpi4py operation has no Coyote equivalent (SUM, PROD, MIN, MAX, BAND, BOR, BXOR)");
    }
    bad(call, "op must be a name ('sum', ...) or an mpi4py operation (MPI.SUM, ...)");
}

/// The communicator and the collectives made on it; shared by the Python object and its pending requests.
struct CollState {
    coyote::mpi::Communicator comm;
    std::unique_ptr<coyote::mpi::Collectives> coll;
    int pending = 0;
    explicit CollState(MPI_Comm c) : comm(c) {
        coll = std::make_unique<coyote::mpi::Collectives>(comm, coyote::mpi::select_device(comm));
    }
    ~CollState() { close(); }
    coyote::mpi::Collectives& get(const char* call) const {
        if (!coll) bad(call, "the Collectives object was closed");
        return *coll;
    }
    void close() {
        if (!coll) return;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized != 0) { // too late for the collective teardown: leave it to process exit
            (void)coll.release();
            return;
        }
        if (PyGILState_Check() != 0) {
            py::gil_scoped_release nogil;
            coll.reset();
        } else {
            coll.reset();
        }
    }
};
using StatePtr = std::shared_ptr<CollState>;

/// A non-blocking collective; keeps its arrays (and their exports) until it completes.
struct PyRequest {
    StatePtr state;
    coyote::mpi::Request req;
    View send, recv;
    py::object result;
    bool done = false;

    PyRequest() = default;
    PyRequest(const PyRequest&) = delete;
    PyRequest& operator=(const PyRequest&) = delete;
    ~PyRequest() {
        if (done || !req.valid()) return;
        try {
            py::gil_scoped_release nogil;
            req.wait();
        } catch (...) {
        }
        --state->pending;
    }
    py::object wait() {
        if (!done) {
            {
                py::gil_scoped_release nogil;
                req.wait();
            }
            finish();
        }
        return result;
    }
    bool test() {
        if (!done && req.test()) finish();
        return done;
    }
    void finish() {
        done = true;
        --state->pending;
    }
};

/// The result array: `recv` if given (checked: type of `send`, `count` elements), else a new one.
py::object result_or_new(const py::object& recv, const View& send, std::size_t count, const char* call, View* out) {
    py::object r = recv.is_none() ? new_like(send, count) : recv;
    *out = view_of(r, true, call, "recv");
    if (out->type != send.type)
        bad(call, std::string("recv holds ") + coyote::mpi::name(out->type) + " but send holds " +
                      coyote::mpi::name(send.type));
    if (out->count != count)
        bad(call, "recv holds " + std::to_string(out->count) + " elements, " + std::to_string(count) + " needed");
    return r;
}

std::size_t per_rank(const View& v, int size, const char* call) {
    const auto n = static_cast<std::size_t>(size);
    if (v.count % n != 0)
        bad(call, std::to_string(v.count) + " elements do not split into " + std::to_string(size) + " equal blocks");
    return v.count / n;
}

template <typename Fn>
void nogil(Fn&& fn) {
    py::gil_scoped_release release;
    fn();
}

py::object allreduce(const StatePtr& s, const py::object& send, const py::object& recv, const py::object& op) {
    const char* call = "allreduce";
    auto& c = s->get(call);
    const Op o = op_of(op, call);
    const View sv = view_of(send, false, call, "send");
    View rv;
    py::object r = result_or_new(recv, sv, sv.count, call, &rv);
    nogil([&] { c.allreduce(sv.data, rv.data, sv.count, sv.type, o); });
    return r;
}

py::object reduce(const StatePtr& s, const py::object& send, const py::object& recv, const py::object& op, int root) {
    const char* call = "reduce";
    auto& c = s->get(call);
    const Op o = op_of(op, call);
    const View sv = view_of(send, false, call, "send");
    View rv;
    py::object r = py::none();
    if (c.rank() == root) r = result_or_new(recv, sv, sv.count, call, &rv);
    nogil([&] { c.reduce(sv.data, rv.data, sv.count, sv.type, o, root); });
    return r;
}

py::object broadcast(const StatePtr& s, const py::object& buf, int root) {
    const char* call = "broadcast";
    auto& c = s->get(call);
    const View v = view_of(buf, true, call, "buf");
    nogil([&] { c.broadcast(v.data, v.count, v.type, root); });
    return buf;
}

py::object allgather(const StatePtr& s, const py::object& send, const py::object& recv) {
    const char* call = "allgather";
    auto& c = s->get(call);
    const View sv = view_of(send, false, call, "send");
    View rv;
    py::object r = result_or_new(recv, sv, sv.count * static_cast<std::size_t>(c.size()), call, &rv);
    nogil([&] { c.allgather(sv.data, rv.data, sv.count, sv.type); });
    return r;
}

py::object gather(const StatePtr& s, const py::object& send, const py::object& recv, int root) {
    const char* call = "gather";
    auto& c = s->get(call);
    const View sv = view_of(send, false, call, "send");
    View rv;
    py::object r = py::none();
    if (c.rank() == root) r = result_or_new(recv, sv, sv.count * static_cast<std::size_t>(c.size()), call, &rv);
    nogil([&] { c.gather(sv.data, rv.data, sv.count, sv.type, root); });
    return r;
}

py::object scatter(const StatePtr& s, const py::object& send, const py::object& recv, int root) {
    const char* call = "scatter";
    auto& c = s->get(call);
    const View rv = view_of(recv, true, call, "recv");
    View sv;
    if (c.rank() == root) {
        sv = view_of(send, false, call, "send");
        if (sv.type != rv.type || sv.count != rv.count * static_cast<std::size_t>(c.size()))
            bad(call, "send must hold size() * len(recv) elements of recv's type");
    }
    nogil([&] { c.scatter(sv.data, rv.data, rv.count, rv.type, root); });
    return recv;
}

py::object reduce_scatter(const StatePtr& s, const py::object& send, const py::object& recv, const py::object& op) {
    const char* call = "reduce_scatter";
    auto& c = s->get(call);
    const Op o = op_of(op, call);
    const View sv = view_of(send, false, call, "send");
    const std::size_t n = per_rank(sv, c.size(), call);
    View rv;
    py::object r = result_or_new(recv, sv, n, call, &rv);
    nogil([&] { c.reduce_scatter(sv.data, rv.data, n, sv.type, o); });
    return r;
}

py::object alltoall(const StatePtr& s, const py::object& send, const py::object& recv) {
    const char* call = "alltoall";
    auto& c = s->get(call);
    const View sv = view_of(send, false, call, "send");
    const std::size_t n = per_rank(sv, c.size(), call);
    View rv;
    py::object r = result_or_new(recv, sv, sv.count, call, &rv);
    nogil([&] { c.alltoall(sv.data, rv.data, n, sv.type); });
    return r;
}

std::unique_ptr<PyRequest> iallreduce(const StatePtr& s, const py::object& send, const py::object& recv,
                                      const py::object& op) {
    const char* call = "iallreduce";
    auto& c = s->get(call);
    const Op o = op_of(op, call);
    auto q = std::make_unique<PyRequest>();
    q->state = s;
    q->send = view_of(send, false, call, "send");
    q->result = result_or_new(recv, q->send, q->send.count, call, &q->recv);
    q->req = c.iallreduce(q->send.data, q->recv.data, q->send.count, q->send.type, o);
    ++s->pending;
    return q;
}

std::unique_ptr<PyRequest> ibroadcast(const StatePtr& s, const py::object& buf, int root) {
    const char* call = "ibroadcast";
    auto& c = s->get(call);
    auto q = std::make_unique<PyRequest>();
    q->state = s;
    q->recv = view_of(buf, true, call, "buf");
    q->result = buf;
    q->req = c.ibroadcast(q->recv.data, q->recv.count, q->recv.type, root);
    ++s->pending;
    return q;
}

void close(const StatePtr& s) {
    if (s->pending > 0)
        bad("close", std::to_string(s->pending) + " non-blocking collectives are still pending; wait for them first");
    s->close();
}

}  // namespace

void bind_collectives(py::module_& m) {
    py::class_<PyRequest>(m, "Request", "A non-blocking collective; wait() returns its result array.")
        .def("wait", &PyRequest::wait)
        .def("test", &PyRequest::test);

    const auto none = py::none();
    py::class_<CollState, StatePtr>(m, "Collectives",
        "Collectives over FPGA RDMA on an mpi4py communicator (collective constructor and close()).")
        .def(py::init([](py::object comm) {
                 const MPI_Comm c = comm_of(comm);
                 py::gil_scoped_release nogil;
                 return std::make_shared<CollState>(c);
             }), py::arg("comm") = none)
        .def_property_readonly("rank", [](const CollState& s) { return s.comm.rank(); })
        .def_property_readonly("size", [](const CollState& s) { return s.comm.size(); })
        .def("peers", [](const CollState& s) { return s.get("peers").peers(); })
        .def("last_algorithm", [](const CollState& s) { return s.get("last_algorithm").last_algorithm(); })
        .def("barrier", [](const CollState& s) { auto& c = s.get("barrier"); nogil([&] { c.barrier(); }); })
        .def("allreduce", &allreduce, py::arg("send"), py::arg("recv") = none, py::arg("op") = "sum")
        .def("reduce", &reduce, py::arg("send"), py::arg("recv") = none, py::arg("op") = "sum", py::arg("root") = 0)
        .def("broadcast", &broadcast, py::arg("buf"), py::arg("root") = 0)
        .def("allgather", &allgather, py::arg("send"), py::arg("recv") = none)
        .def("gather", &gather, py::arg("send"), py::arg("recv") = none, py::arg("root") = 0)
        .def("scatter", &scatter, py::arg("send"), py::arg("recv"), py::arg("root") = 0)
        .def("reduce_scatter", &reduce_scatter, py::arg("send"), py::arg("recv") = none, py::arg("op") = "sum")
        .def("alltoall", &alltoall, py::arg("send"), py::arg("recv") = none)
        .def("iallreduce", &iallreduce, py::arg("send"), py::arg("recv") = none, py::arg("op") = "sum")
        .def("ibroadcast", &ibroadcast, py::arg("buf"), py::arg("root") = 0)
        .def("close", &close, "Collective: releases the queue pairs (waits for every rank).");
}

}  // namespace pycoyote::mpi
