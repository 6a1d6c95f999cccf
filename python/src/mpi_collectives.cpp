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
#include "pyint.hpp"

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

/// A root rank: 0 .. size - 1 (any Python int binds, so a huge one is this error and not a TypeError).
int root_of(const coyote::mpi::Collectives& c, const pycoyote::Int& root, const char* call) {
    return static_cast<int>(root.get_in(0, c.size() - 1, call, "root"));
}

std::size_t per_rank(const View& v, int size, const char* call) {
    const auto n = static_cast<std::size_t>(size);
    if (v.count % n != 0)
        bad(call, std::to_string(v.count) + " elements do not split into " + std::to_string(size) + " equal blocks");
    return v.count / n;
}

/// Which collective a Call is.
enum class Kind { barrier, allreduce, reduce, broadcast, allgather, gather, scatter, reduce_scatter, alltoall };

/// A collective's checked arguments: the views of its arrays (held until it completes), what it returns and the
/// values of the C++ call.
struct Call {
    Kind kind = Kind::barrier;
    View send, recv;
    py::object result = py::none();
    std::size_t count = 0;
    coyote::mpi::Datatype type = coyote::mpi::Datatype::uint8;
    Op op = Op::sum;
    int root = 0;
};

/// A call of `kind` on `send` whose result has `out_count` elements (on the root only when `at_root_only`).
Call with_result(Kind kind, const coyote::mpi::Collectives& c, const py::object& send, const py::object& recv,
                 std::size_t out_count_per_send, bool at_root_only, int root, const char* name) {
    Call k;
    k.kind = kind;
    k.root = root;
    k.send = view_of(send, false, name, "send");
    k.type = k.send.type;
    k.count = k.send.count;
    if (!at_root_only || c.rank() == root) k.result = result_or_new(recv, k.send, k.count * out_count_per_send, name, &k.recv);
    return k;
}

Call prep_barrier(coyote::mpi::Collectives&, const char*) { return Call{}; }

Call prep_allreduce(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv,
                    const py::object& op) {
    const Op o = op_of(op, name);
    Call k = with_result(Kind::allreduce, c, send, recv, 1, false, 0, name);
    k.op = o;
    return k;
}

Call prep_reduce(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv,
                 const py::object& op, const pycoyote::Int& root) {
    const Op o = op_of(op, name);
    Call k = with_result(Kind::reduce, c, send, recv, 1, true, root_of(c, root, name), name);
    k.op = o;
    return k;
}

/// A call of `kind` whose result is the caller's writable array `buf` (named `what` in errors).
Call into(Kind kind, const py::object& buf, int root, const char* name, const char* what) {
    Call k;
    k.kind = kind;
    k.root = root;
    k.recv = view_of(buf, true, name, what);
    k.type = k.recv.type;
    k.count = k.recv.count;
    k.result = buf;
    return k;
}

Call prep_broadcast(coyote::mpi::Collectives& c, const char* name, const py::object& buf,
                    const pycoyote::Int& root) {
    return into(Kind::broadcast, buf, root_of(c, root, name), name, "buf");
}

Call prep_allgather(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv) {
    return with_result(Kind::allgather, c, send, recv, static_cast<std::size_t>(c.size()), false, 0, name);
}

Call prep_gather(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv,
                 const pycoyote::Int& root) {
    return with_result(Kind::gather, c, send, recv, static_cast<std::size_t>(c.size()), true, root_of(c, root, name),
                       name);
}

Call prep_scatter(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv,
                  const pycoyote::Int& root) {
    Call k = into(Kind::scatter, recv, root_of(c, root, name), name, "recv");
    if (c.rank() == k.root) {
        k.send = view_of(send, false, name, "send");
        if (k.send.type != k.recv.type || k.send.count != k.recv.count * static_cast<std::size_t>(c.size()))
            bad(name, "send must hold size() * len(recv) elements of recv's type");
    }
    return k;
}

Call prep_reduce_scatter(coyote::mpi::Collectives& c, const char* name, const py::object& send,
                         const py::object& recv, const py::object& op) {
    const Op o = op_of(op, name);
    Call k;
    k.kind = Kind::reduce_scatter;
    k.op = o;
    k.send = view_of(send, false, name, "send");
    k.type = k.send.type;
    k.count = per_rank(k.send, c.size(), name);
    k.result = result_or_new(recv, k.send, k.count, name, &k.recv);
    return k;
}

Call prep_alltoall(coyote::mpi::Collectives& c, const char* name, const py::object& send, const py::object& recv) {
    Call k = with_result(Kind::alltoall, c, send, recv, 1, false, 0, name);
    k.count = per_rank(k.send, c.size(), name);
    return k;
}

/// Runs `k` in the calling thread (GIL released).
void run(coyote::mpi::Collectives& c, const Call& k) {
    const void* s = k.send.data;
    void* r = k.recv.data;
    py::gil_scoped_release nogil;
    switch (k.kind) {
    case Kind::barrier: c.barrier(); break;
    case Kind::allreduce: c.allreduce(s, r, k.count, k.type, k.op); break;
    case Kind::reduce: c.reduce(s, r, k.count, k.type, k.op, k.root); break;
    case Kind::broadcast: c.broadcast(r, k.count, k.type, k.root); break;
    case Kind::allgather: c.allgather(s, r, k.count, k.type); break;
    case Kind::gather: c.gather(s, r, k.count, k.type, k.root); break;
    case Kind::scatter: c.scatter(s, r, k.count, k.type, k.root); break;
    case Kind::reduce_scatter: c.reduce_scatter(s, r, k.count, k.type, k.op); break;
    case Kind::alltoall: c.alltoall(s, r, k.count, k.type); break;
    }
}

