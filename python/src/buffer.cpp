// pycoyote: CoyoteBuffer: the buffer protocol (NumPy shares its memory), indexing, len, iteration, repr.
#include "buffer.hpp"

#include <pybind11/numpy.h>

#include <bit>
#include <cstdio>
#include <string>

#include <coyote/error.hpp>

#include "pyint.hpp"
#include "state.hpp"

namespace py = pybind11;

namespace pycoyote {

Buffer::Buffer(std::shared_ptr<ThreadState> owner_state, std::shared_ptr<Allocation> mem, std::size_t n,
               const Dtype& dtype)
    : owner(std::move(owner_state)), memory(std::move(mem)), count(n), type(&dtype) {
    shape[0] = static_cast<Py_ssize_t>(n);
    strides[0] = static_cast<Py_ssize_t>(dtype.itemsize);
}

Buffer::Buffer(const Buffer& o)
    : owner(o.owner), memory(o.memory), keeper(o.keeper), count(o.count), type(o.type) {
    Py_XINCREF(keeper);
    shape[0] = o.shape[0];
    strides[0] = o.strides[0];
}

Buffer::~Buffer() { Py_XDECREF(keeper); }

void* Buffer::data(const char* call) const {
    if (!memory->alive)
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            "the buffer was freed (its thread was closed or free_buffer was called)");
    return memory->addr;
}

namespace {

/// Whether [addr, addr + len) is readable memory of this process (/proc/self/maps): a wrapped address that is not
/// would crash the first access (repr included).
bool readable_here(uintptr_t addr, std::size_t len) {
    std::FILE* f = std::fopen("/proc/self/maps", "re");
    if (f == nullptr) return true; // cannot tell: the access decides
    uintptr_t cur = addr;
    const uintptr_t end = addr + len;
    unsigned long long s = 0, e = 0;
    char perms[8] = {};
    char line[512];
    while (cur < end && std::fgets(line, sizeof(line), f) != nullptr) {
        if (std::sscanf(line, "%llx-%llx %7s", &s, &e, perms) != 3 || e <= cur) continue;
        if (s > cur || perms[0] != 'r') break;
        cur = static_cast<uintptr_t>(e);
    }
    std::fclose(f);
    return cur >= end;
}

/// A buffer wrapped from a bare address (no thread, no array behind it): its memory may have gone since.
bool wrapped_and_gone(const Buffer& b) {
    return b.owner == nullptr && b.keeper == nullptr && b.bytes() > 0 &&
           !readable_here(reinterpret_cast<uintptr_t>(b.memory->addr), b.bytes());
}

/// bf_getbuffer: a one-dimensional, C-contiguous, writable view; BufferError after the memory was freed.
extern "C" int get_buffer(PyObject* obj, Py_buffer* view, int flags) {
    if (view == nullptr) {
        PyErr_SetString(PyExc_BufferError, "CoyoteBuffer: null view");
        return -1;
    }
    view->obj = nullptr;
    Buffer* b = nullptr;
    try {
        b = &py::handle(obj).cast<Buffer&>();
    } catch (...) {
        PyErr_SetString(PyExc_BufferError, "CoyoteBuffer: not initialised");
        return -1;
    }
    if (!b->memory->alive) {
        PyErr_SetString(PyExc_BufferError, "CoyoteBuffer: the buffer was freed");
        return -1;
    }
    if (wrapped_and_gone(*b)) {
        PyErr_SetString(PyExc_BufferError, "CoyoteBuffer: the wrapped memory is no longer readable in this process");
        return -1;
    }
    view->buf = b->memory->addr;
    view->len = static_cast<Py_ssize_t>(b->bytes());
    view->itemsize = static_cast<Py_ssize_t>(b->type->itemsize);
    view->readonly = 0;
    view->ndim = 1;
    view->format = (flags & PyBUF_FORMAT) == PyBUF_FORMAT ? const_cast<char*>(b->type->format) : nullptr;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? b->shape : nullptr;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b->strides : nullptr;
    view->suboffsets = nullptr;
    view->internal = b->memory.get();
    ++b->memory->exports;
    view->obj = obj;
    Py_INCREF(obj);
    return 0;
}

extern "C" void release_buffer(PyObject*, Py_buffer* view) {
    if (auto* mem = static_cast<Allocation*>(view->internal); mem != nullptr) --mem->exports;
}

/// A NumPy array over the buffer (through a memoryview, so that the array's base is not the buffer itself).
py::object numpy_view(py::object self) {
    return py::module_::import("numpy").attr("asarray")(py::memoryview(self));
}

/// CoyoteBuffer(array): wraps a C-contiguous, writable NumPy array of a supported dtype and keeps it alive.
Buffer wrap_array(const py::array& a) {
    const char* call = "CoyoteBuffer";
    if (!a.writeable())
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            "the array is read-only: the vFPGA may write into a buffer");
    if ((a.flags() & py::array::c_style) == 0)
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            "the array is not C-contiguous (np.ascontiguousarray makes a contiguous copy)");
    const std::string order = py::str(a.dtype().attr("byteorder"));
    if (order == ">" || (order == "<" && std::endian::native != std::endian::little))
        coyote::throw_error(coyote::Errc::invalid_argument, call, "the array's byte order is not the machine's");
    const Dtype& t = dtype_by_name(py::str(a.dtype().attr("name")));
    auto mem = std::make_shared<Allocation>();
    mem->addr = a.size() > 0 ? const_cast<void*>(a.data()) : nullptr;
    Buffer b(nullptr, std::move(mem), static_cast<std::size_t>(a.size()), t);
    b.keeper = a.ptr();
    Py_INCREF(b.keeper);
    return b;
}

