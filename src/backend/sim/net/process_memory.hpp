// coyote-mpi sim backend: access to process memory for the NIC (cross-process copies, peer access).
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace coyote::detail::sim::net {

/// Copies `len` bytes between this process (`local`) and process `pid` (`remote`): process_vm_writev when
/// `to_remote`, else process_vm_readv; loops on partial transfers. Returns 0 or the errno of the failure.
int vm_copy(pid_t pid, bool to_remote, uint64_t local, uint64_t remote, uint64_t len) noexcept;

/// Yama's ptrace scope (/proc/sys/kernel/yama/ptrace_scope): 0 when Yama is absent.
int yama_ptrace_scope() noexcept;

/// The nearest process that is `a` or an ancestor of it and also `b` or an ancestor of `b`, following
/// `parent_of` (pid -> parent pid, 0 when unknown); 0 when the chains do not meet.
pid_t common_ancestor(pid_t a, pid_t b, pid_t (*parent_of)(pid_t));

/// The parent of `pid` from /proc/<pid>/stat, 0 when unknown.
pid_t parent_pid(pid_t pid) noexcept;

/// Lets the same-host peer `peer` (and no unrelated process) read and write this process's windows with
/// process_vm_* where Yama restricts ptrace to descendants (ptrace_scope 1): declares as ptracer the nearest
/// common ancestor of this process and every peer allowed so far (Yama lets that process and its descendants
/// attach; it keeps one declared ptracer per process). Nothing where Yama is absent or at scope 0 (same-user
/// rules suffice) or at scope 2/3 (no declaration helps). Returns the declared ancestor, 0 when none.
pid_t allow_peer_access(pid_t peer) noexcept;

}  // namespace coyote::detail::sim::net