/// Queues `k` on the collectives' progress thread.
coyote::mpi::Request start(coyote::mpi::Collectives& c, const Call& k) {
    const void* s = k.send.data;
    void* r = k.recv.data;
    switch (k.kind) {
    case Kind::barrier: return c.ibarrier();
    case Kind::allreduce: return c.iallreduce(s, r, k.count, k.type, k.op);
    case Kind::reduce: return c.ireduce(s, r, k.count, k.type, k.op, k.root);
    case Kind::broadcast: return c.ibroadcast(r, k.count, k.type, k.root);
    case Kind::allgather: return c.iallgather(s, r, k.count, k.type);
    case Kind::gather: return c.igather(s, r, k.count, k.type, k.root);
    case Kind::scatter: return c.iscatter(s, r, k.count, k.type, k.root);
    case Kind::reduce_scatter: return c.ireduce_scatter(s, r, k.count, k.type, k.op);
    case Kind::alltoall: return c.ialltoall(s, r, k.count, k.type);
    }
    bad("start", "unknown collective");
}

/// A non-blocking collective; keeps its arrays (and their exports) until it completes.
struct PyRequest {
    StatePtr state;
    coyote::mpi::Request req;
    Call call;
    bool done = false;

    PyRequest() = default;
    PyRequest(const PyRequest&) = delete;
    PyRequest& operator=(const PyRequest&) = delete;
    ~PyRequest() {
        if (done || !req.valid()) return;
        try {
            py::gil_scoped_release nogil;
            req.wait();
        } catch (...) { // the error was not asked for; the object reports it on its next call
        }
        --state->pending;
    }
    /// Blocks (GIL released) until complete; returns the result. The operation's error is raised once.
    py::object wait() {
        if (!done) settle([&] {
            py::gil_scoped_release nogil;
            req.wait();
            return true;
        });
        return call.result;
    }
    bool test() {
        if (!done) settle([&] { return req.test(); });
        return done;
    }

private:
    /// Runs `fn` (true: complete); completion or an error ends the request.
    template <typename Fn>
    void settle(Fn&& fn) {
        bool complete = false;
        try {
            complete = fn();
        } catch (...) {
            finish();
            throw;
        }
        if (complete) finish();
    }
    void finish() {
        done = true;
        --state->pending;
    }
};

/// Binds `name` (blocking: returns the result) and `iname` (non-blocking: returns a Request whose wait() returns
/// the result), both taking the arguments of `prep` after the Collectives object.
template <typename Cls, typename... Args, typename... Extra>
void def_pair(Cls& cls, const char* name, const char* iname, Call (*prep)(coyote::mpi::Collectives&, const char*, Args...),
              const Extra&... extra) {
    cls.def(name, [prep, name](const StatePtr& s, Args... a) {
        auto& c = s->get(name);
        Call k = prep(c, name, a...);
        run(c, k);
        return k.result;
    }, extra...);
    cls.def(iname, [prep, iname](const StatePtr& s, Args... a) {
        auto& c = s->get(iname);
        auto q = std::make_unique<PyRequest>();
        q->state = s;
        q->call = prep(c, iname, a...);
        q->req = start(c, q->call);
        ++s->pending;
        return q;
    }, extra...);
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
    py::class_<CollState, StatePtr> cls(m, "Collectives",
        "Collectives over FPGA RDMA on an mpi4py communicator (collective constructor and close()).");
    cls.def(py::init([](py::object comm) {
                 const MPI_Comm c = comm_of(comm);
                 py::gil_scoped_release nogil;
                 return std::make_shared<CollState>(c);
             }), py::arg("comm") = none)
        .def_property_readonly("rank", [](const CollState& s) { return s.comm.rank(); })
        .def_property_readonly("size", [](const CollState& s) { return s.comm.size(); })
        .def("peers", [](const CollState& s) { return s.get("peers").peers(); })
        .def("last_algorithm", [](const CollState& s) { return s.get("last_algorithm").last_algorithm(); })
        .def("close", &close, "Collective: releases the queue pairs (waits for every rank).");
    def_pair(cls, "barrier", "ibarrier", &prep_barrier);
    def_pair(cls, "allreduce", "iallreduce", &prep_allreduce, py::arg("send"), py::arg("recv") = none,
             py::arg("op") = "sum");
    def_pair(cls, "reduce", "ireduce", &prep_reduce, py::arg("send"), py::arg("recv") = none, py::arg("op") = "sum",
             py::arg("root") = 0);
    def_pair(cls, "broadcast", "ibroadcast", &prep_broadcast, py::arg("buf"), py::arg("root") = 0);
    def_pair(cls, "allgather", "iallgather", &prep_allgather, py::arg("send"), py::arg("recv") = none);
    def_pair(cls, "gather", "igather", &prep_gather, py::arg("send"), py::arg("recv") = none, py::arg("root") = 0);
    def_pair(cls, "scatter", "iscatter", &prep_scatter, py::arg("send"), py::arg("recv"), py::arg("root") = 0);
    def_pair(cls, "reduce_scatter", "ireduce_scatter", &prep_reduce_scatter, py::arg("send"), py::arg("recv") = none,
             py::arg("op") = "sum");
    def_pair(cls, "alltoall", "ialltoall", &prep_alltoall, py::arg("send"), py::arg("recv") = none);
}

}  // namespace pycoyote::mpi
