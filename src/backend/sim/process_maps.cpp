// coyote-mpi sim backend: a process's memory map and the access checks the vFPGA makes on process memory.
#include "backend/sim/process_maps.hpp"

#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>

namespace coyote::detail::sim {

const char* describe(ProcAccess a) noexcept {
    switch (a) {
    case ProcAccess::ok: return "accessible";
    case ProcAccess::unmapped: return "not mapped in the process";
    case ProcAccess::unreadable: return "not readable by the process";
    case ProcAccess::unwritable: return "not writable by the process";
    }
    return "not accessible";
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

ProcCheck check_proc_range(const std::vector<ProcRange>& maps, uint64_t start, uint64_t end, bool write) {
    ProcCheck r;
    uint64_t cur = start;
    for (const auto& m : maps) { // /proc/self/maps is sorted by address
        if (m.end <= cur) continue;
        if (m.start > cur) break;
        if (!m.readable) return ProcCheck{ProcAccess::unreadable, cur, false};
        if (!m.writable) {
            if (write) return ProcCheck{ProcAccess::unwritable, cur, false};
            r.all_writable = false;
        }
        cur = m.end;
        if (cur >= end) return r;
    }
    return ProcCheck{ProcAccess::unmapped, cur, false};
}

namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 // Linux 5.14 (uapi asm-generic/mman-common.h)
#define MADV_POPULATE_WRITE 23
#endif

uint64_t page_size() noexcept {
    static const auto p = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return p;
}

/// Whether this kernel knows MADV_POPULATE_READ/WRITE (tried once on a page of our own).
bool populate_supported() noexcept {
    static const bool yes = [] {
        alignas(4096) static char page[4096];
        return ::madvise(page, sizeof(page), MADV_POPULATE_WRITE) == 0;
    }();
    return yes;
}

const char* no_longer(ProcAccess a) noexcept {
    switch (a) {
    case ProcAccess::ok: return nullptr;
    case ProcAccess::unreadable: return "is no longer readable by the process";
    case ProcAccess::unwritable: return "is no longer writable by the process";
    case ProcAccess::unmapped: break;
    }
    return "is no longer mapped in the process";
}

} // namespace

bool pages_readable(uint64_t start, uint64_t end) noexcept {
    const uint64_t page = page_size();
    constexpr size_t k_batch = 256;
    std::array<iovec, k_batch> remote{};
    std::array<char, k_batch> sink{};
    for (uint64_t at = start; at < end;) {
        size_t n = 0;
        for (; n < k_batch && at < end; ++n, at += page) remote[n] = {reinterpret_cast<void*>(at), 1};
        iovec local{sink.data(), n};
        ssize_t got = 0;
        do {
            got = ::process_vm_readv(::getpid(), &local, 1, remote.data(), n, 0);
        } while (got < 0 && errno == EINTR);
        if (got < 0 && (errno == EPERM || errno == ENOSYS)) // the call is not allowed here: holes only
            return ::msync(reinterpret_cast<void*>(start), end - start, MS_ASYNC) == 0;
        if (got != static_cast<ssize_t>(n)) return false;
    }
    return true;
}

// The populate advice fails where the access itself would fault (a hole, PROT_NONE, read-only memory written, a
// file mapping past its end). Where the kernel refuses the advice for another reason (device mappings) the
// answer comes from /proc/self/maps.
const char* process_access(uint64_t start, uint64_t end, bool write) noexcept {
    if (end <= start) return nullptr;
    const uint64_t page = page_size();
    start = start / page * page;
    end = (end + page - 1) / page * page;
    if (!populate_supported())
        return pages_readable(start, end) ? nullptr : "is no longer mapped and readable in the process";
    void* p = reinterpret_cast<void*>(start);
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
        return no_longer(check_proc_range(read_proc_maps(), start, end, write).access);
    } catch (...) {
        return "could not be checked (reading /proc/self/maps failed)";
    }
}

}  // namespace coyote::detail::sim
