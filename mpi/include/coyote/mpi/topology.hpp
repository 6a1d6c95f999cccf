// coyote-mpi: FPGA locality (hwloc) and CPU/memory binding of a rank.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coyote::mpi {

/// An FPGA (PCI vendor 0x10ee) found in the topology and the nearest non-I/O object above it.
struct FpgaLocality {
    std::string pci_busid;     ///< "0000:81:00.0"
    uint16_t device_id = 0;    ///< PCI device id
    std::string ancestor;      ///< e.g. "Package:1" or "NUMANode:1"
    std::string cpuset;        ///< hwloc list syntax, e.g. "2-3"
    std::string nodeset;       ///< NUMA nodes, list syntax, e.g. "1"
};

/// A loaded hwloc topology (the machine's, or an XML file). Move-only.
class Topology {
public:
    /// The machine this process runs on, with I/O devices.
    static Topology load_system();
    /// An hwloc XML export (hwloc 2.x format), with I/O devices.
    static Topology load_xml(const std::string& path);

    Topology(Topology&&) noexcept;
    Topology& operator=(Topology&&) noexcept;
    ~Topology();

    /// Every 0x10ee PCI function, sorted by bus id (Coyote device n is the n-th).
    std::vector<FpgaLocality> fpgas() const;
    /// Number of NUMA nodes.
    int numa_nodes() const;
    /// The whole machine's cpuset, list syntax.
    std::string machine_cpuset() const;
    /// cpuset and nodeset of NUMA node `os_index` (nullopt if absent).
    std::optional<std::pair<std::string, std::string>> numa_node(int os_index) const;

    struct Impl;
    Impl& impl() const noexcept { return *impl_; }

private:
    explicit Topology(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Inputs of the binding decision besides the topology.
struct BindingInputs {
    uint32_t device = 0;               ///< Coyote device number of this rank
    std::string current_cpuset;        ///< where the process may run now (list syntax); empty = whole machine
    std::map<std::string, std::string> env; ///< launcher/binding variables (see binding_env())
};

/// What bind_to_fpga decided.
struct BindingDecision {
    enum class Action { bind, launcher_bound, no_fpga_left_alone, disabled };
    Action action = Action::no_fpga_left_alone;
    std::string cpuset;  ///< target cpuset (bind) or the current one
    std::string nodeset; ///< target NUMA nodes (bind)
    std::string reason;  ///< one line: why
};

/// The variables decide_binding reads: OMPI_MCA_hwloc_base_binding_policy, OMPI_COMM_WORLD_LOCAL_RANK,
/// SLURM_CPU_BIND, SLURM_CPU_BIND_TYPE, COYOTE_SIM_NUMA_NODE, COYOTE_MPI_BIND, from the process environment.
std::map<std::string, std::string> binding_env();

/// Pure decision (deterministic on an XML topology): bind to the FPGA's nearest non-I/O ancestor unless the
/// launcher already bound the process (current cpuset narrower than the machine, or OMPI/SLURM binding
/// variables); without an FPGA, bind to NUMA node COYOTE_SIM_NUMA_NODE when set, else leave it alone.
/// COYOTE_MPI_BIND=0 disables binding.
BindingDecision decide_binding(const Topology& topo, const BindingInputs& inputs);

/// Decides on the machine's topology and applies the decision (hwloc_set_cpubind + hwloc_set_membind for the
/// process). Prints a one-line summary prefixed with `rank` when `report` or COYOTE_MPI_REPORT_BINDING=1.
BindingDecision bind_to_fpga(uint32_t device, int rank, bool report = false);

/// One-line description of a decision.
std::string describe(const BindingDecision& d);

}  // namespace coyote::mpi
