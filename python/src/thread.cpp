// pycoyote: CoyoteThread: allocation, CSRs, local and RDMA operations, completions, queue-pair access.
// pyCoyote's argument names, order and defaults; every size and offset counts elements of the buffer's dtype
// (for RDMA, of the dtype given to init_rdma). Blocking calls release the GIL.
#include "thread.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include <pybind11/stl.h>

#include <coyote/error.hpp>

#include "pyint.hpp"
#include "qpair.hpp"
#include "state.hpp"

namespace py = pybind11;
using coyote::CoyoteOper;
using coyote::Errc;

namespace pycoyote {

namespace {

constexpr std::size_t k_u32 = std::numeric_limits<uint32_t>::max();

[[noreturn]] void bad(const char* call, const std::string& what) { coyote::throw_error(Errc::invalid_argument, call, what); }

uint32_t stream_of(const std::string& s, const char* call) {
    if (s == "host") return coyote::STRM_HOST;
    if (s == "card") return coyote::STRM_CARD;
    bad(call, "unknown stream '" + s + "' (expected 'host' or 'card')");
}

uint32_t dest_of(long long dest, const char* call) {
    if (dest < 0 || dest > 15) bad(call, "dest " + std::to_string(dest) + " out of range 0..15");
    return static_cast<uint32_t>(dest);
}

CoyoteOper oper_of(const std::string& s) {
    if (s == "local_read") return CoyoteOper::LOCAL_READ;
    if (s == "local_write") return CoyoteOper::LOCAL_WRITE;
    if (s == "local_transfer") return CoyoteOper::LOCAL_TRANSFER;
    if (s == "rdma_read") return CoyoteOper::REMOTE_RDMA_READ;
    if (s == "rdma_write") return CoyoteOper::REMOTE_RDMA_WRITE;
    bad("get_completed", "unknown operation '" + s +
                             "' (expected local_read, local_write, local_transfer, rdma_read or rdma_write)");
}

coyote::CoyoteAllocType alloc_of(const std::string& s) {
    if (s == "reg") return coyote::CoyoteAllocType::REG;
    if (s == "thp") return coyote::CoyoteAllocType::THP;
    if (s == "hpf") return coyote::CoyoteAllocType::HPF;
    if (s == "gpu") return coyote::CoyoteAllocType::GPU;
    bad("allocate_buffer", "unknown alloc_type '" + s + "' (expected 'reg', 'thp', 'hpf' or 'gpu')");
}

/// A call on a ThreadState's cThread that runs without the GIL: counted first (close() refuses while it runs),
/// then the GIL released; on return the GIL is taken back, then the count dropped.
class WithoutGil {
public:
    explicit WithoutGil(ThreadState& s) : count_(s) {}

private:
    struct Count {
        explicit Count(ThreadState& st) : s(st) { ++s.calls_without_gil; }
        ~Count() { --s.calls_without_gil; }
        Count(const Count&) = delete;
        Count& operator=(const Count&) = delete;
        ThreadState& s;
    };
    Count count_;                     // first: counted while the GIL is still held
    py::gil_scoped_release release_;  // destroyed first: the GIL is back before the count drops
};

/// The CoyoteThread Python object: shares its state with the buffers it allocated.
struct Thread {
    std::shared_ptr<ThreadState> state = std::make_shared<ThreadState>();

    coyote::cThread& t(const char* call) const { return state->get(call); }

    /// The address of `buf` for `size` elements; checks ownership, liveness and bounds.
    void* range(const Buffer& buf, long long size, std::size_t limit, const char* call, std::size_t* bytes) const {
        (void)t(call);
        if (buf.owner && buf.owner != state) bad(call, "the buffer belongs to another CoyoteThread");
        void* p = buf.data(call);
        *bytes = checked_bytes(size, *buf.type, limit, call);
        if (static_cast<std::size_t>(size) > buf.count)
            bad(call, std::to_string(size) + " elements requested but the buffer holds " + std::to_string(buf.count));
        return p;
    }

    coyote::localSg local_sg(const Buffer& buf, long long size, const std::string& stream, long long dest,
                             const char* call) const {
        std::size_t bytes = 0;
        void* p = range(buf, size, k_u32, call, &bytes);
        return {.addr = p, .len = static_cast<uint32_t>(bytes), .stream = stream_of(stream, call),
                .dest = dest_of(dest, call)};
    }

    void local(CoyoteOper oper, const Buffer& buf, long long size, const std::string& stream, long long dest,
               bool last, const char* call) {
        const auto sg = local_sg(buf, size, stream, dest, call);
        auto& th = t(call);
        WithoutGil nogil(*state);
        th.invoke(oper, sg, last);
    }

