// coyote-mpi: the service log: every line to syslog and to stderr or a log file, so failures are visible.
#include "service/service_log.hpp"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

#include <coyote/error.hpp>

#include "detail/handles.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::service {

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Text k_log_file{"COYOTE_SERVICE_LOG", "service", "",
                                "file the background service appends its log to, besides syslog (unset: stderr "
                                "in the foreground, nothing extra as a daemon)"};

std::mutex g_mtx;
FILE* g_sink = nullptr;
std::string g_ident = "coyote-service"; // syslog keeps the pointer

}  // namespace

void open_log(const char* ident, bool foreground) {
    std::lock_guard lk(g_mtx);
    g_ident = ident;
    ::openlog(g_ident.c_str(), LOG_NDELAY | LOG_PID, LOG_USER);
    if (g_sink != nullptr && g_sink != stderr) std::fclose(g_sink);
    g_sink = nullptr;
    if (k_log_file.is_set()) {
        // Owner-only when created here: the log names clients, their addresses and why their tasks failed.
        const std::string path = k_log_file.get();
        // Never another user's file (he would read the log) nor through his link.
        std::string foreign;
        detail::Fd fd = detail::open_output_file(path, O_APPEND, foreign);
        if (fd && (g_sink = ::fdopen(fd.get(), "a")) != nullptr) (void)fd.release(); // the stream owns it now
        if (g_sink == nullptr) {
            const int e = errno;
            fd.reset();
            const std::string why = "COYOTE_SERVICE_LOG=" + path + ": the service cannot open its log file" +
                                    (foreign.empty() ? std::string() : " (" + foreign + ")");
            ::syslog(LOG_ERR, "%s: %s", why.c_str(), std::strerror(e));
            // A daemon has no one to throw to (its starter returned): it logs to syslog only.
            if (foreground) throw Error(std::error_code(e, std::generic_category()), "open", why);
        }
    } else if (foreground) {
        g_sink = stderr;
    }
}

void log(int priority, const char* fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ::syslog(priority, "%s", line);
    std::lock_guard lk(g_mtx);
    if (g_sink != nullptr) {
        std::fprintf(g_sink, "%s[%d]: %s\n", g_ident.c_str(), static_cast<int>(::getpid()), line);
        std::fflush(g_sink);
    }
}

}  // namespace coyote::detail::service
