// pycoyote: one side of a queue pair as a Python dict (shared by CoyoteThread.get_qpair and QpSet.qpair).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>

#include <pybind11/pybind11.h>

#include <coyote/cDefs.hpp>

namespace pycoyote {

/// Dotted text of a host-order IPv4 address.
inline std::string ip_string(uint32_t ip) {
    char text[INET_ADDRSTRLEN] = {0};
    const uint32_t net = htonl(ip);
    ::inet_ntop(AF_INET, &net, text, sizeof(text));
    return text;
}

/// {qpn, psn, rkey, vaddr, size, ip_addr, ip} of one side.
inline pybind11::dict qpair_side(const coyote::ibvQ& q) {
    pybind11::dict d;
    d["qpn"] = q.qpn;
    d["psn"] = q.psn;
    d["rkey"] = q.rkey;
    d["vaddr"] = reinterpret_cast<std::uintptr_t>(q.vaddr);
    d["size"] = q.size;
    d["ip_addr"] = q.ip_addr;
    d["ip"] = ip_string(q.ip_addr);
    return d;
}

/// {'local': ..., 'remote': ...}.
inline pybind11::dict qpair_dict(const coyote::ibvQp& qp) {
    pybind11::dict d;
    d["local"] = qpair_side(qp.local);
    d["remote"] = qpair_side(qp.remote);
    return d;
}

}  // namespace pycoyote
