#include <coyote/mpi/device.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/device.hpp"
#include "detail/format.hpp"
#include "detail/settings.hpp"
#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

namespace {

/// A decimal integer in lo..hi (digits only: no sign, no spaces); the error quotes the text printably.
long parse_int(const std::string& text, const std::string& what, long lo, long hi, const std::string& origin) {
    const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    const auto v = digits ? ::coyote::detail::settings::parse_integer(text) : std::nullopt;
    if (!v || *v < lo || *v > hi)
        throw_error(Errc::invalid_argument, origin,
                    what + ": '" + ::coyote::detail::printable(text) + "' is not an integer in " + std::to_string(lo) +
                        ".." + std::to_string(hi));
    return static_cast<long>(*v);
}

/// `text` without the spaces around it (a map may be written "0:0:0, 1:1:0").
std::string trim_spaces(const std::string& text) {
    const auto first = text.find_first_not_of(' ');
    if (first == std::string::npos) return {};
    return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

constexpr long k_max_device = 255; ///< the device numbers a map may name
constexpr long k_max_vfid = 15;    ///< the vFPGAs of a shell

namespace settings = ::coyote::detail::settings;
const settings::Text k_device_map{"COYOTE_MPI_DEVICE_MAP", "mpi", "",
                                  "per-rank device map 'rank:device:vfid,...' (select_device; the same on every rank, ranks of the "
                                  "communicator)",
                                  [](const std::string& v) {
                                      return settings::problem_of([&] { (void)parse_device_map(v); });
                                  }};
const settings::Integer k_device{"COYOTE_MPI_DEVICE", "mpi", 0, 0, 255,
                                 "device of every rank on this node (select_device; unset: automatic)", "unset"};
const settings::Integer k_vfid{"COYOTE_MPI_VFID", "mpi", 0, 0, 15,
                               "vFPGA of every rank on this node (select_device; unset: by node-local rank)", "unset"};


/// One rank's record in the device-selection allgather.
struct Record {
    char host[256];    ///< host key: host name (+ network namespace on sim)
    int32_t is_hw;     ///< backend of the rank
    int32_t has_device;
    int32_t has_vfid;
    uint32_t device;   ///< explicit device (if has_device)
    int32_t vfid;      ///< explicit vFPGA (if has_vfid)
    int32_t no_entry;  ///< the device map has no entry for this rank
    int32_t hw_vfpgas; ///< vFPGAs of device 0 on this host (hw)
    int32_t uses_map;  ///< the rank's choice is not from DeviceSelectOptions::device/vfid: its map must agree
    uint64_t map_hash; ///< FNV-1a of the text of the map in force (empty when none)
    char map[96];      ///< the map in force, as "COYOTE_MPI_DEVICE_MAP '...'" (cut), or "no device map"
    char source[64];
    int32_t failed;    ///< this rank could not make its record (bad setting or option): `error` says why
    char error[300];
};

std::string describe(const Record& r, int rank, uint32_t device, int32_t vfid) {
    return "rank " + std::to_string(rank) + " (host " + ::coyote::detail::printable(r.host) + ", device " +
           std::to_string(device) + ", vFPGA " + std::to_string(vfid) + ")";
}

/// The identity that makes devices distinct: the host for hw (the /dev files), host and network namespace
/// for sim (a sim device's IP derives from both).
std::string host_key(const std::string& host, bool hw) {
    if (hw) return host;
    struct stat st {};
    const unsigned long long ns = ::stat("/proc/self/ns/net", &st) == 0 ? static_cast<unsigned long long>(st.st_ino) : 0;
    return host + " netns " + std::to_string(ns);
}

}  // namespace

std::vector<DeviceMapEntry> parse_device_map(const std::string& text, const std::string& origin) {
    std::vector<DeviceMapEntry> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = text.find(',', pos);
        const std::string entry =
            trim_spaces(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
        pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
        if (entry.empty()) continue;
        const std::string shown = ::coyote::detail::printable(entry);
        const std::size_t c1 = entry.find(':');
        const std::size_t c2 = c1 == std::string::npos ? std::string::npos : entry.find(':', c1 + 1);
        if (c1 == std::string::npos || c2 == std::string::npos || entry.find(':', c2 + 1) != std::string::npos)
            throw_error(Errc::invalid_argument, origin, "entry '" + shown + "' is not rank:device:vfid");
        DeviceMapEntry e;
        e.rank = static_cast<int>(parse_int(entry.substr(0, c1), "rank in '" + shown + "'", 0, INT32_MAX, origin));
        e.device = static_cast<uint32_t>(
            parse_int(entry.substr(c1 + 1, c2 - c1 - 1), "device in '" + shown + "'", 0, k_max_device, origin));
        e.vfid = static_cast<int32_t>(parse_int(entry.substr(c2 + 1), "vfid in '" + shown + "'", 0, k_max_vfid, origin));
        for (const auto& prev : out)
            if (prev.rank == e.rank)
                throw_error(Errc::invalid_argument, origin, "rank " + std::to_string(e.rank) + " appears twice");
        out.push_back(e);
    }
    return out;
}

int count_hw_vfpgas(uint32_t device) {
    int n = 0;
    while (n < 16 && ::access(::coyote::detail::device_file(device, n).c_str(), F_OK) == 0) ++n;
    return n;
}

DeviceAssignment default_assignment(const std::string& backend, int local_rank, int hw_vfpgas) {
    DeviceAssignment a;
    a.backend = backend;
    a.source = "default";
    if (backend == "sim") {
        a.device = static_cast<uint32_t>(local_rank);
        a.vfid = 0;
    } else {
        a.device = 0;
        a.vfid = hw_vfpgas > 1 ? local_rank : 0;
    }
    return a;
}

namespace {

/// Where this rank's explicit choice comes from: options, the device map, or COYOTE_MPI_DEVICE / _VFID.
struct MapSource {
    std::string text;   ///< the device map in force (empty: none)
    std::string source; ///< "options" or "COYOTE_MPI_DEVICE_MAP"
};

/// The name of a map's origin in messages.
std::string map_origin(const MapSource& map) {
    return map.source == "options" ? "DeviceSelectOptions::device_map" : map.source;
}

uint64_t fnv1a(const std::string& text) {
    uint64_t h = 1469598103934665603ull;
    for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h;
}

MapSource device_map(const DeviceSelectOptions& options) {
    if (!options.device_map.empty()) return {options.device_map, "options"};
    return {k_device_map.get(), "COYOTE_MPI_DEVICE_MAP"};
}

/// This rank's record: its host key, backend and explicit choice, if any.
Record own_record(const Communicator& comm, const DeviceSelectOptions& options, const MapSource& map, bool hw) {
    Record mine{};
    std::strncpy(mine.host, host_key(comm.host(), hw).c_str(), sizeof(mine.host) - 1);
    mine.is_hw = hw ? 1 : 0;
    mine.hw_vfpgas = hw ? count_hw_vfpgas(0) : 0;
    std::string source = "default";
    if (options.device || options.vfid) {
        // The ranges of the device map, where the map's own errors would name them.
        if (options.device && *options.device > k_max_device)
            throw_error(Errc::invalid_argument, "select_device",
                        "DeviceSelectOptions::device " + std::to_string(*options.device) + " is not in 0.." +
                            std::to_string(k_max_device));
        if (options.vfid && (*options.vfid < 0 || *options.vfid > k_max_vfid))
            throw_error(Errc::invalid_argument, "select_device",
                        "DeviceSelectOptions::vfid " + std::to_string(*options.vfid) + " is not in 0.." +
                            std::to_string(k_max_vfid));
        if (options.device) mine.has_device = 1, mine.device = *options.device;
        if (options.vfid) mine.has_vfid = 1, mine.vfid = *options.vfid;
        source = "options";
    } else if (!map.text.empty()) {
        for (const auto& e : parse_device_map(map.text, map_origin(map))) {
            if (e.rank >= comm.size())
                throw_error(Errc::invalid_argument, "select_device",
                            map_origin(map) + " '" + ::coyote::detail::printable(map.text) + "' has an entry for rank " + std::to_string(e.rank) +
                                " but the communicator has " + std::to_string(comm.size()) +
                                " ranks (map ranks are ranks of the communicator given to select_device)");
            if (e.rank == comm.rank()) {
                mine.has_device = mine.has_vfid = 1;
                mine.device = e.device;
                mine.vfid = e.vfid;
                source = map.source;
            }
        }
        if (source == "default") mine.no_entry = 1;  // reported on every rank after the allgather
    } else if (k_device.is_set() || k_vfid.is_set()) {
        if (k_device.is_set()) mine.has_device = 1, mine.device = static_cast<uint32_t>(k_device.get());
        if (k_vfid.is_set()) mine.has_vfid = 1, mine.vfid = static_cast<int32_t>(k_vfid.get());
        source = "COYOTE_MPI_DEVICE/COYOTE_MPI_VFID";
    }
    std::strncpy(mine.source, source.c_str(), sizeof(mine.source) - 1);
    mine.uses_map = options.device || options.vfid ? 0 : 1;
    mine.map_hash = fnv1a(map.text);
    const std::string shown = map.text.empty() ? "no device map" : map_origin(map) + " '" + ::coyote::detail::printable(map.text) + "'";
    std::strncpy(mine.map, shown.c_str(), sizeof(mine.map) - 1);
    if (shown.size() >= sizeof(mine.map)) std::memcpy(mine.map + sizeof(mine.map) - 5, "...'", 4);
    return mine;
}

/// The record of a rank that could not make its own: every rank learns why after the allgather.
Record failed_record(const std::string& why) {
    Record r{};
    r.failed = 1;
    std::strncpy(r.error, why.c_str(), sizeof(r.error) - 1);
    return r;
}

/// Every rank's `mine`, in rank order.
template <typename T>
std::vector<T> gather_all(const Communicator& comm, const T& mine, const char* what, const BootstrapOptions& options) {
    std::vector<T> all(1, mine);
    if (comm.size() > 1) {
        const auto bytes = allgather_bytes(comm, &mine, sizeof(T), what, options);
        all.resize(static_cast<std::size_t>(comm.size()));
        std::memcpy(all.data(), bytes.data(), bytes.size());
    }
    return all;
}

/// Every rank's assignment from every rank's record (the same on all ranks).
std::vector<DeviceAssignment> assign_all(const std::vector<Record>& all) {
    std::vector<DeviceAssignment> out(all.size());
    for (std::size_t r = 0; r < all.size(); ++r) {
        const Record& rec = all[r];
        int host_rank = 0;  // index among the ranks of the same host key
        for (std::size_t q = 0; q < r; ++q) host_rank += std::strncmp(all[q].host, rec.host, sizeof(rec.host)) == 0;
        DeviceAssignment d = default_assignment(rec.is_hw ? "hw" : "sim", host_rank, rec.hw_vfpgas);
        if (rec.has_device) d.device = rec.device;
        if (rec.has_vfid) d.vfid = rec.vfid;
        d.host_rank = host_rank;
        d.source = std::string(rec.source, strnlen(rec.source, sizeof(rec.source)));
        out[r] = d;
    }
    return out;
}

/// Why rank `r`'s device file is missing: more ranks on its host than vFPGAs (default assignment), or no driver.
std::string missing_reason(const Record& rec, const DeviceAssignment& a) {
    if (a.source == "default" && rec.hw_vfpgas > 1 && a.vfid >= rec.hw_vfpgas)
        return " does not exist: host-local rank " + std::to_string(a.host_rank) + " gets vFPGA " +
               std::to_string(a.vfid) + " by default, but device 0 has " + std::to_string(rec.hw_vfpgas) +
               " vFPGAs (one per rank of a host): run at most " + std::to_string(rec.hw_vfpgas) +
               " ranks per host, or give ranks other devices with COYOTE_MPI_DEVICE_MAP";
    return " does not exist (is the Coyote driver loaded? override with COYOTE_MPI_DEVICE, COYOTE_MPI_VFID or "
           "COYOTE_MPI_DEVICE_MAP)";
}

/// Each rank probes its own device file; a second small allgather shares the verdicts.
void check_exists(const Communicator& comm, const DeviceAssignment& mine, const std::vector<Record>& all,
                  const std::vector<DeviceAssignment>& final, const BootstrapOptions& options) {
    const bool present =
        mine.backend != "hw" || ::access(::coyote::detail::device_file(mine.device, mine.vfid).c_str(), F_OK) == 0;
    const auto found = gather_all(comm, int32_t{present ? 1 : 0}, "device probe", options);
    for (std::size_t r = 0; r < all.size(); ++r)
        if (found[r] == 0)
            throw_error(Errc::no_device, "select_device",
                        describe(all[r], static_cast<int>(r), final[r].device, final[r].vfid) + ": " +
                            ::coyote::detail::device_file(final[r].device, final[r].vfid) +
                            missing_reason(all[r], final[r]));
}

/// A rank that could not make its record fails every rank, naming it and its reason.
void check_records(const std::vector<Record>& all) {
    for (std::size_t r = 0; r < all.size(); ++r)
        if (all[r].failed != 0)
            throw_error(Errc::invalid_argument, "select_device",
                        "failed on rank " + std::to_string(r) + ": " +
                            std::string(all[r].error, strnlen(all[r].error, sizeof(all[r].error))));
}

/// Ranks that take their choice from a device map (or the defaults) must all see the same map: a map set on some
/// ranks only, or different maps, would assign devices nobody wrote down.
void check_maps_agree(const std::vector<Record>& all) {
    const auto first = std::find_if(all.begin(), all.end(), [](const Record& r) { return r.uses_map != 0; });
    for (auto it = first; it != all.end(); ++it) {
        if (it->uses_map == 0 || it->map_hash == first->map_hash) continue;
        const auto text = [](const Record& r) { return std::string(r.map, strnlen(r.map, sizeof(r.map))); };
        throw_error(Errc::invalid_argument, "select_device",
                    "ranks " + std::to_string(first - all.begin()) + " and " + std::to_string(it - all.begin()) +
                        " see different device maps: " + text(*first) + " and " + text(*it) +
                        " (set the same COYOTE_MPI_DEVICE_MAP, or DeviceSelectOptions::device_map, on every rank)");
    }
}

/// Two ranks of one host on the same (device, vFPGA) is an error.
void check_collisions(const std::vector<Record>& all, const std::vector<DeviceAssignment>& final) {
    for (std::size_t r = 0; r < all.size(); ++r)
        for (std::size_t q = r + 1; q < all.size(); ++q) {
            if (std::strncmp(all[r].host, all[q].host, sizeof(all[r].host)) != 0) continue;
            if (final[r].device != final[q].device || final[r].vfid != final[q].vfid) continue;
            throw_error(Errc::invalid_argument, "select_device",
                        "ranks " + std::to_string(r) + " and " + std::to_string(q) + " on host " +
                            ::coyote::detail::printable(all[r].host) + " both chose device " +
                            std::to_string(final[r].device) + ", vFPGA " + std::to_string(final[r].vfid) +
                            " (give each rank its own with COYOTE_MPI_DEVICE_MAP=\"rank:dev:vf,...\")");
        }
}

}  // namespace

DeviceAssignment select_device(const Communicator& comm, const DeviceSelectOptions& options) {
    detail::require_valid(comm, "select_device");
    // The backend decides the default; probe it on device 0, vFPGA 0 (COYOTE_BACKEND or /dev presence).
    const bool hw = ::coyote::detail::selected_backend(0, 0) == "hw";
    const MapSource map = device_map(options);
    // One allgather: every rank derives every rank's assignment, so checks fail identically everywhere. A rank
    // that cannot make its record (a malformed setting) still takes part, so that every rank names it.
    Record mine{};
    std::exception_ptr local_error;
    try {
        mine = own_record(comm, options, map, hw);
    } catch (const Error& e) {
        mine = failed_record(e.call() + ": " + e.context());
        local_error = std::current_exception();
    } catch (const std::exception& e) {
        mine = failed_record(e.what());
        local_error = std::current_exception();
    }
    const auto all = gather_all(comm, mine, "device selection", options.bootstrap);
    if (local_error) std::rethrow_exception(local_error);
    check_records(all);
    check_maps_agree(all);
    for (std::size_t r = 0; r < all.size(); ++r)
        if (all[r].no_entry != 0)
            throw_error(Errc::invalid_argument, "select_device",
                        map_origin(map) + " '" + ::coyote::detail::printable(map.text) + "' has no entry for rank " + std::to_string(r));
    const auto final = assign_all(all);
    DeviceAssignment a = final[static_cast<std::size_t>(comm.rank())];
    a.backend = ::coyote::detail::selected_backend(a.device, a.vfid);
    if (options.check_exists && std::any_of(all.begin(), all.end(), [](const Record& r) { return r.is_hw != 0; }))
        check_exists(comm, a, all, final, options.bootstrap);
    if (options.check_collisions) check_collisions(all, final);
    return a;
}

}  // namespace coyote::mpi
