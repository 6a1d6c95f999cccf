// coyote-mpi: a signal-safe cleanup registry: shared-memory names a process created go when SIGTERM, SIGINT or
// SIGHUP ends it, as they go at a normal exit.
#pragma once

#include <cstddef>
#include <string>

namespace coyote::detail {

/// Unlinks, when this process ends on SIGTERM, SIGINT or SIGHUP with the default action, every file of
/// `shm_dir` (/dev/shm) whose name starts with `prefix`. The handlers are installed once per process and chain
/// to the handler found before: a process whose previous handler returns (Python's SIGINT, an application's
/// own) keeps running and keeps its segments; an ignored signal stays ignored. Registrations of a parent are
/// not acted on in a forked child. Up to 8 prefixes per process; throws invalid_argument beyond, or for a prefix
/// that is empty, holds '/' or is longer than 127 bytes.
void unlink_on_signal(const std::string& prefix);

/// Unlinks the files of `shm_dir` whose names start with one of this process's registered prefixes; uses only
/// async-signal-safe system calls (what the handler runs). Returns how many it removed.
std::size_t unlink_registered(const char* shm_dir = "/dev/shm") noexcept;

}  // namespace coyote::detail
