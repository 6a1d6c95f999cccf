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

std::string reason_of(const std::exception& e) {
    if (const auto* ce = dynamic_cast<const Error*>(&e)) return ce->context();
    return e.what();
}

}  // namespace coyote::detail
