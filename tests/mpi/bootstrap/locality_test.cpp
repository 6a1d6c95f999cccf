// Locality and binding decisions on a hand-written hwloc XML topology (no MPI, deterministic).
#include <coyote/mpi/topology.hpp>

#include <gtest/gtest.h>

#include <coyote/error.hpp>

using namespace coyote::mpi;
using Action = BindingDecision::Action;

namespace {

const std::string k_xml = std::string(COYOTE_TEST_DATA_DIR) + "/two_numa_fpga.xml";

}  // namespace

TEST(Locality, FindsTheFpgaAndItsAncestor) {
    auto topo = Topology::load_xml(k_xml);
    EXPECT_EQ(topo.numa_nodes(), 2);
    EXPECT_EQ(topo.machine_cpuset(), "0-3");
    const auto f = topo.fpgas();
    ASSERT_EQ(f.size(), 1u);  // the Intel NIC under package 0 is not an FPGA
    EXPECT_EQ(f[0].pci_busid, "0000:81:00.0");
    EXPECT_EQ(f[0].device_id, 0x903f);
    EXPECT_EQ(f[0].ancestor, "Package:1");
    EXPECT_EQ(f[0].cpuset, "2-3");
    EXPECT_EQ(f[0].nodeset, "1");
}

TEST(Locality, NumaNodes) {
    auto topo = Topology::load_xml(k_xml);
    auto n0 = topo.numa_node(0);
    ASSERT_TRUE(n0.has_value());
    EXPECT_EQ(n0->first, "0-1");
    EXPECT_EQ(n0->second, "0");
    EXPECT_FALSE(topo.numa_node(2).has_value());
    EXPECT_FALSE(topo.numa_node(-1).has_value());
}

TEST(Binding, UnboundRankIsBoundNearTheFpga) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.device = 0;
    in.current_cpuset = "0-3";
    const auto d = decide_binding(topo, in);
    EXPECT_EQ(d.action, Action::bind);
    EXPECT_EQ(d.cpuset, "2-3");
    EXPECT_EQ(d.nodeset, "1");
    EXPECT_NE(describe(d).find("0000:81:00.0"), std::string::npos);
}

TEST(Binding, NarrowerCpusetMeansTheLauncherBound) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.current_cpuset = "1";
    const auto d = decide_binding(topo, in);
    EXPECT_EQ(d.action, Action::launcher_bound);
    EXPECT_EQ(d.cpuset, "1");
}

TEST(Binding, LauncherEnvironmentMeansTheLauncherBound) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.env["OMPI_MCA_hwloc_base_binding_policy"] = "core";
    EXPECT_EQ(decide_binding(topo, in).action, Action::launcher_bound);
    in.env.clear();
    in.env["SLURM_CPU_BIND"] = "quiet,mask_cpu:0x3";
    EXPECT_EQ(decide_binding(topo, in).action, Action::launcher_bound);
    in.env["SLURM_CPU_BIND"] = "quiet,none";
    EXPECT_EQ(decide_binding(topo, in).action, Action::bind);
    in.env.clear();
    in.env["OMPI_MCA_hwloc_base_binding_policy"] = "none";
    EXPECT_EQ(decide_binding(topo, in).action, Action::bind);
}

TEST(Binding, NoFpgaLeavesBindingAloneUnlessSimNumaNodeIsSet) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.device = 1;  // only one FPGA in the topology
    auto d = decide_binding(topo, in);
    EXPECT_EQ(d.action, Action::no_fpga_left_alone);
    in.env["COYOTE_SIM_NUMA_NODE"] = "0";
    d = decide_binding(topo, in);
    EXPECT_EQ(d.action, Action::bind);
    EXPECT_EQ(d.cpuset, "0-1");
    EXPECT_EQ(d.nodeset, "0");
    in.env["COYOTE_SIM_NUMA_NODE"] = "7";
    EXPECT_THROW((void)decide_binding(topo, in), coyote::Error);
    in.env["COYOTE_SIM_NUMA_NODE"] = "x";
    EXPECT_THROW((void)decide_binding(topo, in), coyote::Error);
}

TEST(Binding, CanBeDisabled) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.env["COYOTE_MPI_BIND"] = "0";
    EXPECT_EQ(decide_binding(topo, in).action, Action::disabled);
}

TEST(Binding, BadCurrentCpusetIsAnError) {
    auto topo = Topology::load_xml(k_xml);
    BindingInputs in;
    in.current_cpuset = "not-a-list";
    EXPECT_THROW((void)decide_binding(topo, in), coyote::Error);
}

TEST(Topology, MissingXmlIsAnError) {
    EXPECT_THROW((void)Topology::load_xml("/nonexistent/topology.xml"), coyote::Error);
}

TEST(Topology, ThisMachineLoads) {
    auto topo = Topology::load_system();
    EXPECT_GE(topo.numa_nodes(), 1);
    EXPECT_FALSE(topo.machine_cpuset().empty());
}
