// coyote-mpi sim backend: access to process memory for the NIC (cross-process copies, mapping checks).
#include "backend/sim/net/process_memory.hpp"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

namespace coyote::detail::sim::net {

int vm_copy(pid_t pid, bool to_remote, uint64_t local, uint64_t remote, uint64_t len) noexcept {
    uint64_t done = 0;
    while (done < len) {
        iovec l{reinterpret_cast<void*>(local + done), static_cast<size_t>(len - done)};
        iovec r{reinterpret_cast<void*>(remote + done), static_cast<size_t>(len - done)};
        const ssize_t n = to_remote ? ::process_vm_writev(pid, &l, 1, &r, 1, 0) : ::process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EFAULT; // no progress: the next page is not accessible
        done += static_cast<uint64_t>(n);
    }
    return 0;
}

bool still_mapped_here(uint64_t addr, uint64_t len) noexcept {
    if (len == 0) return true;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t s = addr / page * page;
    const uint64_t e = (addr + len + page - 1) / page * page;
    return ::msync(reinterpret_cast<void*>(s), e - s, MS_ASYNC) == 0;
}

void allow_cross_process_access() noexcept {
    static std::once_flag once;
    std::call_once(once, [] { (void)::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); });
}

}  // namespace coyote::detail::sim::net
