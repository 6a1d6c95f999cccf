// coyote-mpi diagnostics: blocking waits inside the runtime that poll no completion counter (the out-of-band
// exchange, the vFPGA lock) watched by the stall doctor: after COYOTE_STALL_WARN_MS a report on stderr of what is
// waited for, on whom, since when and the likeliest cause, then again with back-off. One watchdog thread per
// process, started by the first watched wait.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace coyote::detail::diag {

/// One blocking wait, watched while the object lives (RAII; not copyable). Costs a registry insertion and removal
/// (a mutex, a condition variable); use around waits that block, not on data paths.
class WaitWatch {
public:
    /// Reads the likeliest cause at report time on the watchdog thread (empty: keep the last cause set). It must be
    /// thread-safe against the waiting thread and not block.
    using Probe = std::function<std::string()>;

    /// `what`: what is waited for and on whom ("a client on port 18488"); `call`: the API call that waits
    /// ("initRDMA (out-of-band server)"); `cause`: the likeliest cause until set_cause() or `probe` says better.
    /// With COYOTE_STALL_WARN_MS=0 nothing is registered.
    WaitWatch(std::string call, std::string what, std::string cause, Probe probe = {});
    ~WaitWatch();
    WaitWatch(const WaitWatch&) = delete;
    WaitWatch& operator=(const WaitWatch&) = delete;

    /// Replaces the likeliest cause (thread-safe).
    void set_cause(std::string cause);

private:
    uint64_t id_ = 0; ///< 0: not registered
};

/// The waits in progress in this process, one report each (empty when none): for SIGUSR1 and printDebug.
std::string describe_waits();

}  // namespace coyote::detail::diag
