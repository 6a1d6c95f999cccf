// coyote-mpi sim backend: access to process memory for the NIC (cross-process copies, peer access).
#include "backend/sim/net/process_memory.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "detail/per_process.hpp"

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

int yama_ptrace_scope() noexcept {
    const int fd = ::open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char b[8] = {};
    const ssize_t n = ::read(fd, b, sizeof(b) - 1);
    ::close(fd);
    return n > 0 && b[0] >= '0' && b[0] <= '9' ? b[0] - '0' : 0;
}

pid_t parent_pid(pid_t pid) noexcept {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char b[512] = {};
    const ssize_t n = ::read(fd, b, sizeof(b) - 1);
    ::close(fd);
    if (n <= 0) return 0;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    const char* close = std::strrchr(b, ')');
    if (close == nullptr) return 0;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(close + 1, " %c %d", &state, &ppid) != 2) return 0;
    return static_cast<pid_t>(ppid);
}

pid_t common_ancestor(pid_t a, pid_t b, pid_t (*parent_of)(pid_t)) {
    std::vector<pid_t> chain;
    for (pid_t p = a; p > 0 && chain.size() < 4096; p = parent_of(p)) {
        if (std::find(chain.begin(), chain.end(), p) != chain.end()) break; // a cycle in a bad map
        chain.push_back(p);
    }
    for (pid_t p = b, steps = 0; p > 0 && steps < 4096; p = parent_of(p), ++steps)
        if (std::find(chain.begin(), chain.end(), p) != chain.end()) return p;
    return 0;
}

pid_t allow_peer_access(pid_t peer) noexcept {
    if (peer <= 0 || yama_ptrace_scope() != 1) return 0;
    // Per process: a forked child is not its parent's tracee-to-be (Yama's declaration is not inherited).
    struct Declared {
        std::mutex mtx;
        pid_t declared = 0;
    };
    auto& d = PerProcess<Declared>::get();
    std::lock_guard lk(d.mtx);
    pid_t& declared = d.declared;
    // The ancestor of everyone declared so far and the new peer: Yama keeps one declared ptracer per process.
    const pid_t base = declared != 0 ? declared : ::getpid();
    const pid_t anc = common_ancestor(base, peer, &parent_pid);
    if (anc == 0 || anc == declared) return declared;
    if (::prctl(PR_SET_PTRACER, static_cast<unsigned long>(anc), 0, 0, 0) == 0) declared = anc;
    return declared;
}

}  // namespace coyote::detail::sim::net
