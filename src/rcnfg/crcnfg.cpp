// coyote-mpi: cRcnfg: read and check a bitstream, take the device's loader lock, hand it to the backend.
#include <coyote/cRcnfg.hpp>

#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "backend/device.hpp"
#include "detail/handles.hpp"
#include "rcnfg/bitstream_file.hpp"
#include "rcnfg/targets.hpp"

namespace coyote {

namespace {

/// One loader at a time per device, across processes: flock on an owner-only lock file (released on exit).
class LoaderLock {
public:
    explicit LoaderLock(unsigned int device) {
        const std::string path = "/tmp/coyote-rcnfg-dev-" + std::to_string(device) + ".lock";
        fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd_)
            throw_error(Errc::invalid_argument, "cRcnfg",
                        "cannot open the loader lock " + path + ": " + std::strerror(errno));
        int rc;
        do rc = ::flock(fd_.get(), LOCK_EX);
        while (rc != 0 && errno == EINTR);
        if (rc != 0) throw_error(Errc::invalid_argument, "cRcnfg", "flock " + path + ": " + std::strerror(errno));
    }

private:
    detail::Fd fd_; // closing it releases the lock
};

bool on_sim(unsigned int device) { return detail::selected_backend(device, 0) == "sim"; }

}  // namespace

cRcnfg::cRcnfg(unsigned int device) : device_(device) {}

cRcnfg::~cRcnfg() = default;

std::vector<char> cRcnfg::readBitstreamFile(const std::string& bitstream_path) const {
    const bool sim = on_sim(device_);
    auto bytes = detail::rcnfg::read_file_checked(
        bitstream_path, sim ? detail::rcnfg::k_max_sim_bitstream : detail::rcnfg::k_max_hw_bitstream);
    if (sim) detail::rcnfg::decode_sim_bitstream(bytes, bitstream_path);
    else detail::rcnfg::check_hw_bitstream(bytes, bitstream_path);
    return bytes;
}

void cRcnfg::load(const std::vector<char>& bits, int vfid, const std::string& origin) {
    LoaderLock lock(device_);
    if (on_sim(device_)) detail::rcnfg::load_sim(device_, vfid, bits, origin);
    else detail::rcnfg::load_hw(device_, vfid, bits, origin);
    ++count_;
}

void cRcnfg::reconfigureShell(std::string bitstream_path) {
    load(readBitstreamFile(bitstream_path), -1, bitstream_path);
}

void cRcnfg::reconfigureApp(std::string bitstream_path, int vfid) {
    if (vfid < 0) throw_error(Errc::invalid_argument, "cRcnfg", "vfid must be >= 0, got " + std::to_string(vfid));
    load(readBitstreamFile(bitstream_path), vfid, bitstream_path);
}

void cRcnfg::reconfigureAppBytes(const std::vector<char>& bitstream, int vfid, const std::string& origin) {
    if (vfid < 0) throw_error(Errc::invalid_argument, "cRcnfg", "vfid must be >= 0, got " + std::to_string(vfid));
    load(bitstream, vfid, origin);
}

}  // namespace coyote
