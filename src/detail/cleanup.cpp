// coyote-mpi: the signal-safe cleanup registry: fixed tables, getdents64 and unlinkat in the handler, chained
// to the previous handlers.
#include "detail/cleanup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <atomic>
#include <cstring>
#include <mutex>

#include <coyote/error.hpp>

#include "detail/per_process.hpp"

namespace coyote::detail {

namespace {

constexpr size_t k_max_prefixes = 8;
constexpr size_t k_max_prefix = 128;
constexpr std::array<int, 3> k_signals = {SIGTERM, SIGINT, SIGHUP};

/// One registered prefix; `owner` is the pid that registered it (a forked child does not act on it).
struct Entry {
    std::atomic<pid_t> owner{0};
    char prefix[k_max_prefix] = {};
};

std::array<Entry, k_max_prefixes> g_entries;
std::atomic<size_t> g_count{0};
std::array<struct sigaction, k_signals.size()> g_previous{};

/// Serialises registrations. Fresh in a forked child: a thread of the parent may have held it at the fork.
struct RegistrationLock {
    std::mutex mtx;
};
std::mutex& registration_mutex() { return PerProcess<RegistrationLock>::get().mtx; }

size_t signal_index(int sig) noexcept {
    for (size_t i = 0; i < k_signals.size(); ++i)
        if (k_signals[i] == sig) return i;
    return 0;
}

bool starts_with(const char* name, const char* prefix) noexcept {
    for (; *prefix != '\0'; ++prefix, ++name)
        if (*name != *prefix) return false;
    return true;
}

/// One pass over the directory `dir`: unlinks the names of this process's prefixes, counting them in `removed`.
void remove_pass(int dir, char* buf, size_t size, pid_t me, size_t& removed) noexcept {
    struct Dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
    };
    for (;;) {
        const long n = ::syscall(SYS_getdents64, dir, buf, size);
        if (n <= 0) return;
        for (long off = 0; off < n;) {
            const auto* d = reinterpret_cast<const Dirent64*>(buf + off);
            off += d->reclen;
            const size_t count = g_count.load();
            for (size_t i = 0; i < count; ++i) {
                if (g_entries[i].owner.load() != me || !starts_with(d->name, g_entries[i].prefix)) continue;
                if (::unlinkat(dir, d->name, 0) == 0) ++removed;
                break;
            }
        }
    }
}

void on_signal(int sig, siginfo_t* info, void* ctx) {
    const int saved = errno;
    const struct sigaction& prev = g_previous[signal_index(sig)];
    if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
        prev.sa_sigaction(sig, info, ctx); // the previous handler decides; our segments stay if it returns
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler != nullptr) {
        prev.sa_handler(sig);
    } else {
        // The default action ends the process: remove our names first, then die of the same signal.
        (void)unlink_registered();
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);
        ::raise(sig);
    }
    errno = saved;
}

void install_handlers() {
    for (size_t i = 0; i < k_signals.size(); ++i) {
        struct sigaction prev {};
        if (::sigaction(k_signals[i], nullptr, &prev) != 0) continue;
        if ((prev.sa_flags & SA_SIGINFO) == 0 && prev.sa_handler == SIG_IGN) continue; // stays ignored
        if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction == &on_signal) continue; // ours (inherited)
        g_previous[i] = prev;
        struct sigaction mine {};
        mine.sa_sigaction = &on_signal;
        mine.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&mine.sa_mask);
        ::sigaction(k_signals[i], &mine, nullptr);
    }
}

}  // namespace

void unlink_on_signal(const std::string& prefix) {
    if (prefix.empty() || prefix.size() >= k_max_prefix || prefix.find('/') != std::string::npos)
        throw_error(Errc::invalid_argument, "unlink_on_signal",
                    "cleanup prefix '" + prefix + "' must be 1.." + std::to_string(k_max_prefix - 1) +
                        " bytes without '/'");
    const pid_t me = ::getpid();
    std::lock_guard lk(registration_mutex());
    static pid_t installed_for = 0;
    size_t n = g_count.load();
    for (size_t i = 0; i < n; ++i)
        if (g_entries[i].owner.load() == me && prefix == g_entries[i].prefix) return;
    // Entries of a parent (before fork) are reused.
    size_t slot = n;
    for (size_t i = 0; i < n && slot == n; ++i)
        if (g_entries[i].owner.load() != me) slot = i;
    if (slot == k_max_prefixes)
        throw_error(Errc::resource_exhausted, "unlink_on_signal",
                    "more than " + std::to_string(k_max_prefixes) + " cleanup prefixes in one process");
    g_entries[slot].owner.store(0);
    std::memcpy(g_entries[slot].prefix, prefix.c_str(), prefix.size() + 1);
    g_entries[slot].owner.store(me);
    if (slot == n) g_count.store(n + 1);
    if (installed_for != me) {
        // Once per process; a forked child keeps the handlers it inherited unless it replaced them.
        install_handlers();
        installed_for = me;
    }
}

std::size_t unlink_registered(const char* shm_dir) noexcept {
    const pid_t me = ::getpid();
    const int dir = ::open(shm_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
    size_t removed = 0;
    alignas(8) char buf[4096];
    // Entries removed while the directory is read may hide others from the same pass: read it again until a
    // pass removes nothing (a few at most).
    for (size_t pass = 0, before = SIZE_MAX; pass < 8 && before != removed; ++pass) {
        before = removed;
        (void)::lseek(dir, 0, SEEK_SET);
        remove_pass(dir, buf, sizeof(buf), me, removed);
    }
    ::close(dir);
    return removed;
}

}  // namespace coyote::detail
