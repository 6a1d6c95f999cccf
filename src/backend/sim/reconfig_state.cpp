// coyote-mpi sim backend: the process-wide record of reconfigurations (models per vFPGA, shell changes).
#include "backend/sim/reconfig_state.hpp"

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace coyote::detail::sim {

namespace {

struct State {
    std::mutex mtx;
    std::map<std::pair<uint32_t, int32_t>, std::string> models;
    std::map<uint32_t, std::string> device_models;
    std::map<uint32_t, std::vector<std::string>> shell; ///< the shell changes loaded, in load order
};

State& state() {
    static State s;
    return s;
}

}  // namespace

void set_model_override(uint32_t device, int32_t vfid, const std::string& spec) {
    std::lock_guard lk(state().mtx);
    state().models[{device, vfid}] = spec;
}

void set_device_model_override(uint32_t device, const std::string& spec) {
    std::lock_guard lk(state().mtx);
    auto& s = state();
    for (auto it = s.models.begin(); it != s.models.end();)
        it = it->first.first == device ? s.models.erase(it) : std::next(it);
    s.device_models[device] = spec;
}

void add_shell_override(uint32_t device, const std::string& settings) {
    std::lock_guard lk(state().mtx);
    state().shell[device].push_back(settings);
}

ModelHandle load_model_for(uint32_t device, int32_t vfid) {
    std::string spec;
    {
        std::lock_guard lk(state().mtx);
        auto& s = state();
        if (auto it = s.models.find({device, vfid}); it != s.models.end()) spec = it->second;
        else if (auto d = s.device_models.find(device); d != s.device_models.end()) spec = d->second;
    }
    return spec.empty() ? load_model_from_env() : ModelHandle::load(spec);
}

void apply_shell_override(uint32_t device, ShellConfig& cfg) {
    std::vector<std::string> loads;
    {
        std::lock_guard lk(state().mtx);
        if (auto it = state().shell.find(device); it != state().shell.end()) loads = it->second;
    }
    // One after the other: a key a later shell bitstream sets again replaces the earlier value.
    for (const std::string& settings : loads)
        apply_shell_settings(cfg, settings, "shell reconfiguration of sim device " + std::to_string(device));
}

}  // namespace coyote::detail::sim
