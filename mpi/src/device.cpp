#include <coyote/mpi/device.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/device.hpp"

namespace coyote::mpi {

namespace {

std::string hw_path(uint32_t device, int32_t vfid) {
    return "/dev/coyote_fpga_" + std::to_string(device) + "_v" + std::to_string(vfid);
}

long parse_int(const std::string& text, const std::string& what, long lo, long hi) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || errno != 0 || end == nullptr || *end != '\0' || v < lo || v > hi)
        throw_error(Errc::invalid_argument, "select_device",
                    what + ": '" + text + "' is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    return v;
}

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
}

/// One rank's record in the collision allgather.
struct Record {
    char host[256];
    uint32_t device;
    int32_t vfid;
    int32_t exists; ///< 1 if the device was found (or not checked)
    int32_t pad;
};

std::string describe(const Record& r, int rank) {
    return "rank " + std::to_string(rank) + " (host " + std::string(r.host) + ", device " + std::to_string(r.device) +
           ", vFPGA " + std::to_string(r.vfid) + ")";
}

}  // namespace

std::vector<DeviceMapEntry> parse_device_map(const std::string& text) {
    std::vector<DeviceMapEntry> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t comma = text.find(',', pos);
        const std::string entry = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
        if (entry.empty()) continue;
        const std::size_t c1 = entry.find(':');
        const std::size_t c2 = c1 == std::string::npos ? std::string::npos : entry.find(':', c1 + 1);
        if (c1 == std::string::npos || c2 == std::string::npos || entry.find(':', c2 + 1) != std::string::npos)
            throw_error(Errc::invalid_argument, "COYOTE_MPI_DEVICE_MAP",
                        "entry '" + entry + "' is not rank:device:vfid");
        DeviceMapEntry e;
        e.rank = static_cast<int>(parse_int(entry.substr(0, c1), "rank in '" + entry + "'", 0, INT32_MAX));
        e.device = static_cast<uint32_t>(parse_int(entry.substr(c1 + 1, c2 - c1 - 1), "device in '" + entry + "'", 0, 255));
        e.vfid = static_cast<int32_t>(parse_int(entry.substr(c2 + 1), "vfid in '" + entry + "'", 0, 15));
        for (const auto& prev : out)
            if (prev.rank == e.rank)
                throw_error(Errc::invalid_argument, "COYOTE_MPI_DEVICE_MAP",
                            "rank " + std::to_string(e.rank) + " appears twice");
        out.push_back(e);
    }
    return out;
}

int count_hw_vfpgas(uint32_t device) {
    int n = 0;
    while (n < 16 && ::access(hw_path(device, n).c_str(), F_OK) == 0) ++n;
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

DeviceAssignment select_device(const Communicator& comm, const DeviceSelectOptions& options) {
    DeviceAssignment a;
    std::string map_text = options.device_map;
    std::string map_source = "options";
    if (map_text.empty()) {
        map_text = env_or_empty("COYOTE_MPI_DEVICE_MAP");
        map_source = "COYOTE_MPI_DEVICE_MAP";
    }
    const std::string env_dev = env_or_empty("COYOTE_MPI_DEVICE");
    const std::string env_vf = env_or_empty("COYOTE_MPI_VFID");
    // The backend decides the default; probe it on device 0, vFPGA 0 (COYOTE_BACKEND or /dev presence).
    const std::string backend = ::coyote::detail::selected_backend(0, 0);

    bool chosen = false;
    if (options.device || options.vfid) {
        a = default_assignment(backend, comm.local_rank(), backend == "hw" ? count_hw_vfpgas(0) : 0);
        if (options.device) a.device = *options.device;
        if (options.vfid) a.vfid = *options.vfid;
        a.source = "options";
        chosen = true;
    }
    if (!chosen && !map_text.empty()) {
        for (const auto& e : parse_device_map(map_text)) {
            if (e.rank != comm.rank()) continue;
            a.device = e.device;
            a.vfid = e.vfid;
            a.source = map_source;
            chosen = true;
        }
        if (!chosen)
            throw_error(Errc::invalid_argument, "select_device",
                        map_source + " '" + map_text + "' has no entry for rank " + std::to_string(comm.rank()));
    }
    if (!chosen && (!env_dev.empty() || !env_vf.empty())) {
        a = default_assignment(backend, comm.local_rank(), backend == "hw" ? count_hw_vfpgas(0) : 0);
        if (!env_dev.empty()) a.device = static_cast<uint32_t>(parse_int(env_dev, "COYOTE_MPI_DEVICE", 0, 255));
        if (!env_vf.empty()) a.vfid = static_cast<int32_t>(parse_int(env_vf, "COYOTE_MPI_VFID", 0, 15));
        a.source = "COYOTE_MPI_DEVICE/COYOTE_MPI_VFID";
        chosen = true;
    }
    if (!chosen) a = default_assignment(backend, comm.local_rank(), backend == "hw" ? count_hw_vfpgas(0) : 0);
    a.backend = ::coyote::detail::selected_backend(a.device, a.vfid);

    Record mine{};
    std::strncpy(mine.host, comm.host().c_str(), sizeof(mine.host) - 1);
    mine.device = a.device;
    mine.vfid = a.vfid;
    mine.exists = 1;
    if (options.check_exists && a.backend == "hw" && ::access(hw_path(a.device, a.vfid).c_str(), F_OK) != 0)
        mine.exists = 0;
    if (!options.check_exists && !options.check_collisions) return a;

    const auto bytes = allgather_bytes(comm, &mine, sizeof(Record), "device selection", options.bootstrap);
    std::vector<Record> all(static_cast<std::size_t>(comm.size()));
    std::memcpy(all.data(), bytes.data(), bytes.size());

    // Every rank evaluates the same table, so every rank throws the same error.
    for (int r = 0; r < comm.size(); ++r) {
        const Record& rec = all[static_cast<std::size_t>(r)];
        if (rec.exists == 0)
            throw_error(Errc::no_device, "select_device",
                        describe(rec, r) + ": " + hw_path(rec.device, rec.vfid) +
                            " does not exist (is the Coyote driver loaded? override with COYOTE_MPI_DEVICE, "
                            "COYOTE_MPI_VFID or COYOTE_MPI_DEVICE_MAP)");
    }
    if (options.check_collisions) {
        for (int r = 0; r < comm.size(); ++r)
            for (int s = r + 1; s < comm.size(); ++s) {
                const Record& x = all[static_cast<std::size_t>(r)];
                const Record& y = all[static_cast<std::size_t>(s)];
                if (std::strncmp(x.host, y.host, sizeof(x.host)) == 0 && x.device == y.device && x.vfid == y.vfid)
                    throw_error(Errc::invalid_argument, "select_device",
                                "ranks " + std::to_string(r) + " and " + std::to_string(s) + " on host " +
                                    std::string(x.host) + " both chose device " + std::to_string(x.device) +
                                    ", vFPGA " + std::to_string(x.vfid) +
                                    " (give each rank its own with COYOTE_MPI_DEVICE_MAP=\"rank:dev:vf,...\")");
            }
    }
    return a;
}

}  // namespace coyote::mpi
