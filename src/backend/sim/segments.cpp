// coyote-mpi sim backend: shm segment names, the segments this process owns, and reclaiming those of dead processes.
#include "backend/sim/segments.hpp"

#include "detail/cleanup.hpp"

#include <dirent.h>
#include <poll.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "backend/sim/shared_state.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim {

namespace {

constexpr const char* k_base = "coyote-sim.";

/// The leading fields of SharedState, read from a segment file without mapping it.
struct StateHead {
    uint64_t magic;
    uint32_t version;
    int32_t owner_pid;
    uint64_t owner_start_time;
};
static_assert(offsetof(SharedState, magic) == offsetof(StateHead, magic));
static_assert(offsetof(SharedState, owner_pid) == offsetof(StateHead, owner_pid));
static_assert(offsetof(SharedState, owner_start_time) == offsetof(StateHead, owner_start_time));

bool parse_u64(const std::string& s, uint64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

/// Boot time in seconds since the epoch (/proc/stat btime); 0 if unknown.
uint64_t boot_time() noexcept {
    try {
        std::ifstream in("/proc/stat");
        std::string key;
        while (in >> key) {
            if (key == "btime") {
                uint64_t v = 0;
                in >> v;
                return v;
            }
            in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        }
    } catch (...) {
    }
    return 0;
}

bool read_state_head(const std::string& path, StateHead& head) noexcept {
    // Never blocks on a FIFO nor follows a link put at the name; only a segment of this user tells anything.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd || !foreign_file_reason(fd.get(), path).empty()) return false;
    const ssize_t n = ::pread(fd.get(), &head, sizeof(head), 0);
    return n == static_cast<ssize_t>(sizeof(head)) && head.magic == k_state_magic;
}

/// Names to unlink at exit, and the process that created them.
struct Tracked {
    std::mutex mtx;
    std::set<std::string> names;
    pid_t owner = 0;
};
Tracked& tracked() {
    static auto* t = new Tracked(); // never destroyed: used from the exit handler
    return *t;
}

void unlink_tracked_at_exit() noexcept {
    Tracked& t = tracked();
    std::lock_guard lk(t.mtx);
    if (t.owner != ::getpid()) return; // a forked child: the names are its parent's
    for (const auto& n : t.names) ::shm_unlink(n.c_str());
    t.names.clear();
}

}  // namespace

void track_segment(const std::string& name) {
    static std::once_flag once;
    std::call_once(once, [] { std::atexit(unlink_tracked_at_exit); });
    // SIGTERM / SIGINT / SIGHUP: every segment of this process (its pid is in the names) goes too.
    unlink_on_signal(segment_prefix().substr(1) + ".");
    Tracked& t = tracked();
    std::lock_guard lk(t.mtx);
    if (t.owner != ::getpid()) {
        t.names.clear(); // inherited from the parent across fork()
        t.owner = ::getpid();
    }
    t.names.insert(name);
}

void untrack_segment(const std::string& name) noexcept {
    Tracked& t = tracked();
    std::lock_guard lk(t.mtx);
    if (t.owner == ::getpid()) t.names.erase(name);
}

std::string segment_prefix() { return segment_prefix(::getpid()); }

std::string segment_prefix(pid_t pid) {
    return "/" + std::string(k_base) + std::to_string(::getuid()) + "." + std::to_string(pid);
}

std::string vfpga_segment_prefix(uint32_t device, int32_t vfid) {
    return segment_prefix() + ".d" + std::to_string(device) + "v" + std::to_string(vfid);
}

std::string state_segment_name(uint32_t device, int32_t vfid) {
    return vfpga_segment_prefix(device, vfid) + ".state";
}

namespace {

/// True when /proc/<pid>/stat shows state Z (exited, not reaped).
bool is_zombie(pid_t pid) noexcept {
    try {
        std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(in, line);
        const auto rp = line.rfind(')');
        return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] == 'Z';
    } catch (...) {
        return false;
    }
}

}  // namespace

