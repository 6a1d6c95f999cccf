// coyote-mpi: the fork generation (see fork_generation.hpp).
#include "detail/fork_generation.hpp"

#include <pthread.h>
#include <unistd.h>

namespace coyote::detail {

std::atomic<uint32_t> g_fork_generation{0};

namespace {

const bool g_fork_handler_installed = [] {
    (void)::pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
}();

}  // namespace

MadeIn made_here() noexcept {
    (void)g_fork_handler_installed;
    return MadeIn{fork_generation(), ::getpid()};
}

}  // namespace coyote::detail
