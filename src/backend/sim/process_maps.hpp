// coyote-mpi sim backend: a process's memory map and the access checks the vFPGA makes on process memory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

namespace coyote::detail::sim {

/// A range of process memory with its permissions, as /proc/<pid>/maps lists it.
struct ProcRange {
    uint64_t start = 0;
    uint64_t end = 0;
    bool readable = false;
    bool writable = false;
};

/// What a range of process memory lacks.
enum class ProcAccess : uint8_t { ok, unmapped, unreadable, unwritable };

/// "not mapped in the process", "not readable by the process", "not writable by the process" ("accessible" for ok).
const char* describe(ProcAccess a) noexcept;

/// The answer of check_proc_range: `access` at the first offending address `bad`; `all_writable` when the whole
/// range (as far as checked) is writable.
struct ProcCheck {
    ProcAccess access = ProcAccess::ok;
    uint64_t bad = 0;
    bool all_writable = true;
    bool ok() const noexcept { return access == ProcAccess::ok; }
};

/// The memory map of this process (/proc/self/maps) or of process `pid`, skipping the kernel's special areas;
/// empty when it cannot be read.
std::vector<ProcRange> read_proc_maps(pid_t pid = 0);

/// Whether [start, end) is readable (and writable if `write`) in `maps`.
ProcCheck check_proc_range(const std::vector<ProcRange>& maps, uint64_t start, uint64_t end, bool write);

/// The reason [start, end) of this process lacks read (and, if `write`, write) access, or nullptr if it has it
/// ("is no longer mapped in the process", "is no longer writable by the process", ...). The range is widened to
/// whole pages; an empty one is accessible. Faults the pages in (MADV_POPULATE_READ / _WRITE), as the access
/// would. On kernels before 5.14 (no such advice) one byte of every page is read instead, which finds holes and
/// inaccessible pages but not read-only memory about to be written.
const char* process_access(uint64_t start, uint64_t end, bool write) noexcept;

/// process_access's probe on kernels before 5.14 (declared for its test): one byte of each page of the
/// page-aligned [start, end) read with process_vm_readv on this process; where that call is not allowed, holes
/// only, with msync.
bool pages_readable(uint64_t start, uint64_t end) noexcept;

}  // namespace coyote::detail::sim
