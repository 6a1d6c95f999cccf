// coyote-mpi sim backend: loading the user-logic model: a built-in one by name or a shared object by path.
#include <dlfcn.h>
#include <unistd.h>

#include <utility>

#include <coyote/error.hpp>

#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/models.hpp"
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
    return e != nullptr ? e : "unknown dlerror";
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
                    "unknown user-logic model '" + name + "' (built-in models: passthrough, perf_local, vadd, reduce, " +
                        examples::names() + "; or give the path of a model .so)");
    ModelHandle h;
    h.model_ = m.release();
    h.origin_ = name;
    return h;
}

ModelHandle ModelHandle::from_library(const std::string& path) {
    // A bare "name.so" is a path too: the file in the current directory, else what the library search finds.
    const bool bare = path.find('/') == std::string::npos;
    const std::string open_as = bare && ::access(path.c_str(), F_OK) == 0 ? "./" + path : path;
    ::dlerror();
    void* lib = ::dlopen(open_as.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "cannot load user-logic model '" + path + "': " + dl_error());
    ModelHandle h;
    h.lib_ = lib; // from here on, reset() closes it
    h.origin_ = path;

    ::dlerror();
    if (void* abi = ::dlsym(lib, COYOTE_SIM_MODEL_ABI); abi != nullptr) {
        const uint32_t v = reinterpret_cast<uint32_t (*)()>(abi)();
        if (v != coyote::sim::k_user_logic_abi)
            throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                        "user-logic model '" + path + "' was built for interface version " + std::to_string(v) +
                            ", this runtime has version " + std::to_string(coyote::sim::k_user_logic_abi));
    }
    ::dlerror();
    void* create = ::dlsym(lib, COYOTE_SIM_MODEL_FACTORY);
    if (create == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "user-logic model '" + path + "' does not export " COYOTE_SIM_MODEL_FACTORY "(): " + dl_error());
    h.destroy_ = reinterpret_cast<Destroy>(::dlsym(lib, COYOTE_SIM_MODEL_DESTROY));
    coyote::sim::UserLogic* m = nullptr;
    try {
        m = reinterpret_cast<coyote::sim::UserLogic* (*)()>(create)();
    } catch (const std::exception& e) {
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "the factory of user-logic model '" + path + "' threw: " + e.what());
    }
    if (m == nullptr)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_MODEL",
                    "the factory of user-logic model '" + path + "' returned null");
    h.model_ = m;
    return h;
}

bool ModelHandle::is_library_spec(const std::string& spec) noexcept {
    return spec.find('/') != std::string::npos || (spec.size() > 3 && spec.compare(spec.size() - 3, 3, ".so") == 0);
}

std::optional<std::string> ModelHandle::spec_problem(const std::string& spec) {
    if (is_library_spec(spec)) return std::nullopt;
    return settings::problem_of([&] { (void)builtin(spec); });
}

ModelHandle ModelHandle::load(const std::string& spec) {
    if (spec.empty()) return builtin("passthrough");
    return is_library_spec(spec) ? from_library(spec) : builtin(spec);
}

ModelHandle load_model_from_env() { return ModelHandle::load(k_model.get()); }

}  // namespace coyote::detail::sim