    void blocking_sync(CoyoteOper oper, const Buffer& buf, long long size, const char* call) {
        std::size_t bytes = 0;
        void* p = range(buf, size, std::numeric_limits<std::size_t>::max() / 2, call, &bytes);
        auto& th = t(call);
        WithoutGil nogil(*state);
        th.invoke(oper, coyote::syncSg{.addr = p, .len = bytes});
    }

    /// Elements of an RDMA buffer -> bytes. The local side is checked against this side's buffer; the remote
    /// offset only for its form (the peer's buffer may be larger: its NIC checks the bounds).
    uint64_t rdma_bytes(long long offs, long long size, const char* call, const char* what, bool local) const {
        if (!state->rdma) bad(call, "init_rdma was not called");
        const Dtype& ty = *state->rdma_type;
        const auto off_b = checked_bytes(offs, ty, std::numeric_limits<std::size_t>::max() / 2, call,
                                         std::string(what) + " offset");
        const auto len_b = checked_bytes(size, ty, k_u32, call);
        if (local && static_cast<std::size_t>(offs) + static_cast<std::size_t>(size) > state->rdma_count)
            bad(call, std::string(what) + " offset " + std::to_string(offs) + " + size " + std::to_string(size) +
                          " exceeds the RDMA buffer's " + std::to_string(state->rdma_count) + " elements");
        (void)len_b;
        return off_b;
    }

