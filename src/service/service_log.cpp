// coyote-mpi: the service log: every line to syslog and to stderr or a log file, so failures are visible.
#include "service/service_log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

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
    if (k_log_file.is_set()) g_sink = std::fopen(k_log_file.get().c_str(), "ae");
    else if (foreground) g_sink = stderr;
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
