// coyote-info: huge pages (/proc/meminfo, /sys/kernel/mm/hugepages) and hwloc locality.
#include "coyote_info/info.hpp"

#include <dirent.h>
#include <hwloc.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace coyote::tools::info {

namespace {

std::string read_word(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    in >> s;
    return s;
}

/// "0-3,8" of an hwloc bitmap.
std::string list_of(hwloc_const_bitmap_t set) {
    char* s = nullptr;
    if (set == nullptr || hwloc_bitmap_list_asprintf(&s, set) < 0 || s == nullptr) return "?";
    std::string out = s;
    std::free(s);
    return out;
}

/// Owns an hwloc topology (with PCI devices).
class Topology {
public:
    Topology() {
        if (hwloc_topology_init(&t_) != 0) return;
        hwloc_topology_set_io_types_filter(t_, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        ok_ = hwloc_topology_load(t_) == 0;
    }
    ~Topology() { hwloc_topology_destroy(t_); }
    Topology(const Topology&) = delete;
    Topology& operator=(const Topology&) = delete;
    bool ok() const noexcept { return ok_; }
    hwloc_topology_t get() const noexcept { return t_; }

private:
    hwloc_topology_t t_ = nullptr;
    bool ok_ = false;
};

Json fpga_functions(const Topology& topo) {
    Json out = Json::array();
    for (hwloc_obj_t o = hwloc_get_next_pcidev(topo.get(), nullptr); o != nullptr;
         o = hwloc_get_next_pcidev(topo.get(), o)) {
        if (o->attr->pcidev.vendor_id != 0x10ee) continue;
        char bus[32];
        std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.%01x", o->attr->pcidev.domain, o->attr->pcidev.bus,
                      o->attr->pcidev.dev, o->attr->pcidev.func);
        Json f = Json::object();
        f.set("pci", bus);
        const hwloc_obj_t parent = hwloc_get_non_io_ancestor_obj(topo.get(), o);
        f.set("cpus", parent ? list_of(parent->cpuset) : "?");
        f.set("numa_nodes", parent ? list_of(parent->nodeset) : "?");
        out.push(std::move(f));
    }
    return out;
}

}  // namespace

Json huge_pages() {
    Json h = Json::object();
    std::ifstream in("/proc/meminfo");
    std::string line;
    Json mem = Json::object();
    while (std::getline(in, line)) {
        if (line.rfind("HugePages_", 0) != 0 && line.rfind("Hugepagesize", 0) != 0) continue;
        const auto colon = line.find(':');
        std::istringstream rest(line.substr(colon + 1));
        long long v = 0;
        rest >> v;
        mem.set(line.substr(0, colon), v);
    }
    h.set("meminfo", std::move(mem));
    Json pools = Json::array();
    const std::string base = "/sys/kernel/mm/hugepages";
    if (DIR* d = ::opendir(base.c_str())) {
        while (const dirent* e = ::readdir(d)) {
            const std::string n = e->d_name;
            if (n.rfind("hugepages-", 0) != 0) continue;
            Json p = Json::object();
            p.set("size", n.substr(10));
            p.set("total", std::atoll(read_word(base + "/" + n + "/nr_hugepages").c_str()));
            p.set("free", std::atoll(read_word(base + "/" + n + "/free_hugepages").c_str()));
            pools.push(std::move(p));
        }
        ::closedir(d);
    }
    h.set("pools", std::move(pools));
    return h;
}

Json locality() {
    Json l = Json::object();
    Topology topo;
    if (!topo.ok()) {
        l.set("error", "hwloc could not load the topology");
        return l;
    }
    l.set("numa_nodes", hwloc_get_nbobjs_by_type(topo.get(), HWLOC_OBJ_NUMANODE));
    l.set("cores", hwloc_get_nbobjs_by_type(topo.get(), HWLOC_OBJ_CORE));
    l.set("pus", hwloc_get_nbobjs_by_type(topo.get(), HWLOC_OBJ_PU));
    hwloc_bitmap_t bound = hwloc_bitmap_alloc();
    if (bound != nullptr && hwloc_get_cpubind(topo.get(), bound, HWLOC_CPUBIND_PROCESS) == 0)
        l.set("process_cpus", list_of(bound));
    hwloc_bitmap_free(bound);
    Json fpgas = fpga_functions(topo);
    l.set("fpga_pci_functions", std::move(fpgas));
    l.set("note", "the sim backend's vFPGAs run on the CPUs of their process; hw vFPGAs sit behind the PCI "
                  "functions above");
    return l;
}

}  // namespace coyote::tools::info
