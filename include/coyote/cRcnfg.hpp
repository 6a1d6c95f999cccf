// coyote-mpi: cRcnfg, shell and application (vFPGA) reconfiguration from bitstream files (Coyote v0.2.x).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <coyote/cDefs.hpp>
#include <coyote/cOps.hpp>
#include <coyote/error.hpp>

namespace coyote {

/// Bitstream in memory: address and length.
using bitstream_t = std::pair<void*, uint32_t>;

/// Loads bitstreams into one FPGA device: the whole shell or the application of one vFPGA. On hw through the
/// driver's reconfiguration device; on sim a "sim bitstream" (coyote-sim-bitstream) swaps the user-logic model
/// or changes the emulated shell. One loader at a time per device (across processes). Errors throw coyote::Error.
class cRcnfg {
public:
    /// Reconfiguration of FPGA `device`.
    cRcnfg(unsigned int device = 0);
    virtual ~cRcnfg();
    cRcnfg(const cRcnfg&) = delete;
    cRcnfg& operator=(const cRcnfg&) = delete;

    /// Loads the shell bitstream at `bitstream_path` (blocks until done).
    void reconfigureShell(std::string bitstream_path);
    /// Loads the application bitstream at `bitstream_path` into vFPGA `vfid` (blocks until done).
    void reconfigureApp(std::string bitstream_path, int vfid);

    // ---- coyote-mpi extensions ----
    /// Loads an application bitstream already in memory (as read by readBitstreamFile) into vFPGA `vfid`;
    /// `origin` names it in errors.
    void reconfigureAppBytes(const std::vector<char>& bitstream, int vfid, const std::string& origin);
    /// Reads and checks a bitstream file (missing, empty, oversized, truncated or wrong format: coyote::Error).
    std::vector<char> readBitstreamFile(const std::string& bitstream_path) const;
    /// Reconfigurations this object made.
    uint64_t getReconfigurationCount() const { return count_.load(); }
    /// Device number.
    unsigned int getDevice() const { return device_; }

private:
    void load(const std::vector<char>& bits, int vfid, const std::string& origin);

    unsigned int device_;
    std::atomic<uint64_t> count_{0};
};

}  // namespace coyote
