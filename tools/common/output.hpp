// coyote-mpi tools: the output of the tools: whether what a tool printed reached its standard output, files it writes.
#pragma once

#include <fstream>
#include <string>

namespace coyote::tools {

/// Flushes standard output: "" when everything printed so far was written, else the reason (a full disk), so that
/// a tool does not exit 0 with its output cut short.
std::string stdout_failure() noexcept;

/// Opens `path` for writing from its start (truncated): a file it creates is readable and writable by its owner
/// only (0600, whatever the umask); an existing file keeps its mode. Not open on failure, errno says why.
std::ofstream open_private(const std::string& path, std::ios::openmode mode = std::ios::out);

}  // namespace coyote::tools
