#include <coyote/mpi/topology.hpp>

#include <hwloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <coyote/error.hpp>

#include "detail/settings.hpp"

namespace coyote::mpi {

namespace {

/// Owns an hwloc bitmap.
class Bitmap {
public:
    Bitmap() : b_(hwloc_bitmap_alloc()) {
        if (b_ == nullptr) throw_error(Errc::resource_exhausted, "hwloc_bitmap_alloc", "out of memory");
    }
    explicit Bitmap(hwloc_const_bitmap_t src) : b_(hwloc_bitmap_dup(src)) {
        if (b_ == nullptr) throw_error(Errc::resource_exhausted, "hwloc_bitmap_dup", "out of memory");
    }
    Bitmap(const Bitmap&) = delete;
    Bitmap& operator=(const Bitmap&) = delete;
    ~Bitmap() { hwloc_bitmap_free(b_); }
    hwloc_bitmap_t get() const noexcept { return b_; }

private:
    hwloc_bitmap_t b_;
};

std::string list_string(hwloc_const_bitmap_t set) {
    if (set == nullptr) return {};
    char* s = nullptr;
    if (hwloc_bitmap_list_asprintf(&s, set) < 0 || s == nullptr) return {};
    std::string out(s);
    std::free(s);
    return out;
}

/// Parses a list-syntax set ("0-3,8"); throws on garbage.
void parse_list(const std::string& text, Bitmap& out, const char* what) {
    if (hwloc_bitmap_list_sscanf(out.get(), text.c_str()) < 0)
        throw_error(Errc::invalid_argument, "decide_binding", std::string(what) + " '" + text + "' is not a cpu list");
}

std::string busid(const hwloc_obj_t obj) {
    char buf[32];
    const auto& p = obj->attr->pcidev;
    std::snprintf(buf, sizeof(buf), "%04x:%02x:%02x.%01x", static_cast<unsigned>(p.domain), static_cast<unsigned>(p.bus),
                  static_cast<unsigned>(p.dev), static_cast<unsigned>(p.func));
    return buf;
}

std::string get_env(const std::map<std::string, std::string>& env, const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
}

}  // namespace

struct Topology::Impl {
    hwloc_topology_t topo = nullptr;
    ~Impl() {
        if (topo != nullptr) hwloc_topology_destroy(topo);
    }
};

Topology::Topology(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;
Topology::~Topology() = default;

namespace {
std::unique_ptr<Topology::Impl> init_topology(const char* xml_path) {
    auto impl = std::make_unique<Topology::Impl>();
    if (hwloc_topology_init(&impl->topo) != 0) throw_errno("hwloc_topology_init", "creating a topology");
    if (xml_path != nullptr && hwloc_topology_set_xml(impl->topo, xml_path) != 0)
        throw_errno("hwloc_topology_set_xml", std::string("cannot use XML topology '") + xml_path + "'");
    hwloc_topology_set_io_types_filter(impl->topo, HWLOC_TYPE_FILTER_KEEP_ALL);
    if (hwloc_topology_load(impl->topo) != 0)
        throw_errno("hwloc_topology_load", xml_path != nullptr ? std::string("loading '") + xml_path + "'"
                                                               : std::string("discovering this machine"));
    return impl;
}
}  // namespace

Topology Topology::load_system() { return Topology(init_topology(nullptr)); }

Topology Topology::load_xml(const std::string& path) { return Topology(init_topology(path.c_str())); }

std::vector<FpgaLocality> Topology::fpgas() const {
    std::vector<FpgaLocality> out;
    hwloc_topology_t t = impl_->topo;
    for (hwloc_obj_t pci = hwloc_get_next_pcidev(t, nullptr); pci != nullptr; pci = hwloc_get_next_pcidev(t, pci)) {
        if (pci->attr->pcidev.vendor_id != 0x10ee) continue;
        FpgaLocality f;
        f.pci_busid = busid(pci);
        f.device_id = pci->attr->pcidev.device_id;
        hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t, pci);
        if (anc != nullptr) {
            f.ancestor = std::string(hwloc_obj_type_string(anc->type)) + ":" + std::to_string(anc->logical_index);
            f.cpuset = list_string(anc->cpuset);
            f.nodeset = list_string(anc->nodeset);
        }
        out.push_back(std::move(f));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pci_busid < b.pci_busid; });
    return out;
}

