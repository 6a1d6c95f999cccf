// coyote-mpi sim backend: access to process memory for the NIC (cross-process copies, mapping checks).
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace coyote::detail::sim::net {

/// Copies `len` bytes between this process (`local`) and process `pid` (`remote`): process_vm_writev when
/// `to_remote`, else process_vm_readv; loops on partial transfers. Returns 0 or the errno of the failure.
int vm_copy(pid_t pid, bool to_remote, uint64_t local, uint64_t remote, uint64_t len) noexcept;

/// [addr, addr + len) is mapped in this process (msync fails with ENOMEM on a hole).
bool still_mapped_here(uint64_t addr, uint64_t len) noexcept;

/// Lets processes of the same user read and write this one's memory with process_vm_* where Yama restricts
/// ptrace to descendants (ptrace_scope 1): the shm wire reaches windows that way. Once per process.
void allow_cross_process_access() noexcept;

}  // namespace coyote::detail::sim::net
