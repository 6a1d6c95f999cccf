// coyote-mpi sim backend: the built-in user-logic models and loading of model shared objects.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <coyote/sim/user_logic.hpp>

namespace coyote::detail::sim {

/// Owns a model and, for shared-object models, the library it came from.
class ModelHandle {
public:
    ModelHandle() noexcept = default;
    ModelHandle(ModelHandle&& o) noexcept;
    ModelHandle& operator=(ModelHandle&& o) noexcept;
    ModelHandle(const ModelHandle&) = delete;
    ModelHandle& operator=(const ModelHandle&) = delete;
    ~ModelHandle() { reset(); }

    coyote::sim::UserLogic* get() const noexcept { return model_; }
    coyote::sim::UserLogic* operator->() const noexcept { return model_; }
    /// "passthrough", ... or the path of the shared object.
    const std::string& origin() const noexcept { return origin_; }
    void reset() noexcept;

    /// A built-in model; throws invalid_argument for unknown names.
    static ModelHandle builtin(const std::string& name);
    /// A model from a shared object exporting coyote_sim_create_model.
    static ModelHandle from_library(const std::string& path);
    /// A built-in name or a path (is_library_spec); "" means passthrough.
    static ModelHandle load(const std::string& spec);
    /// Whether `spec` names a shared object (it contains '/' or ends in ".so") rather than a built-in model.
    static bool is_library_spec(const std::string& spec) noexcept;
    /// What load(spec) would refuse without loading a shared object: an unknown built-in name, or what
    /// library_file_problem says of a path (nullopt: fine as far as can be told without loading it).
    static std::optional<std::string> spec_problem(const std::string& spec);
    /// What is wrong with the file of a model shared object, checked before dlopen runs any of its code: missing, not
    /// a regular file (a FIFO would block dlopen for ever), writable by every user, or in a directory where other
    /// users could replace it (writable by all without the sticky bit; with it, a file of another user than us or
    /// root). nullopt for a bare name that is not in the working directory: the library search path finds it.
    static std::optional<std::string> library_file_problem(const std::string& path);

private:
    /// The file dlopen gets for `path`: `path` itself, "./name.so" for a bare name in the working directory, ""
    /// for a bare name left to the library search path.
    static std::string open_path(const std::string& path);
    using Destroy = void (*)(coyote::sim::UserLogic*);
    coyote::sim::UserLogic* model_ = nullptr;
    Destroy destroy_ = nullptr; // null: delete
    void* lib_ = nullptr;       // dlopen handle
    std::string origin_;
};

/// The model COYOTE_SIM_MODEL selects (passthrough when unset).
ModelHandle load_model_from_env();

/// Factories of the built-in models.
std::unique_ptr<coyote::sim::UserLogic> make_passthrough();
std::unique_ptr<coyote::sim::UserLogic> make_perf_local();
std::unique_ptr<coyote::sim::UserLogic> make_vadd();
/// Element-wise reduction of input dests 0 and 1 (type and op in CSRs; see <coyote/sim/reduce_model.hpp>).
std::unique_ptr<coyote::sim::UserLogic> make_reduce();

}  // namespace coyote::detail::sim
