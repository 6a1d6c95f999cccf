// pycoyote: Int, the integer parameter type of the bindings (see pyint.hpp).
#include "pyint.hpp"

#include <coyote/error.hpp>

namespace pycoyote {

namespace {

std::string shown(const Int& i) { return i.overflow != 0 ? i.text : std::to_string(i.value); }

} // namespace

long long Int::get(const char* call, const char* what) const {
    if (overflow != 0)
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            std::string(what) + " " + text + " does not fit in 64 bits");
    return value;
}

unsigned long long Int::get_unsigned(unsigned long long max, const char* call, const char* what) const {
    if (overflow == 0 && value >= 0 && static_cast<unsigned long long>(value) <= max)
        return static_cast<unsigned long long>(value);
    if (overflow > 0 && fits_u64 && big <= max) return big;
    coyote::throw_error(coyote::Errc::invalid_argument, call,
                        std::string(what) + " " + shown(*this) + " is out of range 0.." + std::to_string(max));
}

long long Int::get_in(long long lo, long long hi, const char* call, const char* what) const {
    if (overflow == 0 && value >= lo && value <= hi) return value;
    coyote::throw_error(coyote::Errc::invalid_argument, call,
                        std::string(what) + " " + shown(*this) + " is out of range " + std::to_string(lo) + ".." +
                            std::to_string(hi));
}

}  // namespace pycoyote

namespace pybind11::detail {

bool type_caster<pycoyote::Int>::load(handle src, bool /*convert*/) {
    if (!src || PyFloat_Check(src.ptr())) return false; // a float is not an integer: pybind11's TypeError
    PyObject* idx = PyNumber_Index(src.ptr());
    if (idx == nullptr) {
        PyErr_Clear();
        return false;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    if (v == -1 && PyErr_Occurred() != nullptr) {
        PyErr_Clear();
        Py_DECREF(idx);
        return false;
    }
    value = pycoyote::Int{};
    value.value = v;
    value.overflow = overflow;
    if (overflow > 0) {
        const unsigned long long u = PyLong_AsUnsignedLongLong(idx);
        if (PyErr_Occurred() != nullptr) PyErr_Clear();
        else value.fits_u64 = true, value.big = u;
    }
    if (overflow != 0) {
        if (PyObject* s = PyObject_Str(idx)) {
            if (const char* t = PyUnicode_AsUTF8(s)) value.text = t;
            Py_DECREF(s);
        }
        if (PyErr_Occurred() != nullptr) PyErr_Clear();
    }
    Py_DECREF(idx);
    return true;
}

}  // namespace pybind11::detail
