// coyote-mpi tools: the output of the tools: whether what a tool printed reached its standard output, files it writes.
#include "common/output.hpp"

#include "detail/handles.hpp"

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

std::ofstream open_private(const std::string& path, std::ios::openmode mode) {
    std::ofstream out;
    // Created here with the owner's permissions only, never another user's file (he would read the report) nor
    // through his link. The stream opens the same file again: an entry of ours in a sticky directory (/tmp) cannot
    // be replaced by another user meanwhile.
    std::string foreign;
    coyote::detail::Fd fd = coyote::detail::open_output_file(path, 0, foreign);
    if (!fd) {
        const int e = errno;
        if (!foreign.empty()) std::fprintf(stderr, "refusing the output file: %s\n", foreign.c_str());
        out.setstate(std::ios::failbit); // tests false, as a stream that failed to open
        errno = e;
        return out;
    }
    fd.reset();
    errno = 0;
    out.open(path, mode | std::ios::out | std::ios::trunc);
    return out;
}

}  // namespace coyote::tools
