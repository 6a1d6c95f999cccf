// coyote-mpi tools: whether what a tool printed reached its standard output.
#pragma once

#include <string>

namespace coyote::tools {

/// Flushes standard output: "" when everything printed so far was written, else the reason (a full disk), so that
/// a tool does not exit 0 with its output cut short.
std::string stdout_failure() noexcept;

}  // namespace coyote::tools