std::string repr(py::object self) {
    const auto& b = self.cast<Buffer&>();
    char addr[32];
    std::snprintf(addr, sizeof(addr), "0x%llx", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(b.memory->addr)));
    std::string text = std::string("CoyoteBuffer(addr=") + addr + ", size=" + std::to_string(b.count) +
                       ", dtype='" + b.type->name + "'";
    if (!b.memory->alive) return text + ", freed)";
    if (wrapped_and_gone(b)) return text + ", not readable)";
    return text + ", data=" + py::str(numpy_view(self)).cast<std::string>() + ")";
}

}  // namespace

void bind_buffer(py::module_& m) {
    auto cls = py::class_<Buffer>(m, "CoyoteBuffer", py::buffer_protocol(),
                                  "A typed view of memory; NumPy views it without a copy (np.asarray(buf)).");
    auto* heap = reinterpret_cast<PyHeapTypeObject*>(cls.ptr());
    heap->as_buffer.bf_getbuffer = get_buffer;
    heap->as_buffer.bf_releasebuffer = release_buffer;
    PyType_Modified(reinterpret_cast<PyTypeObject*>(cls.ptr()));

    cls.def(py::init([](const Int& addr_arg, Int size, const std::string& dtype) {
                const auto addr = static_cast<std::uintptr_t>(addr_arg.get_unsigned(UINTPTR_MAX, "CoyoteBuffer", "addr"));
                const Dtype& t = dtype_by_name(dtype);
                (void)checked_bytes(size, t, SIZE_MAX / 2, "CoyoteBuffer");
                if (addr == 0 && size > 0)
                    coyote::throw_error(coyote::Errc::invalid_argument, "CoyoteBuffer", "null address");
                const std::size_t bytes = static_cast<std::size_t>(size) * t.itemsize;
                if (bytes > 0 && (addr + bytes < addr || !readable_here(addr, bytes))) {
                    char where[32];
                    std::snprintf(where, sizeof(where), "0x%llx", static_cast<unsigned long long>(addr));
                    coyote::throw_error(coyote::Errc::not_mapped, "CoyoteBuffer",
                                        std::string("[") + where + ", +" + std::to_string(bytes) +
                                            " bytes) is not readable memory of this process");
                }
                auto mem = std::make_shared<Allocation>();
                mem->addr = reinterpret_cast<void*>(addr);
                return Buffer(nullptr, std::move(mem), static_cast<std::size_t>(size), t);
            }),
            py::arg("addr"), py::arg("size"), py::arg("dtype") = "float32",
            "Wraps `size` elements of `dtype` at address `addr` (memory the caller keeps alive).")
        .def(py::init(&wrap_array), py::arg("array").noconvert(),
             "Wraps a writable, C-contiguous NumPy array (its dtype, all its elements) and keeps it alive as long as "
             "the buffer (extension).")
        .def("addr", [](const Buffer& b) { return reinterpret_cast<std::uintptr_t>(b.data("addr")); },
             "The address of the first element.")
        .def("size", [](const Buffer& b) { return b.count; }, "Number of elements.")
        .def("dtype", [](const Buffer& b) { return std::string(b.type->name); }, "The element type's name.")
        .def("nbytes", [](const Buffer& b) { return b.bytes(); }, "Size in bytes (extension).")
        .def("is_valid", [](const Buffer& b) { return b.memory->alive; }, "False once freed (extension).")
        .def("__len__", [](const Buffer& b) { return b.count; })
        .def("__getitem__", [](py::object self, py::object key) {
            self.cast<Buffer&>().data("CoyoteBuffer.__getitem__");
            const py::object view = numpy_view(self);
            return py::object(view[key]); // an accessor would outlive `view`
        })
        .def("__setitem__", [](py::object self, py::object key, py::object value) {
            self.cast<Buffer&>().data("CoyoteBuffer.__setitem__");
            numpy_view(self)[key] = value;
        })
        .def("__iter__", [](py::object self) {
            self.cast<Buffer&>().data("CoyoteBuffer.__iter__");
            return numpy_view(self).attr("__iter__")();
        })
        .def("__repr__", &repr);
}

}  // namespace pycoyote
