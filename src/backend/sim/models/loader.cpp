// coyote-mpi sim backend: loading the user-logic model: a built-in one by name or a shared object by path.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <coyote/error.hpp>

#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/models.hpp"
#include "detail/format.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim {

namespace {

namespace settings = ::coyote::detail::settings;

const settings::Text k_model{"COYOTE_SIM_MODEL", "sim", "passthrough",
                             "user-logic model of the sim vFPGAs: passthrough, perf_local, vadd, reduce, a model of "
                             "one of Coyote's examples (aes_ecb, aes_cbc, user_interrupts, perf_fpga, packet_sniffer, "
                             "vadd_int32, euclidean_distance, cosine_similarity), or the path of a model .so",
                             ModelHandle::spec_problem};

std::string dl_error() {
    const char* e = ::dlerror();
    return e != nullptr ? printable(e) : "unknown dlerror";
}

std::string quoted(const std::string& path) { return "'" + printable(path) + "'"; }

std::string octal_mode(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}

/// What makes directory `dir` a place where other users could swap the model file `file_st`: writable by all
/// without the sticky bit (anyone may replace any file), or with it while the file belongs to someone other
/// than us or root (its owner planted it and may change it).
std::optional<std::string> directory_problem(const std::string& dir, const struct stat& file_st) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || (st.st_mode & S_IWOTH) == 0) return std::nullopt;
    if ((st.st_mode & S_ISVTX) == 0)
        return "its directory " + quoted(dir) + " is writable by every user (mode " + octal_mode(st.st_mode) +
               "): any of them could replace the model";
    if (file_st.st_uid != ::geteuid() && file_st.st_uid != 0)
        return "it lies in the shared directory " + quoted(dir) + " and belongs to user " +
               std::to_string(file_st.st_uid) + ", who could change it";
    return std::nullopt;
}

std::string parent_of(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

ModelHandle::ModelHandle(ModelHandle&& o) noexcept
    : model_(std::exchange(o.model_, nullptr)),
      destroy_(std::exchange(o.destroy_, nullptr)),
      lib_(std::exchange(o.lib_, nullptr)),
      origin_(std::move(o.origin_)) {}

ModelHandle& ModelHandle::operator=(ModelHandle&& o) noexcept {
    if (this != &o) {
        reset();
        model_ = std::exchange(o.model_, nullptr);
        destroy_ = std::exchange(o.destroy_, nullptr);
        lib_ = std::exchange(o.lib_, nullptr);
        origin_ = std::move(o.origin_);
    }
    return *this;
}

void ModelHandle::reset() noexcept {
    if (model_ != nullptr) {
        if (destroy_ != nullptr)
            destroy_(model_);
        else
            delete model_;
    }
    model_ = nullptr;
    destroy_ = nullptr;
    if (lib_ != nullptr) ::dlclose(lib_);
    lib_ = nullptr;
}

ModelHandle ModelHandle::builtin(const std::string& name) {
    std::unique_ptr<coyote::sim::UserLogic> m;
    if (name == "passthrough")
        m = make_passthrough();
    else if (name == "perf_local")
        m = make_perf_local();
    else if (name == "vadd")
        m = make_vadd();
    else if (name == "reduce")
        m = make_reduce();
    else if (!(m = examples::make(name)))
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "unknown user-logic model " + quoted(name) + " (built-in models: passthrough, perf_local, vadd, reduce, " +
                        examples::names() + "; or give the path of a model .so)");
    ModelHandle h;
    h.model_ = m.release();
    h.origin_ = name;
    return h;
}

std::string ModelHandle::open_path(const std::string& path) {
    // A bare "name.so" is a path too: the file in the current directory, else what the library search finds.
    const bool bare = path.find('/') == std::string::npos;
    if (!bare) return path;
    return ::access(path.c_str(), F_OK) == 0 ? "./" + path : std::string();
}

std::optional<std::string> ModelHandle::library_file_problem(const std::string& path) {
    const std::string file = open_path(path);
    if (file.empty()) return std::nullopt; // left to the library search path, which only dlopen knows
    const std::string what = "user-logic model " + quoted(path);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return "cannot load " + what + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode))
        return what + " is not a regular file (" + (S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket") +
               ")";
    if ((st.st_mode & S_IWOTH) != 0)
        return what + " is writable by every user (mode " + octal_mode(st.st_mode) +
               "): any of them could run code in this process; chmod o-w it";
    std::string dirs[2] = {parent_of(file), {}};
    if (char* real = ::realpath(file.c_str(), nullptr)) { // a symlink: the directory of its target counts too
        dirs[1] = parent_of(real);
        std::free(real);
    }
    for (const auto& dir : dirs)
        if (!dir.empty())
            if (auto problem = directory_problem(dir, st)) return what + " is refused: " + *problem;
    return std::nullopt;
}

ModelHandle ModelHandle::from_library(const std::string& path) {
    if (const auto problem = library_file_problem(path))
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL", *problem);
    const std::string found = open_path(path);
    const std::string open_as = found.empty() ? path : found;
    ::dlerror();
    void* lib = ::dlopen(open_as.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "cannot load user-logic model " + quoted(path) + ": " + dl_error());
    ModelHandle h;
    h.lib_ = lib; // from here on, reset() closes it
    h.origin_ = path;

    ::dlerror();
    if (void* abi = ::dlsym(lib, COYOTE_SIM_MODEL_ABI); abi != nullptr) {
        const uint32_t v = reinterpret_cast<uint32_t (*)()>(abi)();
        if (v != coyote::sim::k_user_logic_abi)
            throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                        "user-logic model " + quoted(path) + " was built for interface version " + std::to_string(v) +
                            ", this runtime has version " + std::to_string(coyote::sim::k_user_logic_abi));
    }
    ::dlerror();
    void* create = ::dlsym(lib, COYOTE_SIM_MODEL_FACTORY);
    if (create == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "user-logic model " + quoted(path) + " does not export " COYOTE_SIM_MODEL_FACTORY "(): " + dl_error());
    h.destroy_ = reinterpret_cast<Destroy>(::dlsym(lib, COYOTE_SIM_MODEL_DESTROY));
    coyote::sim::UserLogic* m = nullptr;
    try {
        m = reinterpret_cast<coyote::sim::UserLogic* (*)()>(create)();
    } catch (const std::exception& e) {
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "the factory of user-logic model " + quoted(path) + " threw: " + reason_of(e));
    } catch (...) { // an int, a string literal: not ours to let through as is
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "the factory of user-logic model " + quoted(path) + " threw an exception of a type that is not "
                    "std::exception");
    }
    if (m == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "the factory of user-logic model " + quoted(path) + " returned null");
    h.model_ = m;
    return h;
}

bool ModelHandle::is_library_spec(const std::string& spec) noexcept {
    return spec.find('/') != std::string::npos || (spec.size() > 3 && spec.compare(spec.size() - 3, 3, ".so") == 0);
}

std::optional<std::string> ModelHandle::spec_problem(const std::string& spec) {
    if (is_library_spec(spec)) return library_file_problem(spec);
    return settings::problem_of([&] { (void)builtin(spec); });
}

ModelHandle ModelHandle::load(const std::string& spec) {
    if (spec.empty()) return builtin("passthrough");
    return is_library_spec(spec) ? from_library(spec) : builtin(spec);
}

ModelHandle load_model_from_env() { return ModelHandle::load(k_model.get()); }

}  // namespace coyote::detail::sim
