// coyote-mpi: cRcnfg: read and check a bitstream, take the device's loader lock, hand it to the backend.
#include <coyote/cRcnfg.hpp>

#include <sys/file.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "backend/device.hpp"
#include "detail/handles.hpp"
#include "detail/settings.hpp"
#include "rcnfg/bitstream_file.hpp"
#include "rcnfg/targets.hpp"

namespace coyote {

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Millis k_loader_timeout{"COYOTE_RCNFG_TIMEOUT_MS", "runtime", std::chrono::milliseconds(600000),
                                       "how long a reconfiguration waits for another loader of the device (of this "
                                       "user) to finish"};

/// One loader at a time per device among a user's processes: flock on an owner-only lock file of that user
/// (released on exit), which holds the pid of its holder for the message of a waiter that gives up. Per user: a
/// file every user shares would let the first to create it block the others.
class LoaderLock {
public:
    explicit LoaderLock(unsigned int device) {
        const std::string path =
            "/tmp/coyote-rcnfg-u" + std::to_string(::geteuid()) + "-dev-" + std::to_string(device) + ".lock";
        // Never another user's file at the name (he could hold its flock and stall every reconfiguration), a
        // symbolic link or a FIFO: open_own_file refuses them, naming the owner.
        fd_ = detail::open_own_file(path, "cRcnfg: the loader lock");
        const auto deadline = std::chrono::steady_clock::now() + k_loader_timeout.get();
        for (auto nap = std::chrono::milliseconds(1);; nap = std::min(nap * 2, std::chrono::milliseconds(50))) {
            if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) break;
            if (errno != EWOULDBLOCK && errno != EINTR)
                throw_error(Errc::invalid_argument, "cRcnfg", "flock " + path + ": " + std::strerror(errno));
            if (std::chrono::steady_clock::now() >= deadline)
                throw_error(Errc::timeout, "cRcnfg",
                            "another reconfiguration of device " + std::to_string(device) + " (" + holder() +
                                ") did not finish within COYOTE_RCNFG_TIMEOUT_MS");
            std::this_thread::sleep_for(nap);
        }
        const std::string me = std::to_string(::getpid());
        if (::ftruncate(fd_.get(), 0) == 0) (void)!::pwrite(fd_.get(), me.data(), me.size(), 0);
    }

private:
    std::string holder() const {
        char buf[16] = {};
        const ssize_t n = ::pread(fd_.get(), buf, sizeof(buf) - 1, 0);
        return n > 0 ? "held by pid " + std::string(buf, static_cast<size_t>(n)) : "its holder is unknown";
    }

    detail::Fd fd_; // closing it releases the lock
};

bool on_sim(unsigned int device) { return detail::selected_backend(device, 0) == "sim"; }

}  // namespace

namespace detail::rcnfg {

void check_vfid(uint32_t device, int32_t vfid, const char* call) {
    if (vfid < 0) throw_error(Errc::invalid_argument, call, "vfid must be >= 0, got " + std::to_string(vfid));
    if (on_sim(device)) return check_vfid_sim(device, vfid, call);
    const std::string file = device_file(device, vfid);
    if (::access(file.c_str(), F_OK) != 0)
        throw_error(Errc::no_device, call,
                    "vFPGA " + std::to_string(vfid) + " of device " + std::to_string(device) + ": no " + file +
                        " (the shell has fewer vFPGAs, or the Coyote driver is not loaded)");
}

}  // namespace detail::rcnfg

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
    detail::rcnfg::check_vfid(device_, vfid, "cRcnfg"); // the hw driver loads into any region number it is given
    load(readBitstreamFile(bitstream_path), vfid, bitstream_path);
}

void cRcnfg::reconfigureAppBytes(const std::vector<char>& bitstream, int vfid, const std::string& origin) {
    detail::rcnfg::check_vfid(device_, vfid, "cRcnfg");
    load(bitstream, vfid, origin);
}

}  // namespace coyote
