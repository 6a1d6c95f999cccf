// coyote-mpi sim backend: the vFPGA TLB (interval map of mapped host ranges) and process memory access checks.
#include "backend/sim/tlb.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
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

uint64_t Tlb::insert(uint64_t key, uint64_t start, uint64_t end, MapKind kind, int32_t ctid, bool writable) {
    if (start >= end) return 0;
    std::unique_lock lk(mtx_);
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

bool Tlb::remove_group(uint64_t key, MapKind kind) {
    std::unique_lock lk(mtx_);
    auto g = groups_.find({key, kind});
    if (g == groups_.end()) return false;
    // Segments of a group lie within the group's range.
    for (auto it = segs_.lower_bound(g->second.start); it != segs_.end() && it->first < g->second.end;) {
        if (it->second.group == key && it->second.kind == kind)
            it = segs_.erase(it);
        else
            ++it;
    }
    groups_.erase(g);
    return true;
}

uint64_t Tlb::mapped_bytes(MapKind kind) const {
    std::shared_lock lk(mtx_);
    uint64_t n = 0;
    for (const auto& [s, seg] : segs_)
        if (seg.kind == kind) n += seg.end - s;
    return n;
}

std::vector<ProcRange> read_proc_maps(pid_t pid) {
    std::vector<ProcRange> out;
    std::ifstream in(pid > 0 ? "/proc/" + std::to_string(pid) + "/maps" : std::string("/proc/self/maps"));
    std::string line;
    while (std::getline(in, line)) {
        unsigned long long s = 0, e = 0;
        char perms[8] = {0};
        if (std::sscanf(line.c_str(), "%llx-%llx %7s", &s, &e, perms) != 3) continue;
        // Kernel-provided areas that must not be touched as data.
        if (line.find("[vvar") != std::string::npos || line.find("[vsyscall]") != std::string::npos) continue;
        out.push_back(ProcRange{s, e, perms[0] == 'r', perms[1] == 'w'});
    }
    return out;
}

bool check_proc_range(const std::vector<ProcRange>& maps, uint64_t start, uint64_t end, bool write,
                      uint64_t& bad, std::string& why, bool& all_writable) {
    all_writable = true;
    uint64_t cur = start;
    for (const auto& m : maps) { // /proc/self/maps is sorted by address
        if (m.end <= cur) continue;
        if (m.start > cur) break;
        if (!m.readable) {
            bad = cur;
            why = "not readable by the process";
            return false;
        }
        if (!m.writable) {
            if (write) {
                bad = cur;
                why = "not writable by the process";
                return false;
            }
            all_writable = false;
        }
        cur = m.end;
        if (cur >= end) return true;
    }
    bad = cur;
    why = "not mapped in the process";
    return false;
}

namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 // Linux 5.14 (uapi asm-generic/mman-common.h)
#define MADV_POPULATE_WRITE 23
#endif

/// Whether this kernel knows MADV_POPULATE_READ/WRITE (tried once on a page of our own).
bool populate_supported() noexcept {
    static const bool yes = [] {
        alignas(4096) static char page[4096];
        return ::madvise(page, sizeof(page), MADV_POPULATE_WRITE) == 0;
    }();
    return yes;
}

} // namespace

// The populate advice fails where the access itself would fault (a hole, PROT_NONE, read-only memory written, a
// file mapping past its end) and faults the pages in, as the copy would. Where the kernel refuses the advice for
// another reason (device mappings) the answer comes from /proc/self/maps; a kernel without it (before 5.14) gets
// msync, which sees holes only.
const char* process_access(uint64_t start, uint64_t end, bool write) noexcept {
    void* p = reinterpret_cast<void*>(start);
    if (!populate_supported())
        return ::msync(p, end - start, MS_ASYNC) == 0 ? nullptr : "is no longer mapped in the process";
    int rc = 0;
    do {
        rc = ::madvise(p, end - start, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) return nullptr;
    switch (errno) {
    case ENOMEM: return "is no longer mapped in the process";
    case EFAULT: return "can no longer be accessed (the access would raise SIGBUS)";
    case EHWPOISON: return "holds a poisoned page";
    default: break;
    }
    try {
        uint64_t bad = 0;
        bool all_writable = false;
        std::string why;
        if (check_proc_range(read_proc_maps(), start, end, write, bad, why, all_writable)) return nullptr;
        if (why.find("writable") != std::string::npos) return "is no longer writable by the process";
        if (why.find("readable") != std::string::npos) return "is no longer readable by the process";
        return "is no longer mapped in the process";
    } catch (...) {
        return "could not be checked (reading /proc/self/maps failed)";
    }
}

}  // namespace coyote::detail::sim
