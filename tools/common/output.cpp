// coyote-mpi tools: whether what a tool printed reached its standard output.
#include "common/output.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace coyote::tools {

std::string stdout_failure() noexcept {
    errno = 0;
    if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return {};
    try {
        return errno != 0 ? std::strerror(errno) : "write error";
    } catch (...) {
        return {};
    }
}

}  // namespace coyote::tools