int Topology::numa_nodes() const { return hwloc_get_nbobjs_by_type(impl_->topo, HWLOC_OBJ_NUMANODE); }

std::string Topology::machine_cpuset() const { return list_string(hwloc_topology_get_topology_cpuset(impl_->topo)); }

std::optional<std::pair<std::string, std::string>> Topology::numa_node(int os_index) const {
    if (os_index < 0) return std::nullopt;
    hwloc_obj_t n = hwloc_get_numanode_obj_by_os_index(impl_->topo, static_cast<unsigned>(os_index));
    if (n == nullptr) return std::nullopt;
    return std::make_pair(list_string(n->cpuset), list_string(n->nodeset));
}

namespace {
namespace settings = ::coyote::detail::settings;
const settings::Flag k_bind{"COYOTE_MPI_BIND", "mpi", true, "0: bind_to_fpga leaves the binding alone"};
const settings::Flag k_report_binding{"COYOTE_MPI_REPORT_BINDING", "mpi", false,
                                      "bind_to_fpga prints its decision, one line per rank"};
const settings::Integer k_sim_numa_node{"COYOTE_SIM_NUMA_NODE", "mpi", 0, 0, 65535,
                                        "with no FPGA in the topology (sim), bind to this NUMA node (unset: leave alone)",
                                        "unset"};
}  // namespace

std::map<std::string, std::string> binding_env() {
    std::map<std::string, std::string> env;
    for (const char* var : {"OMPI_MCA_hwloc_base_binding_policy", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_CPU_BIND",
                            "SLURM_CPU_BIND_TYPE"})
        if (auto v = settings::foreign(var)) env[var] = *v;
    if (!k_bind.get()) env["COYOTE_MPI_BIND"] = "0";
    if (k_sim_numa_node.is_set()) env["COYOTE_SIM_NUMA_NODE"] = std::to_string(k_sim_numa_node.get());
    return env;
}

BindingDecision decide_binding(const Topology& topo, const BindingInputs& in) {
    using Action = BindingDecision::Action;
    BindingDecision d;
    const std::string machine = topo.machine_cpuset();
    d.cpuset = in.current_cpuset.empty() ? machine : in.current_cpuset;

    if (get_env(in.env, "COYOTE_MPI_BIND") == "0") {
        d.action = Action::disabled;
        d.reason = "binding disabled (COYOTE_MPI_BIND=0)";
        return d;
    }
    // Already bound by the launcher?
    if (!in.current_cpuset.empty()) {
        Bitmap cur, all(hwloc_topology_get_topology_cpuset(topo.impl().topo));
        parse_list(in.current_cpuset, cur, "current cpuset");
        if (!hwloc_bitmap_isequal(cur.get(), all.get()) && hwloc_bitmap_isincluded(cur.get(), all.get())) {
            d.action = Action::launcher_bound;
            d.reason = "already bound by the launcher to cpus " + in.current_cpuset + " (machine: " + machine + ")";
            return d;
        }
    }
    if (const auto p = get_env(in.env, "OMPI_MCA_hwloc_base_binding_policy"); !p.empty() && p != "none") {
        d.action = Action::launcher_bound;
        d.reason = "launcher binding policy OMPI_MCA_hwloc_base_binding_policy=" + p;
        return d;
    }
    for (const char* var : {"SLURM_CPU_BIND", "SLURM_CPU_BIND_TYPE"}) {
        const auto v = get_env(in.env, var);
        if (!v.empty() && v.find("none") == std::string::npos) {
            d.action = Action::launcher_bound;
            d.reason = std::string("launcher binding ") + var + "=" + v;
            return d;
        }
    }

    const auto fpgas = topo.fpgas();
    if (in.device < fpgas.size()) {
        const auto& f = fpgas[in.device];
        if (f.cpuset.empty()) {
            d.action = Action::no_fpga_left_alone;
            d.reason = "FPGA " + f.pci_busid + " has no CPU locality in the topology; left alone";
            return d;
        }
        if (f.cpuset == machine) {
            d.action = Action::no_fpga_left_alone;
            d.reason = "FPGA " + f.pci_busid + " is local to the whole machine (" + f.ancestor + "); left alone";
            return d;
        }
        d.action = Action::bind;
        d.cpuset = f.cpuset;
        d.nodeset = f.nodeset;
        d.reason = "bound near FPGA " + f.pci_busid + " (" + f.ancestor + ")";
        return d;
    }
    if (const auto numa = get_env(in.env, "COYOTE_SIM_NUMA_NODE"); !numa.empty()) {
        char* end = nullptr;
        const long idx = std::strtol(numa.c_str(), &end, 10);
        const auto node = (end != nullptr && *end == '\0' && idx >= 0 && idx < 4096)
                              ? topo.numa_node(static_cast<int>(idx))
                              : std::nullopt;
        if (!node)
            throw_error(Errc::invalid_argument, "decide_binding",
                        "COYOTE_SIM_NUMA_NODE=" + numa + " names no NUMA node of this machine (it has " +
                            std::to_string(topo.numa_nodes()) + ")");
        d.action = Action::bind;
        d.cpuset = node->first;
        d.nodeset = node->second;
        d.reason = "no FPGA for device " + std::to_string(in.device) + "; bound to NUMA node " + numa +
                   " (COYOTE_SIM_NUMA_NODE)";
        return d;
    }
    d.action = Action::no_fpga_left_alone;
    d.reason = "no FPGA (PCI 10ee) for device " + std::to_string(in.device) + " (" + std::to_string(fpgas.size()) +
               " found); binding left alone";
    return d;
}