    void rdma(CoyoteOper oper, long long size, const std::string& local_stream, long long local_dest,
              long long local_offs, long long remote_dest, long long remote_offs, bool last, const char* call) {
        coyote::rdmaSg sg;
        sg.local_offs = rdma_bytes(local_offs, size, call, "local", true);
        sg.remote_offs = rdma_bytes(remote_offs, size, call, "remote", false);
        sg.len = static_cast<uint32_t>(static_cast<std::size_t>(size) * state->rdma_type->itemsize);
        sg.local_stream = stream_of(local_stream, call);
        sg.local_dest = dest_of(local_dest, call);
        sg.remote_dest = dest_of(remote_dest, call);
        auto& th = t(call);
        WithoutGil nogil(*state);
        th.invoke(oper, sg, last);
    }
};

/// The interrupt callback: runs `fn(value)` with the GIL taken; an exception is reported as unraisable.
std::function<void(int)> make_uisr(py::object fn) {
    if (fn.is_none()) return nullptr;
    if (!PyCallable_Check(fn.ptr())) bad("CoyoteThread", "uisr must be callable or None");
    // The callable is released with the GIL held, whichever thread drops the last copy.
    auto holder = std::shared_ptr<py::object>(new py::object(std::move(fn)), [](py::object* p) {
        py::gil_scoped_acquire gil;
        delete p;
    });
    return [holder](int value) {
        py::gil_scoped_acquire gil;
        try {
            (*holder)(value);
        } catch (py::error_already_set& e) {
            e.discard_as_unraisable("pycoyote interrupt callback");
        }
    };
}

Thread make_thread(const Int& vfid_arg, Int hpid, Int device, py::object uisr) {
    const auto vfid = static_cast<int32_t>(vfid_arg.get_in(0, std::numeric_limits<int32_t>::max(), "CoyoteThread", "vfid"));
    const auto dev = static_cast<uint32_t>(checked_unsigned(device, k_u32, "CoyoteThread", "device"));
    const auto pid = static_cast<pid_t>(checked_unsigned(hpid, std::numeric_limits<pid_t>::max(), "CoyoteThread", "hpid"));
    Thread th;
    auto cb = make_uisr(std::move(uisr));
    const bool has_callback = static_cast<bool>(cb);
    {
        py::gil_scoped_release nogil;
        th.state->thread = std::make_unique<coyote::cThread>(vfid, pid, dev, std::move(cb));
    }
    if (has_callback) track_interrupt_thread(th.state);
    return th;
}

Buffer allocate(Thread& self, Int size, const std::string& alloc_type, const std::string& dtype, Int gpu_dev) {
    const char* call = "allocate_buffer";
    const Dtype& ty = dtype_by_name(dtype);
    const auto bytes = checked_bytes(size, ty, k_u32, call);
    if (bytes == 0) bad(call, "size must be positive");
    coyote::CoyoteAlloc req{.alloc = alloc_of(alloc_type), .size = static_cast<uint32_t>(bytes)};
    // A CoyoteBuffer is host memory (NumPy reads it): GPU memory, which the CPU cannot read, is not offered.
    if (req.alloc == coyote::CoyoteAllocType::GPU)
        coyote::throw_error(Errc::not_supported, call,
                            "GPU buffers are not available from Python: a CoyoteBuffer is read by the CPU (NumPy), "
                            "GPU memory is not; use cThread::getMem(GPU) from C++ (docs/hardware.md)");
    req.gpu_dev_id = static_cast<uint32_t>(checked_unsigned(gpu_dev, k_u32, call, "gpu_dev"));
    auto mem = std::make_shared<Allocation>();
    mem->addr = self.t(call).getMem(std::move(req));
    mem->owned = true;
    self.state->allocations.push_back(mem);
    return Buffer(self.state, std::move(mem), static_cast<std::size_t>(size), ty);
}

void free_buffer(Thread& self, Buffer& buf) {
    const char* call = "free_buffer";
    if (buf.owner != self.state) bad(call, "the buffer was not allocated by this CoyoteThread");
    if (!buf.memory->owned)
        bad(call, "the buffer is the RDMA buffer of init_rdma: it is freed with the thread (close())");
    void* p = buf.data(call);
    if (buf.memory->exports > 0)
        bad(call, "NumPy arrays or memoryviews still view the buffer; delete them first");
    self.t(call).freeMem(p);
    buf.memory->alive = false;
    std::erase(self.state->allocations, buf.memory);
}

Buffer init_rdma(Thread& self, Int buffer_size, const std::string& dtype, Int port_number,
                 std::optional<std::string> server_address) {
    const char* call = "init_rdma";
    const auto port = static_cast<uint16_t>(checked_unsigned(port_number, 65535, call, "port"));
    const Dtype& ty = dtype_by_name(dtype);
    const auto bytes = checked_bytes(buffer_size, ty, k_u32, call);
    if (bytes == 0) bad(call, "buffer_size must be positive");
    auto& th = self.t(call);
    // Another size replaces the RDMA buffer (freed here: initRDMA leaves a buffer of another size to its owner):
    // refused while arrays view it, and the old CoyoteBuffer is invalid afterwards, failed call included.
    std::shared_ptr<Allocation> old = self.state->rdma;
    const bool replaces = old && self.state->rdma_count * self.state->rdma_type->itemsize != bytes;
    if (replaces && old->exports > 0)
        bad(call, "NumPy arrays or memoryviews still view the RDMA buffer of the previous init_rdma, which a buffer "
                  "of another size replaces; delete them first");
    auto retire_old = [&] {
        if (!replaces) return;
        old->alive = false;
        std::erase(self.state->allocations, old);
        self.state->rdma.reset();
        try {
            th.freeMem(old->addr);
        } catch (const coyote::Error&) { // not allocated any more: nothing to free
        }
    };
    void* p = nullptr;
    try {
        WithoutGil nogil(*self.state);
        p = th.initRDMA(bytes, port, server_address ? server_address->c_str() : nullptr);
    } catch (...) {
        retire_old();
        throw;
    }
    retire_old();
    std::shared_ptr<Allocation> mem = replaces || !old ? std::make_shared<Allocation>() : old;
    mem->addr = p;
    if (mem != old) self.state->allocations.push_back(mem);
    self.state->rdma = mem;
    self.state->rdma_type = &ty;
    self.state->rdma_count = static_cast<std::size_t>(buffer_size);
    return Buffer(self.state, std::move(mem), static_cast<std::size_t>(buffer_size), ty);
}

py::object get_qpair(const Thread& self) {
    const coyote::ibvQp* qp = self.t("get_qpair").getQpair();
    if (qp == nullptr) return py::none();
    return qpair_dict(*qp);
}

uint32_t ip_of(py::object ip) {
    if (py::isinstance<py::int_>(ip)) {
        return static_cast<uint32_t>(ip.cast<Int>().get_unsigned(k_u32, "arp_lookup", "IP address"));
    }
    const auto text = py::str(ip).cast<std::string>();
    in_addr a{};
    if (::inet_pton(AF_INET, text.c_str(), &a) != 1) bad("arp_lookup", "not an IPv4 address: '" + text + "'");
    return ntohl(a.s_addr);
}

void bind_local(py::class_<Thread>& cls) {
    cls.def("local_read",
            [](Thread& s, const Buffer& b, Int size, const std::string& stream, Int dest, bool last) {
                s.local(CoyoteOper::LOCAL_READ, b, size, stream, dest, last, "local_read");
            },
            py::arg("buff"), py::arg("size"), py::arg("stream") = "host", py::arg("dest") = 0, py::arg("last").none(false) = true)
        .def("local_write",
             [](Thread& s, const Buffer& b, Int size, const std::string& stream, Int dest, bool last) {
                 s.local(CoyoteOper::LOCAL_WRITE, b, size, stream, dest, last, "local_write");
             },
             py::arg("buff"), py::arg("size"), py::arg("stream") = "host", py::arg("dest") = 0, py::arg("last").none(false) = true)
        .def("local_transfer",
             [](Thread& s, const Buffer& src, const Buffer& dst, Int src_size, Int dst_size,
                const std::string& src_stream, const std::string& dst_stream, Int src_dest, Int dst_dest,
                bool last) {
                 const char* call = "local_transfer";
                 const auto a = s.local_sg(src, src_size, src_stream, src_dest, call);
                 const auto b = s.local_sg(dst, dst_size, dst_stream, dst_dest, call); // dst's own stream
                 auto& th = s.t(call);
                 WithoutGil nogil(*s.state);
                 th.invoke(CoyoteOper::LOCAL_TRANSFER, a, b, last);
             },
             py::arg("src_buff"), py::arg("dst_buff"), py::arg("src_size"), py::arg("dst_size"),
             py::arg("src_stream") = "host", py::arg("dst_stream") = "host", py::arg("src_dest") = 0,
             py::arg("dst_dest") = 0, py::arg("last").none(false) = true)
        .def("sync", [](Thread& s, const Buffer& b, Int size) { s.blocking_sync(CoyoteOper::LOCAL_SYNC, b, size, "sync"); },
             py::arg("buff"), py::arg("size"), "Card memory -> host memory (blocking).")
        .def("offload",
             [](Thread& s, const Buffer& b, Int size) { s.blocking_sync(CoyoteOper::LOCAL_OFFLOAD, b, size, "offload"); },
             py::arg("buff"), py::arg("size"), "Host memory -> card memory (blocking).");
}

void bind_rdma(py::class_<Thread>& cls) {
    auto rdma_op = [](CoyoteOper oper, const char* call) {
        return [oper, call](Thread& s, Int size, const std::string& local_stream, Int local_dest, Int local_offs,
                            Int remote_dest, Int remote_offs, bool last) {
            s.rdma(oper, size, local_stream, local_dest, local_offs, remote_dest, remote_offs, last, call);
        };
    };
    cls.def("init_rdma", &init_rdma, py::arg("buffer_size"), py::arg("dtype"), py::arg("port"),
            py::arg("server_address") = py::none(),
            "Stock out-of-band set-up (server without server_address); returns the RDMA buffer.")
        .def("rdma_write", rdma_op(CoyoteOper::REMOTE_RDMA_WRITE, "rdma_write"), py::arg("size"),
             py::arg("local_stream") = "host", py::arg("local_dest") = 0, py::arg("local_offs") = 0,
             py::arg("remote_dest") = 0, py::arg("remote_offs") = 0, py::arg("last").none(false) = true)
        .def("rdma_read", rdma_op(CoyoteOper::REMOTE_RDMA_READ, "rdma_read"), py::arg("size"),
             py::arg("local_stream") = "host", py::arg("local_dest") = 0, py::arg("local_offs") = 0,
             py::arg("remote_dest") = 0, py::arg("remote_offs") = 0, py::arg("last").none(false) = true)
        .def("conn_sync",
             [](Thread& s, bool client) {
                 auto& th = s.t("conn_sync");
                 WithoutGil nogil(*s.state);
                 th.connSync(client);
             },
             py::arg("client").none(false))
        .def("close_conn",
             [](Thread& s) {
                 auto& th = s.t("close_conn");
                 WithoutGil nogil(*s.state);
                 th.closeConn();
             })
        .def("get_qpair", &get_qpair, "Both sides of the queue pair as dicts (qpn, psn, rkey, vaddr, size, ip).")
        .def("write_qp_context", [](Thread& s, Int port) {
                 const char* call = "write_qp_context";
                 s.t(call).writeQpContext(static_cast<uint32_t>(checked_unsigned(port, k_u32, call, "port")));
             },
             py::arg("port"))
        .def("arp_lookup", [](Thread& s, py::object ip) { s.t("arp_lookup").doArpLookup(ip_of(std::move(ip))); },
             py::arg("ip"), "Writes an IPv4 address (int or dotted text) to the ARP lookup register.");
}

/// The C++ baseline of the Python overhead benchmark: `iterations` LOCAL_TRANSFERs of `size` elements, each
/// waited for by polling checkCompleted, as a Python loop of local_transfer + get_completed does. Seconds.
double bench_local_transfer(Thread& s, const Buffer& src, const Buffer& dst, Int size, Int iterations_arg) {
    const long long iterations = iterations_arg;
    const char* call = "_bench_local_transfer";
    const auto a = s.local_sg(src, size, "host", 0, call);
    const auto b = s.local_sg(dst, size, "host", 0, call);
    if (iterations <= 0) bad(call, "iterations must be positive");
    auto& th = s.t(call);
    WithoutGil nogil(*s.state);
    th.clearCompleted();
    const auto start = std::chrono::steady_clock::now();
    for (long long i = 1; i <= iterations; ++i) {
        th.invoke(CoyoteOper::LOCAL_TRANSFER, a, b, true);
        while (th.checkCompleted(CoyoteOper::LOCAL_TRANSFER) < static_cast<uint32_t>(i)) {
        }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void bind_misc(py::class_<Thread>& cls) {
    cls.def("_bench_local_transfer", &bench_local_transfer, py::arg("src_buff"), py::arg("dst_buff"),
            py::arg("size"), py::arg("iterations"), "C++ baseline of benchmarks/overhead.py (seconds).");
    cls.def("set_csr", [](Thread& s, const Int& value, Int offset) {
                const uint64_t v = value.get_unsigned(UINT64_MAX, "set_csr", "value");
                s.t("set_csr").setCSR(v, static_cast<uint32_t>(checked_unsigned(offset, k_u32, "set_csr", "offset")));
            },
            py::arg("value"), py::arg("offset"))
        .def("get_csr", [](const Thread& s, Int offset) {
                 return s.t("get_csr").getCSR(static_cast<uint32_t>(checked_unsigned(offset, k_u32, "get_csr", "offset")));
             },
             py::arg("offset"))
        .def("get_completed", [](const Thread& s, const std::string& oper) {
                 return s.t("get_completed").checkCompleted(oper_of(oper));
             }, py::arg("oper"))
        .def("clear_completed", [](Thread& s) { s.t("clear_completed").clearCompleted(); })
        .def("lock",
             [](Thread& s) {
                 auto& th = s.t("lock");
                 WithoutGil nogil(*s.state);
                 th.lock();
             })
        .def("unlock", [](Thread& s) { s.t("unlock").unlock(); })
        .def("get_vfid", [](const Thread& s) { return s.t("get_vfid").getVfid(); })
        .def("get_ctid", [](const Thread& s) { return s.t("get_ctid").getCtid(); })
        .def("get_hpid", [](const Thread& s) { return static_cast<long long>(s.t("get_hpid").getHpid()); })
        .def("print_debug",
             [](const Thread& s) {
                 std::fflush(stdout);
                 s.t("print_debug").printDebug();
                 std::cout.flush();
             })
        .def("backend_name", [](const Thread& s) { return s.t("backend_name").backendName(); }, "(extension)")
        .def("close", [](Thread& s) { s.state->close(); },
             "Frees the thread and its buffers now (extension); later use raises InvalidArgumentError.")
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](Thread& s, const py::object& exc_type, const py::object&, const py::object&) {
            if (exc_type.is_none()) return s.state->close();
            // The block is raising: its exception goes on. A thread whose buffers NumPy arrays still view stays
            // open (closed when the last reference goes) rather than replacing that exception with its own.
            try {
                s.state->close();
            } catch (const coyote::Error&) {
            }
        });
}

}  // namespace

void bind_thread(py::module_& m) {
    py::class_<Thread> cls(m, "CoyoteThread", "One Coyote thread (ctid) on vFPGA `vfid` of `device`.");
    cls.def(py::init(&make_thread), py::arg("vfid"), py::arg("hpid"), py::arg("device") = 0,
            py::arg("uisr") = py::none())
        .def("map_buffer",
             [](Thread& s, const Buffer& b) {
                 std::size_t bytes = 0;
                 void* p = s.range(b, static_cast<long long>(b.count), SIZE_MAX / 2, "map_buffer", &bytes);
                 s.t("map_buffer").userMap(p, bytes);
             },
             py::arg("buff"))
        .def("unmap_buffer", [](Thread& s, const Buffer& b) { s.t("unmap_buffer").userUnmap(b.data("unmap_buffer")); },
             py::arg("buff"))
        .def("allocate_buffer", &allocate, py::arg("size"), py::arg("alloc_type") = "reg",
             py::arg("dtype") = "float32", py::arg("gpu_dev") = 0)
        .def("free_buffer", &free_buffer, py::arg("buff"), "Frees a buffer of allocate_buffer (extension).");
    bind_local(cls);
    bind_rdma(cls);
    bind_misc(cls);
}

}  // namespace pycoyote
