// coyote-mpi: small text formatting helpers.
#include "detail/format.hpp"

#include <cstdio>

namespace coyote::detail {

std::string hex(uint64_t v, int width) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "0x%0*llx", width, static_cast<unsigned long long>(v));
    return buf;
}

std::string hex(const void* p) { return hex(reinterpret_cast<uintptr_t>(p)); }

}  // namespace coyote::detail
