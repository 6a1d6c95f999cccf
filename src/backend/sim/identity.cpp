#include "backend/sim/identity.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <coyote/error.hpp>

namespace coyote::detail::sim {

namespace {

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

const char* env(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    return (v != nullptr && *v != '\0') ? v : nullptr;
}

}  // namespace

NetIdentity load_net_identity(uint32_t device) {
    NetIdentity id;
    const std::string dev = std::to_string(device);
    if (const char* v = env("COYOTE_SIM_IP_" + dev)) {
        id.ip = parse_ip("COYOTE_SIM_IP_" + dev, v);
    } else if (const char* base = env("COYOTE_SIM_IP")) {
        id.ip = parse_ip("COYOTE_SIM_IP", base) + device;
    } else {
        char host[256] = {0};
        ::gethostname(host, sizeof(host) - 1);
        struct stat st {};
        uint64_t netns = 0;
        if (::stat("/proc/self/ns/net", &st) == 0) netns = st.st_ino;
        const uint64_t h = fnv1a(std::string(host) + "/" + std::to_string(netns));
        id.ip = (10u << 24) | (static_cast<uint32_t>(h & 0xff) << 16) | (static_cast<uint32_t>((h >> 8) & 0xff) << 8) |
                ((device % 254u) + 1u);
    }
    if (const char* v = env("COYOTE_SIM_MAC_" + dev))
        id.mac = parse_mac("COYOTE_SIM_MAC_" + dev, v);
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
