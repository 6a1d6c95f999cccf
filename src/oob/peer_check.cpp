// coyote-mpi: checks of a peer's queue pair message before the out-of-band server answers it.
#include "oob/peer_check.hpp"

#include <coyote/cDefs.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <cctype>
#include <chrono>
#include <cstring>
#include <thread>

#include "backend/device.hpp"

namespace coyote::detail {

std::string check_ibvq_bytes(std::span<const std::byte> message) {
    if (message.size() < sizeof(ibvQ))
        return "its message has " + std::to_string(message.size()) + " bytes, less than an ibvQ (" +
               std::to_string(sizeof(ibvQ)) + ")";
    ibvQ q;
    std::memcpy(static_cast<void*>(&q), message.data(), sizeof(ibvQ));
    if (q.ip_addr == 0) return "its ibvQ carries no IP address";
    if ((q.qpn >> 24) != 0) return "its qpn " + std::to_string(q.qpn) + " does not fit 24 bits";
    if ((q.psn >> 24) != 0) return "its PSN " + std::to_string(q.psn) + " does not fit 24 bits";
    for (size_t i = 0; i < 32; ++i)
        if (std::isxdigit(static_cast<unsigned char>(q.gid[i])) == 0)
            return "its gid is not 32 hex digits (byte " + std::to_string(i) + ")";
    return {};
}

void check_sync_ack(const OobChannel& oob, uint32_t ack) {
    if (ack != 0) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (!oob.peer_closed()) {
        if (std::chrono::steady_clock::now() > until) return; // a stock client's sync
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    throw_error(Errc::peer_gone, "connSync",
                "the client closed the out-of-band connection instead of syncing (it called closeConn, or its "
                "cThread was destroyed: it exited or failed before this sync)");
}

std::string check_peer_message(const Device& dev, std::span<const std::byte> message) {
    if (std::string why = check_ibvq_bytes(message); !why.empty()) return why;
    try {
        dev.check_remote_endpoint(message.subspan(sizeof(ibvQ)));
    } catch (const Error& e) {
        return std::string("its endpoint bytes are refused: ") + e.what();
    }
    return {};
}

}  // namespace coyote::detail
