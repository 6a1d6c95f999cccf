// coyote-mpi: cService, the background service that runs registered functions on one vFPGA for client
// processes connecting over a Unix socket (Coyote v0.2.x compatible; see docs/service.md).
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <coyote/cFunc.hpp>
#include <coyote/cSched.hpp>
#include <coyote/cThread.hpp>

namespace coyote {

/// A service for vFPGA `vfid` of `device`, named `name`; local clients connect to
/// /tmp/coyote-daemon-dev-<device>-vfid-<vfid>-<name>. One instance per (device, vFPGA).
class cService {
public:
    /// The service of (device, vfid), created on first use with these parameters. A name with '/' or control
    /// characters, or a vFPGA the device lacks, is a coyote::Error.
    static cService* getInstance(std::string name, bool remote, int32_t vfid, uint32_t device = 0,
                                 bool reorder = true, uint16_t port = DEF_PORT);

    /// Turns the process into a daemon (unless COYOTE_SERVICE_FOREGROUND=1) and serves until SIGTERM. When it
    /// cannot serve (the socket is taken, a setting is malformed), the daemon exits with EXIT_FAILURE after logging
    /// why; in the foreground the coyote::Error is thrown.
    void start();
    /// Registers a function: 0 ok, 1 bitstream unreadable, 2 duplicate id, 3 (coyote-mpi) its arguments exceed
    /// COYOTE_SERVICE_MAX_REQUEST.
    int addFunction(std::unique_ptr<bFunc> fn);

    // ---- coyote-mpi extensions ----
    /// Serves in the calling thread until stop() (foreground; no fork, no signal handler).
    void run();
    /// Makes run() return: stops accepting, fails queued tasks of this service, closes its clients.
    void stop();
    /// Whether run() is serving (the socket is listening).
    bool isRunning() const;
    /// Path of the Unix socket.
    std::string getSocketPath() const;
    /// The scheduler of this service's vFPGA.
    cSched* getScheduler() const;
    /// Destroys the instance of (device, vfid) (it must not be running).
    static void releaseInstance(int32_t vfid, uint32_t device = 0);

    ~cService();
    cService(const cService&) = delete;
    cService& operator=(const cService&) = delete;

private:
    cService(std::string name, bool remote, int32_t vfid, uint32_t device, bool reorder, uint16_t port);
    class Impl;
    std::unique_ptr<Impl> impl;
};

}  // namespace coyote
