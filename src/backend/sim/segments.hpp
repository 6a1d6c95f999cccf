// coyote-mpi sim backend: names of the POSIX shm segments of the sim backend, process identity,
// and reclaiming segments left behind by crashed processes.
//
// Every segment of the sim backend is named "/coyote-sim.<uid>.<pid>.<rest>", <pid> being the
// creating process. The state segment of a vFPGA is "<prefix>.d<dev>v<vf>.state".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "detail/handles.hpp"

namespace coyote::detail::sim {

/// "/coyote-sim.<uid>.<pid>" of the calling process, or of process `pid` (of the same user).
std::string segment_prefix();
std::string segment_prefix(pid_t pid);
/// "/coyote-sim.<uid>.<pid>.d<device>v<vfid>" of the calling process.
std::string vfpga_segment_prefix(uint32_t device, int32_t vfid);
/// The name of the shared state segment of (device, vfid) of the calling process.
std::string state_segment_name(uint32_t device, int32_t vfid);

/// Remembers shm segment `name`, created by this process, so that a normal exit (exit() or return from
/// main, even without destroying its owner) unlinks it. A forked child never unlinks its parent's names.
void track_segment(const std::string& name);
/// Forgets `name` (its owner unlinked it).
void untrack_segment(const std::string& name) noexcept;

/// Start time of `pid` (/proc/<pid>/stat field 22, clock ticks since boot); 0 if the process is gone.
uint64_t process_start_time(pid_t pid) noexcept;

/// True if `pid` runs and, when `start_time` is non-zero, is the same process (not a reused pid).
bool process_alive(pid_t pid, uint64_t start_time) noexcept;

/// A pidfd of `pid` (pidfd_open), checked to name the process started at `start_time` (when non-zero); an
/// invalid Fd when the kernel has no pidfds, access is denied or the process is gone.
Fd open_process_fd(pid_t pid, uint64_t start_time) noexcept;
/// True once the process behind `pidfd` (from open_process_fd) has exited; one poll(2), no /proc read.
bool process_exited(const Fd& pidfd) noexcept;

/// Removes the stale segments of this user in `shm_dir` (default /dev/shm): names
/// "coyote-sim.<uid>.<pid>.*" whose process is dead, or whose pid now belongs to another process
/// (a state segment's owner_start_time differs from the pid's start time; any other segment is older
/// than the process holding the pid). Names without a numeric pid are ignored; segments of live
/// owners are never touched. Returns how many were removed.
std::size_t reclaim_stale_segments(const std::string& shm_dir = "/dev/shm") noexcept;

}  // namespace coyote::detail::sim
