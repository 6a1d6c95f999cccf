"""pycoyote's extension modules for pip (the CMake build in python/CMakeLists.txt is the other way).

Links against the C++ library of this repository, found in this order:
  COYOTE_PREFIX     an install prefix (cmake --install build --prefix ...): <prefix>/include, <prefix>/lib*
  COYOTE_BUILD_DIR  a build tree (default: ../build next to this directory), with the headers of
                    COYOTE_SOURCE_DIR (default: the parent of this directory)
pybind11's headers come from Debian's pybind11-dev (/usr/include) or the pybind11 Python package when present.
pycoyote.mpi is built when libcoyote_mpi, mpi4py and an MPI compiler wrapper (mpicxx) are found;
COYOTE_PYTHON_NO_MPI=1 skips it."""
import glob
import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("COYOTE_SOURCE_DIR", os.path.dirname(HERE))  # the repository (headers)


def library_location():
    prefix = os.environ.get("COYOTE_PREFIX")
    if prefix:
        libdirs = [d for d in (os.path.join(prefix, "lib"), os.path.join(prefix, "lib64"),
                               *glob.glob(os.path.join(prefix, "lib", "*-linux-gnu"))) if os.path.isdir(d)]
        return [os.path.join(prefix, "include")], libdirs
    build = os.path.abspath(os.environ.get("COYOTE_BUILD_DIR", os.path.join(ROOT, "build")))
    if not glob.glob(os.path.join(build, "libcoyote.so*")):
        raise SystemExit(f"pycoyote: no libcoyote.so in {build}: build the C++ library first "
                         "(cmake -S . -B build && cmake --build build) or set COYOTE_PREFIX / COYOTE_BUILD_DIR")
    return [os.path.join(ROOT, "include"), os.path.join(ROOT, "mpi", "include")], [build, os.path.join(build, "mpi")]


def pybind11_includes():
    try:
        import pybind11  # noqa: PLC0415
        return [pybind11.get_include()]
    except ImportError:
        return []  # Debian's pybind11-dev: /usr/include/pybind11


def mpi_flags():
    """(compile, link) flags of the MPI compiler wrapper, or None."""
    try:
        comp = subprocess.run(["mpicxx", "--showme:compile"], capture_output=True, text=True, check=True).stdout
        link = subprocess.run(["mpicxx", "--showme:link"], capture_output=True, text=True, check=True).stdout
        return shlex.split(comp), shlex.split(link)
    except (OSError, subprocess.CalledProcessError):
        return None


includes, libdirs = library_location()
common = dict(
    include_dirs=includes + pybind11_includes(),
    library_dirs=libdirs,
    runtime_library_dirs=libdirs,
    extra_compile_args=["-std=c++20", "-O2", "-fvisibility=hidden"],
    language="c++",
)
src = lambda *names: [os.path.join("src", n) for n in names]  # noqa: E731
extensions = [Extension("pycoyote._core", src("module.cpp", "buffer.cpp", "thread.cpp", "state.cpp", "dtype.cpp",
                                              "errors.cpp", "service.cpp", "pyint.cpp"), libraries=["coyote"], **common)]

flags = None if os.environ.get("COYOTE_PYTHON_NO_MPI") == "1" else mpi_flags()
has_mpi_lib = any(glob.glob(os.path.join(d, "libcoyote_mpi.so*")) for d in libdirs)
try:
    import mpi4py  # noqa: PLC0415
    mpi4py_include = mpi4py.get_include()
except ImportError:
    mpi4py_include = None
if flags and has_mpi_lib and mpi4py_include:
    mpi = dict(common)
    mpi["include_dirs"] = common["include_dirs"] + [mpi4py_include]
    mpi["extra_compile_args"] = common["extra_compile_args"] + flags[0] + ["-DOMPI_SKIP_MPICXX=1",
                                                                           "-DMPICH_SKIP_MPICXX=1"]
    mpi["extra_link_args"] = flags[1]
    extensions.append(Extension("pycoyote._mpi", src("mpi_module.cpp", "mpi_collectives.cpp", "pyint.cpp"),
                                libraries=["coyote_mpi", "coyote"], **mpi))

# The two extension modules compile side by side (build_ext --parallel 2).
setup(ext_modules=extensions, options={"build_ext": {"parallel": 2}})
