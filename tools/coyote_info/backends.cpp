// coyote-info: the sim and hw backends, their devices and vFPGAs, opened through the runtime's backends.
#include "coyote_info/info.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <coyote/cDefs.hpp>

#include "backend/device.hpp"
#include "backend/sim/identity.hpp"
#include "detail/settings.hpp"

namespace coyote::tools::info {

namespace {

namespace settings = ::coyote::detail::settings;

constexpr uint32_t k_max_devices = 256; // device files probed (device numbers 0..255, as -d and the tools take)
constexpr int32_t k_max_vfpgas = 16;

std::string mac_text(uint64_t mac) { return coyote::detail::sim::mac_to_string(mac); }
std::string ip_text(uint32_t ip) { return coyote::detail::sim::ip_to_string(ip); }

/// One vFPGA of an opened device: its shell configuration and network identity.
Json vfpga_json(coyote::detail::Device& dev) {
    Json v = Json::object();
    v.set("vfid", dev.vfid());
    v.set("shell", shell_json(dev.shell_word(), dev.control_word()));
    return v;
}

/// The device `device` as the backend `open` sees it: identity, vFPGAs (vfids that open).
template <class Open>
Json device_json(uint32_t device, Open open, int32_t n_vfpgas) {
    Json d = Json::object();
    d.set("device", device);
    Json vfs = Json::array();
    for (int32_t v = 0; v < n_vfpgas; ++v) {
        try {
            auto dev = open(device, v);
            if (v == 0) {
                d.set("ip", ip_text(dev->ip_address()));
                d.set("mac", mac_text(dev->mac_address()));
            }
            vfs.push(vfpga_json(*dev));
        } catch (const std::exception& e) {
            Json err = Json::object();
            err.set("vfid", v);
            err.set("error", e.what());
            vfs.push(std::move(err));
        }
    }
    d.set("vfpgas", std::move(vfs));
    return d;
}

std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

/// The Coyote kernel module: its name and version from /sys/module.
Json driver_json() {
    Json d = Json::object();
    std::string name;
    if (DIR* dir = ::opendir("/sys/module")) {
        while (const dirent* e = ::readdir(dir)) {
            const std::string n = e->d_name;
            if (n.find("coyote") != std::string::npos) name = n;
        }
        ::closedir(dir);
    }
    d.set("loaded", !name.empty());
    if (!name.empty()) {
        d.set("module", name);
        const std::string ver = read_line("/sys/module/" + name + "/version");
        const std::string src = read_line("/sys/module/" + name + "/srcversion");
        d.set("version", !ver.empty() ? ver : !src.empty() ? "srcversion " + src : "unknown");
    }
    return d;
}

}  // namespace

Json shell_json(uint64_t shell_word, uint64_t control_word) {
    fpgaCnfg c;
    c.parseCnfg(shell_word);
    c.parseCtrlReg(control_word);
    Json s = Json::object();
    Json f = Json::object();
    const std::pair<const char*, bool> features[] = {
        {"avx", c.en_avx},  {"writeback", c.en_wb},           {"streams", c.en_strm}, {"card_memory", c.en_mem},
        {"partial_reconfiguration", c.en_pr}, {"rdma", c.en_rdma}, {"tcp", c.en_tcp}};
    for (const auto& [name, on] : features) f.set(name, on);
    s.set("features", std::move(f));
    s.set("vfpgas", c.n_fpga_reg);
    s.set("ctids_per_vfpga", N_CTID_MAX);
    s.set("xdma_channels", c.n_xdma_chan);
    s.set("page_size_small", 1ULL << c.ctrl_reg.pg_s_bits);
    s.set("page_size_large", 1ULL << c.ctrl_reg.pg_l_bits);
    Json tlb = Json::object();
    tlb.set("small_sets", 1U << c.ctrl_reg.tlb_s_order);
    tlb.set("small_ways", static_cast<unsigned>(c.ctrl_reg.n_s_assoc));
    tlb.set("large_sets", 1U << c.ctrl_reg.tlb_l_order);
    tlb.set("large_ways", static_cast<unsigned>(c.ctrl_reg.n_l_assoc));
    s.set("tlb", std::move(tlb));
    char word[40];
    std::snprintf(word, sizeof word, "0x%016llx", static_cast<unsigned long long>(shell_word));
    s.set("shell_word", word);
    return s;
}

Json sim_backend(uint32_t device) {
    Json b = Json::object();
    b.set("backend", "sim");
    b.set("version", "coyote-mpi sim " COYOTE_INFO_VERSION);
    Json cfg = Json::object();
    for (const settings::Info* i : settings::all()) {
        if (i->name.rfind("COYOTE_SIM_", 0) != 0) continue;
        if (const auto v = settings::foreign(i->name.c_str())) cfg.set(i->name, *v);
    }
    b.set("settings", std::move(cfg));
    int32_t n = 1;
    try {
        fpgaCnfg c;
        c.parseCnfg(coyote::detail::sim::open(device, 0)->shell_word());
        n = c.n_fpga_reg > 0 ? c.n_fpga_reg : 1;
    } catch (const std::exception& e) {
        b.set("error", e.what());
        return b;
    }
    Json devs = Json::array();
    devs.push(device_json(device, [](uint32_t d, int32_t v) { return coyote::detail::sim::open(d, v); }, n));
    b.set("devices", std::move(devs));
    return b;
}

Json hw_backend(std::optional<uint32_t> device) {
    Json b = Json::object();
    b.set("backend", "hw");
    b.set("driver", driver_json());
    Json files = Json::array();
    Json devs = Json::array();
    for (uint32_t d = device.value_or(0); d < (device ? *device + 1 : k_max_devices); ++d) {
        int32_t n = 0;
        for (int32_t v = 0; v < k_max_vfpgas; ++v) {
            const std::string f = coyote::detail::device_file(d, v);
            if (::access(f.c_str(), F_OK) != 0) break;
            files.push(f);
            n = v + 1;
        }
        if (n > 0)
            devs.push(device_json(d, [](uint32_t dd, int32_t v) { return coyote::detail::hw::open(dd, v); }, n));
    }
    b.set("device_files", std::move(files));
    b.set("devices", std::move(devs));
    return b;
}

std::string backend_problem(const Json& root, const std::string& backend) {
    const Json* all = root.get("backends");
    if (all == nullptr) return "";
    for (const Json& b : all->elements()) {
        const Json* name = b.get("backend");
        if (name == nullptr || name->str() != backend) continue;
        if (const Json* e = b.get("error")) return "the " + backend + " backend does not open: " + e->str();
        const Json* devs = b.get("devices");
        if (devs == nullptr || devs->elements().empty())
            return "the " + backend + " backend has no device" +
                   (backend == "hw" ? " (no /dev/coyote_fpga_<d>_v<v>: is the Coyote driver loaded?)" : "");
        for (const Json& d : devs->elements())
            for (const Json& v : d.get("vfpgas")->elements())
                if (const Json* e = v.get("error"))
                    return backend + " device " + d.get("device")->str() + " vFPGA " + v.get("vfid")->str() +
                           " does not open: " + e->str();
    }
    return "";
}

}  // namespace coyote::tools::info
