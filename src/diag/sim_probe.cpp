// coyote-mpi diagnostics: reading the sim backend's shared state and NIC segments of any process of this user.
#include "diag/sim_probe.hpp"

#include <unistd.h>

#include "backend/device.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/shared_state.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::diag::sim_probe {

namespace {

std::string vfpga_prefix(int32_t pid, uint32_t device, int32_t vfid) {
    return "/coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + ".d" + std::to_string(device) +
           "v" + std::to_string(vfid);
}

/// The NIC segment `name` mapped, checked; null segment on failure.
const sim::NicShared* map_nic(const std::string& name, ShmSegment& seg) noexcept {
    try {
        seg = ShmSegment::open(name);
    } catch (...) {
        return nullptr;
    }
    if (seg.size() < sizeof(sim::NicShared)) return nullptr;
    const auto* nic = static_cast<const sim::NicShared*>(seg.get());
    if (nic->magic != sim::k_nic_magic || nic->version != sim::k_nic_version) return nullptr;
    return nic;
}

}  // namespace

std::string nic_name(int32_t pid, uint32_t device, int32_t vfid) { return vfpga_prefix(pid, device, vfid) + ".nic"; }

bool completions(int32_t pid, uint32_t device, int32_t vfid, int32_t ctid, uint32_t out[k_classes]) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return false;
    try {
        ShmSegment seg = ShmSegment::open(vfpga_prefix(pid, device, vfid) + ".state");
        if (seg.size() < sizeof(sim::SharedState)) return false;
        const auto* st = static_cast<const sim::SharedState*>(seg.get());
        if (st->magic != sim::k_state_magic || st->version != sim::k_state_version) return false;
        for (uint32_t c = 0; c < k_classes; ++c)
            out[c] = st->wback[c * N_CTID_MAX + static_cast<uint32_t>(ctid)].load(std::memory_order_acquire);
        // WRITEs that landed in a burst and wait to be claimed (defer_local_write) count as landed here.
        out[static_cast<uint32_t>(CmplClass::local_write)] += st->deferred[ctid].n.load(std::memory_order_acquire);
        return true;
    } catch (...) {
        return false;
    }
}

Rejections rejections(const std::string& name, int32_t ctid) noexcept {
    Rejections r;
    ShmSegment seg;
    const sim::NicShared* nic = map_nic(name, seg);
    if (nic == nullptr) return r;
    r.known = true;
    try {
        for (uint32_t c = 1; c < static_cast<uint32_t>(sim::Check::count); ++c) {
            const uint64_t n = nic->counters.rejected[c].load(std::memory_order_relaxed);
            if (n == 0) continue;
            r.total += n;
            if (!r.by_check.empty()) r.by_check += ", ";
            r.by_check += std::string(sim::check_name(static_cast<sim::Check>(c))) + " x " + std::to_string(n);
        }
        if (ctid >= 0 && ctid < N_CTID_MAX) {
            r.latest_ns = nic->counters.rejected_at_ns[ctid].load(std::memory_order_acquire);
            const uint32_t c = nic->counters.rejected_check[ctid].load(std::memory_order_relaxed);
            if (r.latest_ns != 0 && c < static_cast<uint32_t>(sim::Check::count))
                r.latest_check = sim::check_name(static_cast<sim::Check>(c));
        }
    } catch (...) {
    }
    return r;
}

std::optional<uint32_t> expected_psn(const std::string& name, int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return std::nullopt;
    ShmSegment seg;
    const sim::NicShared* nic = map_nic(name, seg);
    if (nic == nullptr) return std::nullopt;
    const sim::QpSlot& q = nic->qp[ctid];
    if ((q.flags.load(std::memory_order_acquire) & sim::QpSlot::k_ctx) == 0) return std::nullopt;
    return q.expected_psn.load(std::memory_order_relaxed);
}

std::optional<PeerId> peer_of(std::span<const std::byte> endpoint) noexcept {
    try {
        if (endpoint.size() < sim::k_endpoint_size) return std::nullopt;
        PeerId p;
        p.ep = sim::decode_endpoint(endpoint.first(sim::k_endpoint_size));
        sim::Endpoint mine;
        sim::fill_host_identity(mine);
        p.same_host = p.ep.same_host(mine);
        return p;
    } catch (...) {
        return std::nullopt;
    }
}

}  // namespace coyote::detail::diag::sim_probe
