// coyote-mpi sim backend: the vFPGA's TLB, an interval map of every host range the vFPGA may touch.
#pragma once

#include <cstdint>
#include <map>
#include <shared_mutex>
#include <utility>
#include <vector>

namespace coyote::detail::sim {

/// How a range got into the TLB.
enum class MapKind : uint8_t {
    alloc, ///< getMem allocation, owned by the backend
    user,  ///< userMap
    fault  ///< mapped on first use (page-fault path)
};

/// Answer of Tlb::lookup.
struct TlbLookup {
    bool covered = false;      ///< every byte is in the TLB
    bool owned_only = true;    ///< only alloc ranges are involved (no need to probe the process)
    bool write_denied = false; ///< covered, but some range was mapped without write permission
    uint64_t first_gap = 0;    ///< first byte not covered (or not writable)
    /// When the range starts in a getMem allocation and runs past its end: the allocation's range (the lookup then
    /// reports the range as not covered). Else both 0.
    uint64_t alloc_start = 0, alloc_end = 0;
};

/// Thread-safe interval map. Segments never overlap; a group (keyed by the address userMap / getMem
/// was called with) owns one or more segments.
class Tlb {
public:
    /// Checks [addr, addr+len); `write` asks for write permission.
    TlbLookup lookup(uint64_t addr, uint64_t len, bool write) const;

    /// Adds the parts of [start, end) not yet mapped as group `key`; fault segments inside the range
    /// are taken over by the group unless `kind` is fault. Returns the bytes newly added.
    uint64_t insert(uint64_t key, uint64_t start, uint64_t end, MapKind kind, int32_t ctid, bool writable);

    /// Marks fault segments in [start, end) writable (the process made them writable since).
    void grant_write(uint64_t start, uint64_t end);

    /// True if group `key` of `kind` exists; returns its requested range.
    bool find_group(uint64_t key, MapKind kind, uint64_t& start, uint64_t& end) const;

    /// Removes group `key` of `kind` and its segments. Returns false if there is none. The segments of a user group
    /// that another group's range covers (an overlapping userMap, a getMem buffer) go to that group instead. With
    /// `removed`, appends the ranges no group maps any longer.
    bool remove_group(uint64_t key, MapKind kind, std::vector<std::pair<uint64_t, uint64_t>>* removed = nullptr);

    /// Bytes currently mapped, per kind.
    uint64_t mapped_bytes(MapKind kind) const;

private:
    struct Segment {
        uint64_t end;
        uint64_t group;
        MapKind kind;
        bool writable;
        int32_t ctid;
    };
    struct Group {
        MapKind kind;
        uint64_t start;
        uint64_t end;
    };

    void split_at(uint64_t addr); // requires the exclusive lock
    /// insert() without the lock and the group's record: adds the gaps of [start, end), takes over fault segments.
    uint64_t add_segments(uint64_t key, uint64_t start, uint64_t end, MapKind kind, int32_t ctid, bool writable);
    /// Appends the parts of [start, end) no segment covers (requires the lock).
    void add_gaps(uint64_t start, uint64_t end, std::vector<std::pair<uint64_t, uint64_t>>& out) const;

    mutable std::shared_mutex mtx_;
    std::map<uint64_t, Segment> segs_; // keyed by start
    std::map<std::pair<uint64_t, MapKind>, Group> groups_;
};

}  // namespace coyote::detail::sim
