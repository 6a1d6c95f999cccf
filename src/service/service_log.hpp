// coyote-mpi: the service's log: syslog, plus stderr (foreground) or the file COYOTE_SERVICE_LOG names.
#pragma once

namespace coyote::detail::service {

/// Opens syslog under `ident` and the extra sink; `foreground`: stderr unless a log file is set. The log file is
/// created owner-only; one that cannot be opened is an error in the foreground, a syslog line for a daemon.
void open_log(const char* ident, bool foreground);
/// printf-style message at syslog `priority`.
void log(int priority, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace coyote::detail::service
