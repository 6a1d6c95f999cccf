// pycoyote: exception classes and the coyote::Error -> Python translator.
#include "errors.hpp"

#include <array>
#include <exception>

#include <coyote/error.hpp>

namespace py = pybind11;

namespace pycoyote {

namespace {

/// One subclass of CoyoteError: the Errc it stands for, its name and an extra built-in base.
struct ErrorClass {
    coyote::Errc code;
    const char* name;
    PyObject* extra_base; // may be null
    PyObject* type = nullptr;
};

PyObject* g_base = nullptr;                   // pycoyote.CoyoteError
std::array<ErrorClass, 10>* g_classes = nullptr; // lives as long as the interpreter

PyObject* class_for(const std::error_code& code) {
    if (code.category() == coyote::coyote_category())
        for (const auto& c : *g_classes)
            if (static_cast<int>(c.code) == code.value()) return c.type;
    return g_base;
}

}  // namespace

void register_errors(py::module_& m) {
    g_base = PyErr_NewExceptionWithDoc("pycoyote.CoyoteError",
                                       "An error of the Coyote runtime (message as coyote::Error::what()).",
                                       PyExc_RuntimeError, nullptr);
    m.add_object("CoyoteError", py::handle(g_base));
    g_classes = new std::array<ErrorClass, 10>{{
        {coyote::Errc::invalid_argument, "InvalidArgumentError", PyExc_ValueError},
        {coyote::Errc::not_supported, "NotSupportedError", nullptr},
        {coyote::Errc::resource_exhausted, "ResourceExhaustedError", nullptr},
        {coyote::Errc::not_mapped, "NotMappedError", nullptr},
        {coyote::Errc::remote_rejected, "RemoteRejectedError", nullptr},
        {coyote::Errc::peer_gone, "PeerGoneError", PyExc_ConnectionError},
        {coyote::Errc::timeout, "CoyoteTimeoutError", PyExc_TimeoutError},
        {coyote::Errc::protocol, "ProtocolError", nullptr},
        {coyote::Errc::no_device, "NoDeviceError", nullptr},
        {coyote::Errc::mpi, "MpiError", nullptr},
    }};
    for (auto& c : *g_classes) {
        const std::string qualified = std::string("pycoyote.") + c.name;
        py::tuple bases = c.extra_base != nullptr ? py::make_tuple(py::handle(g_base), py::handle(c.extra_base))
                                                  : py::make_tuple(py::handle(g_base));
        c.type = PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr);
        m.add_object(c.name, py::handle(c.type));
    }
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const coyote::Error& e) {
            PyErr_SetString(class_for(e.code()), e.what());
        }
    });
}

}  // namespace pycoyote