uint64_t process_start_time(pid_t pid) noexcept {
    try {
        std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
        if (!in) return 0;
        std::string line;
        std::getline(in, line);
        const auto rp = line.rfind(')');
        if (rp == std::string::npos) return 0;
        std::istringstream fields(line.substr(rp + 1));
        std::string f;
        // Fields after the command name start at field 3; starttime is field 22.
        for (int i = 3; i <= 22; ++i)
            if (!(fields >> f)) return 0;
        uint64_t v = 0;
        return parse_u64(f, v) ? v : 0;
    } catch (...) {
        return 0;
    }
}

bool process_alive(pid_t pid, uint64_t start_time) noexcept {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno != EPERM) return false;
    if (is_zombie(pid)) return false; // exited, not yet reaped (e.g. an MPI rank whose launcher is gone)
    if (start_time == 0) return true;
    const uint64_t now = process_start_time(pid);
    return now == 0 || now == start_time; // unreadable /proc: assume it is still the owner
}

Fd open_process_fd(pid_t pid, uint64_t start_time) noexcept {
#ifdef SYS_pidfd_open
    if (pid <= 0) return Fd();
    Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    // The pid may have been reused before the open: the start time, read after it, tells.
    if (fd && !process_alive(pid, start_time)) return Fd();
    return fd;
#else
    (void)pid;
    (void)start_time;
    return Fd();
#endif
}

bool process_exited(const Fd& pidfd) noexcept {
    pollfd p{pidfd.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, 0);
    return n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0;
}

std::size_t reclaim_stale_segments(const std::string& shm_dir) noexcept {
    std::size_t removed = 0;
    try {
        const std::string mine = std::string(k_base) + std::to_string(::getuid()) + ".";
        std::map<pid_t, std::vector<std::string>> by_pid;
        DIR* dir = ::opendir(shm_dir.c_str());
        if (dir == nullptr) return 0;
        while (const dirent* e = ::readdir(dir)) {
            const std::string name(e->d_name);
            if (name.compare(0, mine.size(), mine) != 0) continue;
            const auto dot = name.find('.', mine.size());
            if (dot == std::string::npos) continue;
            uint64_t pid = 0;
            if (!parse_u64(name.substr(mine.size(), dot - mine.size()), pid) || pid == 0 || pid > 0x7fffffff) continue;
            by_pid[static_cast<pid_t>(pid)].push_back(name);
        }
        ::closedir(dir);

        const long ticks = ::sysconf(_SC_CLK_TCK);
        const uint64_t btime = boot_time();
        for (const auto& [pid, names] : by_pid) {
            const bool dead = (::kill(pid, 0) != 0 && errno == ESRCH) || is_zombie(pid); // a zombie runs no more
            const uint64_t started = dead ? 0 : process_start_time(pid);
            if (!dead && started == 0) continue; // cannot tell: leave it alone
            const uint64_t owner_since = (btime != 0 && ticks > 0) ? btime + started / static_cast<uint64_t>(ticks) : 0;
            for (const auto& n : names) {
                const std::string path = shm_dir + "/" + n;
                struct stat own {};
                // Another user's object at a name of ours is not ours to remove (nor a leftover of ours).
                if (::lstat(path.c_str(), &own) != 0 || own.st_uid != ::geteuid()) continue;
                bool stale = dead;
                StateHead head{};
                if (stale) {
                } else if (n.size() > 6 && n.compare(n.size() - 6, 6, ".state") == 0 && read_state_head(path, head) &&
                           head.owner_pid == pid) {
                    stale = head.owner_start_time != started; // the pid now belongs to another process
                } else if (owner_since != 0) {
                    // No header to ask: a segment older than the process holding its pid is a leftover.
                    struct stat st {};
                    stale = ::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_ctime) + 1 < owner_since;
                }
                if (stale && ::unlink(path.c_str()) == 0) ++removed;
            }
        }
    } catch (...) {
    }
    return removed;
}

}  // namespace coyote::detail::sim
