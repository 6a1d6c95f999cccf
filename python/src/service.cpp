// pycoyote: CoyoteReconfig (cRcnfg) and the raw client of the background service (cConn) behind CoyoteConn.
#include "service.hpp"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <coyote/cConn.hpp>
#include <coyote/cRcnfg.hpp>
#include <coyote/error.hpp>

#include "dtype.hpp"
#include "pyint.hpp"

namespace py = pybind11;

namespace pycoyote {

namespace {

/// A cConn that close() can end before the Python object goes.
struct Conn {
    std::unique_ptr<coyote::cConn> conn;
    coyote::cConn& get(const char* call) const {
        if (!conn) coyote::throw_error(coyote::Errc::invalid_argument, call, "the connection was closed");
        return *conn;
    }
    void close() {
        py::gil_scoped_release nogil; // the destructor joins the connection's reader thread
        conn.reset();
    }
};

py::bytes to_bytes(const std::vector<char>& v) { return {v.data(), v.size()}; }

/// Runs `fn` on the connection with the GIL released.
template <typename Fn>
auto unlocked(const Conn& c, const char* call, Fn&& fn) {
    coyote::cConn& conn = c.get(call);
    py::gil_scoped_release nogil;
    return fn(conn);
}

/// A path given as str, bytes or os.PathLike (pathlib.Path), as Python's own file functions take it.
std::string path_of(const py::object& p) {
    const py::object fs = py::module_::import("os").attr("fsdecode")(p);
    return fs.cast<std::string>();
}

void bind_reconfig(py::module_& m) {
    py::class_<coyote::cRcnfg>(m, "CoyoteReconfig",
                               "Shell and application reconfiguration of one FPGA device (cRcnfg).")
        .def(py::init([](long long device) {
                 const auto dev = static_cast<unsigned int>(checked_unsigned(device, 0xffffffffULL, "CoyoteReconfig", "device"));
                 py::gil_scoped_release nogil;
                 return std::make_unique<coyote::cRcnfg>(dev);
             }), py::arg("device") = 0)
        .def("reconfigure_shell", [](coyote::cRcnfg& r, const py::object& path_arg) {
                 const std::string path = path_of(path_arg);
                 py::gil_scoped_release nogil;
                 r.reconfigureShell(path);
             }, py::arg("path"), "Loads the shell bitstream at `path` (blocks until done).")
        .def("reconfigure_app", [](coyote::cRcnfg& r, const py::object& path_arg, const Int& vfid_arg) {
                 const std::string path = path_of(path_arg);
                 const auto vfid = static_cast<int>(
                     vfid_arg.get_in(0, std::numeric_limits<int32_t>::max(), "reconfigure_app", "vfid"));
                 py::gil_scoped_release nogil;
                 r.reconfigureApp(path, vfid);
             }, py::arg("path"), py::arg("vfid"), "Loads the application bitstream at `path` into vFPGA `vfid`.")
        .def("get_reconfiguration_count", &coyote::cRcnfg::getReconfigurationCount,
             "Reconfigurations this object made (beyond pyCoyote).")
        .def("get_device", &coyote::cRcnfg::getDevice, "Device number (beyond pyCoyote).");
}

void bind_conn(py::module_& m) {
    py::class_<Conn>(m, "_Conn", "cConn: raw bytes in and out (pycoyote.CoyoteConn marshals the values).")
        .def(py::init([](const std::string& sock_name) {
                 py::gil_scoped_release nogil;
                 return Conn{std::make_unique<coyote::cConn>(sock_name)};
             }), py::arg("sock_name"))
        .def_static("remote", [](const std::string& host, Int port, const std::string& key_file) {
                 const auto p = static_cast<uint16_t>(checked_unsigned(port, 65535, "CoyoteConn.remote", "port"));
                 py::gil_scoped_release nogil;
                 return Conn{std::make_unique<coyote::cConn>(host, p, key_file)};
             }, py::arg("host"), py::arg("port"), py::arg("key_file"))
        .def("submit", [](const Conn& c, int32_t fid, const py::bytes& payload, std::size_t ret_size) {
                 const std::string_view p = payload;
                 const std::vector<char> bytes(p.begin(), p.end());
                 return unlocked(c, "iTask", [&](coyote::cConn& conn) { return conn.submit(fid, bytes, ret_size); });
             }, py::arg("fid"), py::arg("payload"), py::arg("ret_size"))
        .def("wait_result", [](const Conn& c, int32_t tid) {
                 return to_bytes(unlocked(c, "task", [&](coyote::cConn& conn) { return conn.wait_result(tid); }));
             }, py::arg("tid"))
        .def("take_result", [](const Conn& c, int32_t tid) {
                 return to_bytes(unlocked(c, "getTaskReturnValue",
                                          [&](coyote::cConn& conn) { return conn.take_result(tid); }));
             }, py::arg("tid"))
        .def("is_task_completed", [](const Conn& c, int32_t tid) {
                 return c.get("isTaskCompleted").isTaskCompleted(tid);
             }, py::arg("tid"))
        .def("release_task", [](const Conn& c, int32_t tid) { return c.get("releaseTask").releaseTask(tid); },
             py::arg("tid"))
        .def_property_readonly("closed", [](const Conn& c) { return !c.conn; })
        .def("close", &Conn::close);
}

}  // namespace

void bind_service(py::module_& m) {
    bind_reconfig(m);
    bind_conn(m);
}

}  // namespace pycoyote
