// coyote-mpi: small text formatting helpers.
#include "detail/format.hpp"

#include <cstdio>

#include <coyote/error.hpp>

namespace coyote::detail {

std::string hex(uint64_t v, int width) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "0x%0*llx", width, static_cast<unsigned long long>(v));
    return buf;
}

std::string hex(const void* p) { return hex(reinterpret_cast<uintptr_t>(p)); }

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7f) out += "\\x" + hex(u, 2).substr(2);
        else out += c;
    }
    return out;
}

std::string reason_of(const std::exception& e) {
    if (const auto* ce = dynamic_cast<const Error*>(&e)) return ce->context();
    return e.what();
}

}  // namespace coyote::detail
