// Placeholder until the stock TCP out-of-band channel lands.
#include <coyote/oob.hpp>
#include <coyote/error.hpp>

namespace coyote {

TcpOobOptions TcpOobOptions::from_env() { return {}; }

std::unique_ptr<OobChannel> make_tcp_oob(uint16_t, const char*, const TcpOobOptions&) {
    throw_error(Errc::not_supported, "initRDMA", "the TCP out-of-band channel is not built yet");
}

}  // namespace coyote
