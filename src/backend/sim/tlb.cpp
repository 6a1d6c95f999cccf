// coyote-mpi sim backend: the vFPGA TLB (interval map of mapped host ranges).
#include "backend/sim/tlb.hpp"

#include <algorithm>
#include <mutex>

namespace coyote::detail::sim {

TlbLookup Tlb::lookup(uint64_t addr, uint64_t len, bool write) const {
    TlbLookup r;
    const uint64_t end = addr + len;
    std::shared_lock lk(mtx_);
    uint64_t cur = addr;
    auto it = segs_.upper_bound(cur);
    if (it != segs_.begin()) {
        --it;
        if (it->second.end <= cur) ++it; // the segment before ends before addr
    }
    // A range that starts in an allocation must end in it: past its end lies other memory (found by the page-fault
    // path, or another allocation), which the caller never meant.
    if (it != segs_.end() && it->first <= cur && it->second.kind == MapKind::alloc && end > it->second.end) {
        const auto g = groups_.find({it->second.group, MapKind::alloc});
        if (g != groups_.end() && end > g->second.end) {
            r.alloc_start = g->second.start;
            r.alloc_end = g->second.end;
            r.first_gap = g->second.end;
            return r;
        }
    }
    while (cur < end) {
        if (it == segs_.end() || it->first > cur) {
            r.first_gap = cur;
            return r;
        }
        if (it->second.kind != MapKind::alloc) r.owned_only = false;
        if (write && !it->second.writable) {
            r.covered = true;
            r.write_denied = true;
            r.first_gap = cur;
            return r;
        }
        cur = it->second.end;
        ++it;
    }
    r.covered = true;
    return r;
}

void Tlb::split_at(uint64_t addr) {
    auto it = segs_.upper_bound(addr);
    if (it == segs_.begin()) return;
    --it;
    if (it->first < addr && addr < it->second.end) {
        Segment tail = it->second;
        it->second.end = addr;
        segs_.emplace(addr, tail);
    }
}

uint64_t Tlb::add_segments(uint64_t key, uint64_t start, uint64_t end, MapKind kind, int32_t ctid, bool writable) {
    split_at(start);
    split_at(end);
    uint64_t added = 0;
    uint64_t cur = start;
    auto it = segs_.lower_bound(start);
    while (cur < end) {
        const uint64_t next = (it != segs_.end() && it->first < end) ? it->first : end;
        if (cur < next) { // gap [cur, next)
            segs_.emplace_hint(it, cur, Segment{next, key, kind, writable, ctid});
            added += next - cur;
            cur = next;
            continue;
        }
        // it starts at cur and lies inside [start, end)
        if (kind != MapKind::fault && it->second.kind == MapKind::fault) {
            it->second.kind = kind;
            it->second.group = key;
            it->second.ctid = ctid;
            it->second.writable = writable;
        }
        cur = it->second.end;
        ++it;
    }
    return added;
}

uint64_t Tlb::insert(uint64_t key, uint64_t start, uint64_t end, MapKind kind, int32_t ctid, bool writable) {
    if (start >= end) return 0;
    std::unique_lock lk(mtx_);
    const uint64_t added = add_segments(key, start, end, kind, ctid, writable);
    if (kind != MapKind::fault) {
        auto [g, fresh] = groups_.try_emplace({key, kind}, Group{kind, start, end});
        if (!fresh) {
            g->second.start = std::min(g->second.start, start);
            g->second.end = std::max(g->second.end, end);
        }
    }
    return added;
}

void Tlb::grant_write(uint64_t start, uint64_t end) {
    std::unique_lock lk(mtx_);
    for (auto it = segs_.upper_bound(start); it != segs_.end() && it->first < end; ++it)
        if (it->second.kind == MapKind::fault) it->second.writable = true;
    auto it = segs_.upper_bound(start);
    if (it != segs_.begin()) {
        --it;
        if (it->second.end > start && it->second.kind == MapKind::fault) it->second.writable = true;
    }
}

bool Tlb::find_group(uint64_t key, MapKind kind, uint64_t& start, uint64_t& end) const {
    std::shared_lock lk(mtx_);
    auto g = groups_.find({key, kind});
    if (g == groups_.end()) return false;
    start = g->second.start;
    end = g->second.end;
    return true;
}

bool Tlb::remove_group(uint64_t key, MapKind kind, std::vector<std::pair<uint64_t, uint64_t>>* removed) {
    std::unique_lock lk(mtx_);
    auto g = groups_.find({key, kind});
    if (g == groups_.end()) return false;
    const Group gone = g->second;
    groups_.erase(g);
    struct Freed {
        uint64_t start, end;
        bool writable;
        int32_t ctid;
    };
    std::vector<Freed> freed;
    // Segments of a group lie within the group's range.
    for (auto it = segs_.lower_bound(gone.start); it != segs_.end() && it->first < gone.end;) {
        if (it->second.group == key && it->second.kind == kind) {
            freed.push_back({it->first, it->second.end, it->second.writable, it->second.ctid});
            it = segs_.erase(it);
        } else {
            ++it;
        }
    }
    // A userMap's pages that another userMap or a getMem buffer also asked for stay mapped: they go to that group.
    // (getMem memory is unmapped when its group goes: nothing is handed over then.)
    if (kind == MapKind::user)
        for (const auto& [k, other] : groups_)
            for (const Freed& f : freed)
                if (other.start < f.end && f.start < other.end)
                    add_segments(k.first, std::max(f.start, other.start), std::min(f.end, other.end), other.kind,
                                 f.ctid, f.writable || other.kind == MapKind::alloc);
    if (removed != nullptr)
        for (const Freed& f : freed) add_gaps(f.start, f.end, *removed);
    return true;
}

void Tlb::add_gaps(uint64_t start, uint64_t end, std::vector<std::pair<uint64_t, uint64_t>>& out) const {
    uint64_t cur = start;
    for (auto it = segs_.lower_bound(start); it != segs_.end() && it->first < end; ++it) {
        if (it->first > cur) out.emplace_back(cur, it->first);
        cur = std::max(cur, it->second.end);
    }
    if (cur < end) out.emplace_back(cur, end);
}

uint64_t Tlb::mapped_bytes(MapKind kind) const {
    std::shared_lock lk(mtx_);
    uint64_t n = 0;
    for (const auto& [s, seg] : segs_)
        if (seg.kind == kind) n += seg.end - s;
    return n;
}

}  // namespace coyote::detail::sim
