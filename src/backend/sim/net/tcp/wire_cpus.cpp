// coyote-mpi sim backend: the CPUs the TCP wire's threads run on. By default they keep the rank's binding: a rank
// that polls for completions yields between polls and handles arrived frames itself, and wire threads that
// roam to the other ranks' cores cost those ranks more than they gain (docs/rdma.md). A rank that instead waits
// in a spinning MPI call while peers write to it holds its core until the next tick (the kernel lets a woken
// thread preempt a user-space spinner only then, up to 4 ms at HZ 250), and its wire threads wait that long
// unless they may run elsewhere: COYOTE_SIM_WIRE_CPUS=all or a list.
#include "backend/sim/net/tcp/wire_cpus.hpp"

#include <hwloc.h>
#include <hwloc/glibc-sched.h>

#include <cstdlib>
#include <memory>

#include <coyote/error.hpp>

#include "detail/settings.hpp"

namespace coyote::detail::sim::net {

namespace {

constexpr const char* k_var = "COYOTE_SIM_WIRE_CPUS";

struct TopologyDeleter {
    void operator()(hwloc_topology* t) const noexcept { hwloc_topology_destroy(t); }
};
struct BitmapDeleter {
    void operator()(hwloc_bitmap_s* b) const noexcept { hwloc_bitmap_free(b); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;
using BitmapPtr = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

BitmapPtr new_bitmap() {
    BitmapPtr b(hwloc_bitmap_alloc());
    if (!b) throw_error(Errc::resource_exhausted, "hwloc_bitmap_alloc", k_var);
    return b;
}

/// The CPUs this process may use: its cgroup's cpuset, as hwloc reads it (hwloc's topology is restricted to them
/// by default). Loaded once per process: a topology load takes a few milliseconds.
const cpu_set_t& allowed_cpus() {
    static const cpu_set_t allowed = [] {
        hwloc_topology_t raw = nullptr;
        if (hwloc_topology_init(&raw) != 0) throw_errno("hwloc_topology_init", k_var);
        const TopologyPtr topo(raw);
        (void)hwloc_topology_set_all_types_filter(topo.get(), HWLOC_TYPE_FILTER_KEEP_NONE); // PUs are enough
        if (hwloc_topology_load(topo.get()) != 0) throw_errno("hwloc_topology_load", k_var);
        cpu_set_t set;
        CPU_ZERO(&set);
        if (hwloc_cpuset_to_glibc_sched_affinity(topo.get(), hwloc_topology_get_allowed_cpuset(topo.get()), &set,
                                                 sizeof(set)) != 0)
            throw_errno("hwloc_cpuset_to_glibc_sched_affinity", k_var);
        return set;
    }();
    return allowed;
}

/// `set` in list syntax ("0-3,8").
std::string list_of(const cpu_set_t& set) {
    const BitmapPtr b = new_bitmap();
    (void)hwloc_cpuset_from_glibc_sched_affinity(nullptr, b.get(), &set, sizeof(set));
    char* text = nullptr;
    if (hwloc_bitmap_list_asprintf(&text, b.get()) < 0 || text == nullptr) return "?";
    std::string out(text);
    std::free(text);
    return out;
}

/// Whether `text` has the shape of a CPU list ("0-3,8"): ranges of numbers below 2^20, so that hwloc never sizes a
/// bitmap after a huge or negative number.
bool looks_like_cpu_list(const std::string& text) {
    size_t digits = 0;
    char prev = ',';
    for (const char ch : text) {
        if (ch >= '0' && ch <= '9') {
            if (++digits > 6) return false;
        } else if (ch == ',' || ch == '-') {
            if (digits == 0 || (ch == '-' && prev == '-')) return false;
            digits = 0;
        } else {
            return false;
        }
        if (ch == ',' || ch == '-') prev = ch;
    }
    return digits > 0;
}

/// The CPU list `text`, which must name at least one CPU this process may use (those are returned).
cpu_set_t usable_cpus_of(const std::string& text) {
    const BitmapPtr b = new_bitmap();
    if (!looks_like_cpu_list(text) || hwloc_bitmap_list_sscanf(b.get(), text.c_str()) < 0 ||
        hwloc_bitmap_weight(b.get()) <= 0)
        throw_error(Errc::invalid_argument, k_var, "'" + text + "' is not inherit, all or a CPU list such as 0-3,8");
    hwloc_bitmap_clr_range(b.get(), CPU_SETSIZE, -1); // beyond any machine cpu_set_t describes
    cpu_set_t set;
    CPU_ZERO(&set);
    (void)hwloc_cpuset_to_glibc_sched_affinity(nullptr, b.get(), &set, sizeof(set));
    CPU_AND(&set, &set, &allowed_cpus());
    if (CPU_COUNT(&set) == 0)
        throw_error(Errc::invalid_argument, k_var,
                    "none of the CPUs " + text + " is one this process may use (" + list_of(allowed_cpus()) + ")");
    return set;
}

}  // namespace

std::optional<cpu_set_t> wire_thread_cpus(const std::string& setting) {
    if (setting == "inherit") return std::nullopt;
    const cpu_set_t want = setting == "all" ? allowed_cpus() : usable_cpus_of(setting);
    cpu_set_t now;
    CPU_ZERO(&now);
    if (::sched_getaffinity(0, sizeof(now), &now) == 0 && CPU_EQUAL(&now, &want)) return std::nullopt;
    return want;
}

std::optional<std::string> wire_cpus_problem(const std::string& value) {
    return settings::problem_of([&] { (void)wire_thread_cpus(value); });
}

void place_wire_thread(const std::optional<cpu_set_t>& cpus) noexcept {
    if (cpus) (void)::sched_setaffinity(0, sizeof(*cpus), &*cpus);
}

}  // namespace coyote::detail::sim::net
