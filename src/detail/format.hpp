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

/// `text` with its control bytes (below 0x20, and 0x7f) written as \n, \r, \t or \xHH: safe
/// to quote in a message (a value with an escape sequence or a newline cannot redraw the terminal or forge a line).
std::string printable(std::string_view text);

/// What went wrong in `e`, to quote inside another error's message: a coyote::Error's context (its call and code
/// would repeat what the outer error says), else what().
std::string reason_of(const std::exception& e);

}  // namespace coyote::detail