std::string describe(const BindingDecision& d) {
    const char* a = "left alone";
    switch (d.action) {
    case BindingDecision::Action::bind: a = "bind"; break;
    case BindingDecision::Action::launcher_bound: a = "launcher-bound"; break;
    case BindingDecision::Action::no_fpga_left_alone: a = "left alone"; break;
    case BindingDecision::Action::disabled: a = "disabled"; break;
    }
    std::string s = std::string(a) + ": cpus " + d.cpuset;
    if (!d.nodeset.empty()) s += ", NUMA " + d.nodeset;
    return s + " -- " + d.reason;
}

BindingDecision bind_to_fpga(uint32_t device, int rank, bool report) {
    Topology topo = Topology::load_system();
    hwloc_topology_t t = topo.impl().topo;
    BindingInputs in;
    in.device = device;
    in.env = binding_env();
    {
        Bitmap cur;
        if (hwloc_get_cpubind(t, cur.get(), HWLOC_CPUBIND_PROCESS) == 0) in.current_cpuset = list_string(cur.get());
    }
    BindingDecision d = decide_binding(topo, in);
    if (d.action == BindingDecision::Action::bind) {
        Bitmap cpus, nodes;
        parse_list(d.cpuset, cpus, "target cpuset");
        if (hwloc_set_cpubind(t, cpus.get(), HWLOC_CPUBIND_PROCESS) != 0)
            throw_errno("hwloc_set_cpubind", "binding rank " + std::to_string(rank) + " to cpus " + d.cpuset);
        if (!d.nodeset.empty()) {
            parse_list(d.nodeset, nodes, "target nodeset");
            // Memory binding may be unsupported (e.g. in containers); the CPU binding already happened.
            if (hwloc_set_membind(t, nodes.get(), HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_PROCESS | HWLOC_MEMBIND_BYNODESET) != 0)
                d.reason += " (memory binding to NUMA " + d.nodeset + " failed: " + std::strerror(errno) + ")";
        }
    }
    if (report || k_report_binding.get()) {
        std::printf("coyote-mpi: rank %d device %u binding %s\n", rank, device, describe(d).c_str());
        std::fflush(stdout);
    }
    return d;
}

}  // namespace coyote::mpi
