// coyote-mpi: applying a sim bitstream: record the model / shell change, swap the model of open vFPGAs.
#include <thread>

#include "backend/device.hpp"
#include "backend/sim/reconfig_state.hpp"
#include "backend/sim/sim_device.hpp"
#include "detail/format.hpp"
#include "detail/settings.hpp"
#include "rcnfg/bitstream_file.hpp"
#include "rcnfg/targets.hpp"

namespace coyote::detail::rcnfg {

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Millis k_reconfig_time{"COYOTE_SIM_RECONFIG_MS", "sim", std::chrono::milliseconds(0),
                                       "emulated duration of one sim reconfiguration (app or shell load)",
                                       std::chrono::milliseconds(0)};

/// Swaps the model of (device, vfid) if this process has it open.
void swap_if_open(uint32_t device, int32_t vfid, const std::string& spec) {
    auto dev = find_open_device(device, vfid);
    if (auto* sim_dev = dynamic_cast<sim::SimDevice*>(dev.get())) sim_dev->swap_model(sim::ModelHandle::load(spec));
}

}  // namespace

void check_vfid_sim(uint32_t device, int32_t vfid, const char* call) {
    sim::ShellConfig now = sim::load_shell_config();
    sim::apply_shell_override(device, now);
    sim::check_vfid_exists(now, device, vfid, call);
}

void load_sim(uint32_t device, int32_t vfid, std::span<const char> bytes, const std::string& origin) {
    const SimBitstream b = decode_sim_bitstream(bytes, origin);
    const bool shell = vfid < 0;
    if (shell != (b.kind == SimBitstream::Kind::shell))
        throw_error(Errc::invalid_argument, "cRcnfg",
                    "bitstream '" + origin + "' is " + (shell ? "an app" : "a shell") + " bitstream, loaded as " +
                        (shell ? "a shell" : "an app"));
    if (!b.model.empty()) { // fails here, before anything changes
        try {
            sim::ModelHandle::load(b.model);
        } catch (const std::exception& e) {
            throw_error(Errc::invalid_argument, "cRcnfg",
                        "bitstream '" + origin + "': its model '" + b.model + "' does not load: " + detail::reason_of(e));
        }
    }
    if (!shell) check_vfid_sim(device, vfid, "cRcnfg"); // as opening a cThread there would say
    if (!b.shell_settings.empty()) {
        sim::ShellConfig probe = sim::load_shell_config();
        sim::apply_shell_override(device, probe);
        sim::apply_shell_settings(probe, b.shell_settings, "bitstream '" + origin + "'");
    }
    std::this_thread::sleep_for(k_reconfig_time.get());
    if (!shell) {
        sim::set_model_override(device, vfid, b.model);
        swap_if_open(device, vfid, b.model);
        return;
    }
    if (!b.shell_settings.empty()) sim::add_shell_override(device, b.shell_settings);
    if (b.model.empty()) return;
    sim::set_device_model_override(device, b.model);
    const sim::ShellConfig cfg = [&] {
        sim::ShellConfig c = sim::load_shell_config();
        sim::apply_shell_override(device, c);
        return c;
    }();
    for (uint32_t v = 0; v < cfg.n_fpga_reg; ++v) swap_if_open(device, static_cast<int32_t>(v), b.model);
}

}  // namespace coyote::detail::rcnfg
