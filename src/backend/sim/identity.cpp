// coyote-mpi sim backend: the IP and MAC address of a sim device, from the environment or a host hash.
#include "backend/sim/identity.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <coyote/error.hpp>

#include "detail/settings.hpp"

namespace coyote::detail::sim {

namespace {

namespace settings = ::coyote::detail::settings;

std::optional<std::string> mac_problem(const std::string& value);

const settings::Text k_ip_of{"COYOTE_SIM_IP_<device>", "sim", "",
                             "IPv4 address a.b.c.d of the sim device numbered by the suffix (overrides COYOTE_SIM_IP)",
                             settings::ipv4_problem};
const settings::Text k_ip_base{"COYOTE_SIM_IP", "sim", "",
                               "IPv4 address a.b.c.d of sim device 0, device n gets it + n (unset: 10.x.y.(n+1) for n "
                               "< 254, then 10.x.(y+1).(n-253), x and y from a hash of the host name and network "
                               "namespace)",
                               settings::ipv4_problem};
const settings::Text k_mac_of{"COYOTE_SIM_MAC_<device>", "sim", "",
                              "MAC address aa:bb:cc:dd:ee:ff of the sim device numbered by the suffix (unset: 02:00 "
                              "followed by the four IP bytes)",
                              mac_problem};

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t parse_ip(const std::string& var, const std::string& v) {
    in_addr a{};
    if (::inet_pton(AF_INET, v.c_str(), &a) != 1)
        throw_error(Errc::invalid_argument, var, "'" + v + "' is not an IPv4 address (expected a.b.c.d)");
    return ntohl(a.s_addr);
}

uint64_t parse_mac(const std::string& var, const std::string& v) {
    unsigned b[6];
    char tail = 0;
    if (std::sscanf(v.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        throw_error(Errc::invalid_argument, var, "'" + v + "' is not a MAC address (expected aa:bb:cc:dd:ee:ff)");
    uint64_t mac = 0;
    for (unsigned x : b) mac = (mac << 8) | x;
    return mac;
}

std::optional<std::string> mac_problem(const std::string& value) {
    if (!settings::problem_of([&] { (void)parse_mac("", value); })) return std::nullopt;
    return "not a MAC address (expected aa:bb:cc:dd:ee:ff)";
}

/// The default IP of `device`: 10.<h>.<h2>.<device+1>, h and h2 from the host name and network namespace.
uint32_t hashed_ip(uint32_t device) {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    struct stat st {};
    uint64_t netns = 0;
    if (::stat("/proc/self/ns/net", &st) == 0) netns = st.st_ino;
    const uint64_t h = fnv1a(std::string(host) + "/" + std::to_string(netns));
    // Host part 1..254; devices past 253 continue in the next /24, so no two devices of a host share an address.
    const uint32_t third = (static_cast<uint32_t>((h >> 8) & 0xff) + device / 254u) & 0xff;
    return (10u << 24) | (static_cast<uint32_t>(h & 0xff) << 16) | (third << 8) | ((device % 254u) + 1u);
}

}  // namespace

NetIdentity load_net_identity(uint32_t device) {
    NetIdentity id;
    const std::string dev = std::to_string(device);
    if (const auto v = k_ip_of.raw(dev))
        id.ip = parse_ip(k_ip_of.name(dev), *v);
    else if (const auto base = k_ip_base.raw()) {
        const uint64_t ip = uint64_t{parse_ip(k_ip_base.name(), *base)} + device;
        if (ip > 0xffffffffULL)
            throw_error(Errc::invalid_argument, "environment variable",
                        k_ip_base.name() + "='" + *base + "': device " + dev + " would get an address past "
                        "255.255.255.255 (device n gets the address + n)");
        id.ip = static_cast<uint32_t>(ip);
    }
    else
        id.ip = hashed_ip(device);
    if (const auto v = k_mac_of.raw(dev))
        id.mac = parse_mac(k_mac_of.name(dev), *v);
    else
        id.mac = (0x0200ULL << 32) | id.ip;
    return id;
}

std::string ip_to_string(uint32_t ip) {
    return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." + std::to_string((ip >> 8) & 0xff) +
           "." + std::to_string(ip & 0xff);
}

std::string mac_to_string(uint64_t mac) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", unsigned((mac >> 40) & 0xff),
                  unsigned((mac >> 32) & 0xff), unsigned((mac >> 24) & 0xff), unsigned((mac >> 16) & 0xff),
                  unsigned((mac >> 8) & 0xff), unsigned(mac & 0xff));
    return buf;
}

}  // namespace coyote::detail::sim
