// coyote-mpi: small text formatting helpers shared by error messages and debug output.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace coyote::detail {

/// `v` as "0x..." with at least `width` hex digits (0: as many as needed).
std::string hex(uint64_t v, int width = 0);

/// A pointer as "0x...".
std::string hex(const void* p);

/// What went wrong in `e`, to quote inside another error's message: a coyote::Error's context (its call and code
/// would repeat what the outer error says), else what().
std::string reason_of(const std::exception& e);

/// `text` with its control bytes (below 0x20, and 0x7f) written as escapes (\n, \t, \r, \xHH) and a backslash
/// doubled: for quoting a value the user gave (an environment variable, a path) in a message, which must not move
/// the cursor, clear the terminal or fake a second line.
std::string printable(std::string_view text);

}  // namespace coyote::detail
