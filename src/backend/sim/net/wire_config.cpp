// coyote-mpi sim backend: the sim-net settings (wire choice, TCP wire address, port and timeout, CMA denial,
// pull size, TCP congestion control, CPUs of the wire's threads).
#include "backend/sim/net/wire_config.hpp"

#include "backend/sim/net/tcp/congestion.hpp"
#include "backend/sim/net/tcp/wire_cpus.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim::net {

namespace {

namespace settings = ::coyote::detail::settings;
using namespace std::chrono_literals;

const settings::Choice k_wire{"COYOTE_SIM_WIRE", "sim-net", "auto", {"auto", "shm", "tcp"},
                              "wire of the emulated RDMA NIC: auto (shm when the peer shares boot, network "
                              "namespace and user, else tcp), shm or tcp"};
const settings::Text k_wire_addr{"COYOTE_SIM_WIRE_ADDR", "sim-net", "",
                                 "IPv4 address the TCP wire listens on and announces (unset: 127.0.0.1; peers "
                                 "on other hosts need an address they can reach)",
                                 settings::ipv4_problem};
const settings::Integer k_wire_port{"COYOTE_SIM_WIRE_PORT", "sim-net", 0, 0, 65535,
                                    "fixed TCP wire port (0: ephemeral)"};
const settings::Millis k_io_timeout{"COYOTE_SIM_WIRE_TIMEOUT_MS", "sim-net", 30000ms,
                                    "deadline of one frame's I/O on the TCP wire, of a peer host that acknowledges "
                                    "nothing (link down, host gone: TCP_USER_TIMEOUT, keepalive) and of dialing a "
                                    "peer (at most 10 s)"};
const settings::Flag k_deny_cma{"COYOTE_SIM_DENY_CMA", "sim-net", false,
                                "window copies of the shm wire fail as if cross-process memory access were "
                                "denied (tests)"};

const settings::Integer k_pull_min{"COYOTE_SIM_PULL_MIN", "sim-net", 16384, 0, 1LL << 40,
                                  "shm WRITEs of at least this many bytes are copied by the target's thread when it "
                                  "is polling LOCAL_WRITE (into lines its core holds), else by the initiator; 0: "
                                  "always by the initiator"};

const settings::Text k_congestion{"COYOTE_SIM_WIRE_CONGESTION", "sim-net", "auto",
                                  "TCP congestion control of the TCP wire's connections: auto (cubic, else reno: "
                                  "window-based, a burst leaves at once; a pacing algorithm such as bbr spaces it "
                                  "out), system (the host's net.ipv4.tcp_congestion_control) or an algorithm's name "
                                  "(one net.ipv4.tcp_allowed_congestion_control lists, unless CAP_NET_ADMIN)",
                                  congestion_problem};
const settings::Text k_cpus{"COYOTE_SIM_WIRE_CPUS", "sim-net", "inherit",
                            "CPUs the TCP wire's threads (coyote-wire-rx, coyote-wire-tx, coyote-accept) run on: "
                            "inherit (the rank's binding), all (every CPU the process may use, its cgroup's cpuset: "
                            "for ranks bound to one core that wait in spinning MPI calls while peers write to "
                            "them) or a CPU list such as 0-3,8",
                            wire_cpus_problem};

WireMode mode_of(const std::string& word) {
    if (word == "shm") return WireMode::shm;
    if (word == "tcp") return WireMode::tcp;
    return WireMode::automatic;
}

}  // namespace

WireConfig wire_config_from_env() {
    WireConfig c;
    c.mode = mode_of(k_wire.get());
    c.addr = k_wire_addr.get();
    c.port = static_cast<uint16_t>(k_wire_port.get());
    c.deny_cma = k_deny_cma.get();
    c.io_timeout = k_io_timeout.get();
    c.pull_min = static_cast<uint64_t>(k_pull_min.get());
    c.congestion = k_congestion.get();
    c.cpus = k_cpus.get();
    return c;
}

}  // namespace coyote::detail::sim::net
