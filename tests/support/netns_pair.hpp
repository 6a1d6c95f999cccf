// NetnsPair: two network namespaces joined by a veth pair, for tests that need two "hosts" (root and iproute2).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace coyote_test {

namespace netns_detail {
inline int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
}  // namespace netns_detail

/// Two namespaces A and B with a veth pair 10.233.<n>.1 <-> 10.233.<n>.2; removed in the destructor.
class NetnsPair {
public:
    NetnsPair() {
        const auto id = static_cast<unsigned>(::getpid());
        a_ = "cyrdma" + std::to_string(id) + "a";
        b_ = "cyrdma" + std::to_string(id) + "b";
        va_ = "cyv" + std::to_string(id % 100000) + "a";
        vb_ = "cyv" + std::to_string(id % 100000) + "b";
        const std::string &va = va_, &vb = vb_;
        const std::string net = "10.233." + std::to_string(id % 250) + ".";
        ip_a_ = net + "1";
        ip_b_ = net + "2";
        if (::geteuid() != 0) {
            why_ = "network namespaces need root";
            return;
        }
        if (netns_detail::sh("ip -V") != 0) {
            why_ = "iproute2 (ip) is not installed";
            return;
        }
        const std::string steps[] = {
            "ip netns add " + a_,
            "ip netns add " + b_,
            "ip link add " + va + " type veth peer name " + vb,
            "ip link set " + va + " netns " + a_,
            "ip link set " + vb + " netns " + b_,
            "ip -n " + a_ + " addr add " + ip_a_ + "/24 dev " + va,
            "ip -n " + b_ + " addr add " + ip_b_ + "/24 dev " + vb,
            "ip -n " + a_ + " link set " + va + " up",
            "ip -n " + b_ + " link set " + vb + " up",
            "ip -n " + a_ + " link set lo up",
            "ip -n " + b_ + " link set lo up",
        };
        for (const auto& s : steps)
            if (netns_detail::sh(s) != 0) {
                why_ = "'" + s + "' failed (no permission to create namespaces or veth devices?)";
                return;
            }
        ok_ = true;
    }
    ~NetnsPair() {
        (void)netns_detail::sh("ip netns del " + a_);
        (void)netns_detail::sh("ip netns del " + b_);
        if (!va_.empty()) (void)netns_detail::sh("ip link del " + va_); // set-up stopped before it moved the pair
    }
    bool ok() const { return ok_; }
    const std::string& why() const { return why_; }
    const std::string& a() const { return a_; }
    const std::string& b() const { return b_; }
    const std::string& ip_a() const { return ip_a_; }
    const std::string& ip_b() const { return ip_b_; }
    /// The veth ends in A and in B (a process inside B takes its link down with `ip link set <veth_b> down`).
    const std::string& veth_a() const { return va_; }
    const std::string& veth_b() const { return vb_; }

    /// Moves the calling (single-threaded, forked) process into namespace `name`.
    static void enter(const std::string& name) {
        const int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("cannot enter netns " + name);
        ::close(fd);
    }

private:
    std::string a_, b_, ip_a_, ip_b_, va_, vb_, why_;
    bool ok_ = false;
};

}  // namespace coyote_test
