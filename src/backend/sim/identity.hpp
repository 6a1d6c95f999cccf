// coyote-mpi sim backend: the network identity (IP and MAC address) of a simulated FPGA.
//
// Default IP: 10.<h>.<h2>.<device+1>, h and h2 from a hash of the host name and the network namespace,
// so the devices of one host differ and hosts differ. Overrides:
//   COYOTE_SIM_IP_<device>=a.b.c.d   the IP of that device;
//   COYOTE_SIM_IP=a.b.c.d            the IP of device 0, device n gets a.b.c.d + n;
//   COYOTE_SIM_MAC_<device>=aa:bb:cc:dd:ee:ff   the MAC of that device.
// Default MAC: 02:00:<the four IP bytes> (locally administered).
#pragma once

#include <cstdint>
#include <string>

namespace coyote::detail::sim {

struct NetIdentity {
    uint32_t ip = 0;  ///< host byte order, as ibvQ::ip_addr
    uint64_t mac = 0; ///< the 6 bytes in the low 48 bits, first byte most significant
};

/// The identity of sim device `device` (environment overrides applied; throws invalid_argument on
/// malformed overrides).
NetIdentity load_net_identity(uint32_t device);

/// "a.b.c.d" of a host-order IP.
std::string ip_to_string(uint32_t ip);
/// "aa:bb:cc:dd:ee:ff" of a MAC.
std::string mac_to_string(uint64_t mac);

}  // namespace coyote::detail::sim
