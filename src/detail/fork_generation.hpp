// coyote-mpi: which process an object was made in. A forked child is a new generation: objects that hold threads or
// process-shared state (a cThread) record the generation they were made in and, in a child, neither act nor tear down.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace coyote::detail {

/// Incremented in every forked child (a pthread_atfork handler the library installs when it loads).
extern std::atomic<uint32_t> g_fork_generation __attribute__((visibility("hidden")));

/// The current process's generation; cheap enough for every poll (one load).
inline uint32_t fork_generation() noexcept { return g_fork_generation.load(std::memory_order_relaxed); }

/// Where an object was made: its generation and its process.
struct MadeIn {
    uint32_t generation = fork_generation();
    pid_t pid = 0;
    /// True in the process that made the object; false in a forked child.
    bool here() const noexcept { return generation == fork_generation(); }
};

/// A MadeIn of this process.
MadeIn made_here() noexcept;

}  // namespace coyote::detail
