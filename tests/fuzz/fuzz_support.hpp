// coyote-mpi fuzzing: what the libFuzzer targets share (bad input must end in a coyote::Error, nothing else).
#pragma once

#include <coyote/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string_view>

namespace coyote::fuzz {

/// The fuzzer's input as bytes.
inline std::span<const std::byte> bytes_of(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const std::byte*>(data), size};
}

/// The fuzzer's input as text.
inline std::string_view text_of(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// Stops the run with `what` (a finding): libFuzzer saves the input that got here.
[[noreturn]] inline void finding(const char* what, const char* detail = "") {
    std::fprintf(stderr, "FUZZ FINDING: %s %s\n", what, detail);
    std::abort();
}

/// Checks an invariant of a parser's result.
inline void require(bool ok, const char* what) {
    if (!ok) finding("invariant violated:", what);
}

/// Runs `fn`: true when it returned, false when it threw a coyote::Error (the expected answer to bad input);
/// any other exception is a finding.
template <typename Fn>
bool accepted(Fn&& fn) {
    try {
        fn();
        return true;
    } catch (const coyote::Error& e) {
        if (std::string_view(e.what()).empty()) finding("a coyote::Error without a message");
        return false;
    } catch (const std::exception& e) {
        finding("an exception that is not a coyote::Error:", e.what());
    } catch (...) {
        finding("an exception of an unknown type");
    }
}

}  // namespace coyote::fuzz
