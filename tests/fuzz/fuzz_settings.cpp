// Fuzz target: the environment parsers (src/detail/settings): the bare parsers, checked against the standard
// library, and typed settings read from a variable set to the input.
#include "detail/settings.hpp"
#include "fuzz_support.hpp"

#include <stdlib.h>

#include <charconv>
#include <string>

namespace settings = coyote::detail::settings;
using namespace std::chrono_literals;

namespace {

const settings::Integer k_int{"COYOTE_FUZZ_INT", "test", 5, -1000, 1000000, "fuzz target: a bounded integer"};
const settings::Millis k_ms{"COYOTE_FUZZ_MS", "test", 100ms, "fuzz target: a duration"};
const settings::Bytes k_bytes{"COYOTE_FUZZ_BYTES", "test", 4096, "fuzz target: a byte count",
                              settings::ByteRange{1, uint64_t{1} << 36, "auto", 77}};
const settings::Flag k_flag{"COYOTE_FUZZ_FLAG", "test", false, "fuzz target: a switch"};
const settings::Choice k_choice{"COYOTE_FUZZ_CHOICE", "test", "shm", {"shm", "tcp", "auto"}, "fuzz target: a word"};

/// parse_integer must agree with std::from_chars (after an optional '+').
void check_integer(std::string_view t) {
    const auto mine = settings::parse_integer(t);
    std::string_view s = t;
    if (s.size() > 1 && s[0] == '+' && s[1] >= '0' && s[1] <= '9') s.remove_prefix(1);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    const bool std_ok = ec == std::errc() && end == s.data() + s.size() && !s.empty();
    coyote::fuzz::require(mine.has_value() == std_ok, "parse_integer disagrees with from_chars on acceptance");
    if (std_ok) coyote::fuzz::require(*mine == v, "parse_integer disagrees with from_chars on the value");
}

/// parse_bytes: an accepted value is the digits times a power of 1024.
void check_bytes(std::string_view t) {
    const auto mine = settings::parse_bytes(t);
    if (!mine) return;
    size_t digits = 0;
    while (digits < t.size() && t[digits] >= '0' && t[digits] <= '9') ++digits;
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + digits, n);
    coyote::fuzz::require(ec == std::errc() && end == t.data() + digits, "parse_bytes accepted a number out of range");
    bool found = false;
    for (unsigned shift : {0U, 10U, 20U, 30U})
        if (n <= (UINT64_MAX >> shift) && (n << shift) == *mine) found = true;
    coyote::fuzz::require(found, "parse_bytes value is not digits x 1024^k");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view t = coyote::fuzz::text_of(data + 1, size - 1);
    check_integer(t);
    check_bytes(t);
    (void)settings::parse_flag(t);
    // The environment holds C strings: the value up to the first NUL.
    const std::string value(t.substr(0, t.find('\0')));
    switch (data[0] % 5) {
    case 0:
        ::setenv("COYOTE_FUZZ_INT", value.c_str(), 1);
        if (coyote::fuzz::accepted([] { (void)k_int.get(); }) && k_int.is_set())
            coyote::fuzz::require(k_int.get() >= -1000 && k_int.get() <= 1000000, "Integer out of its bounds");
        break;
    case 1:
        ::setenv("COYOTE_FUZZ_MS", value.c_str(), 1);
        if (coyote::fuzz::accepted([] { (void)k_ms.get(); }))
            coyote::fuzz::require(k_ms.get() >= 1ms && k_ms.get() <= settings::Millis::k_max_default,
                                  "Millis out of its bounds");
        break;
    case 2:
        ::setenv("COYOTE_FUZZ_BYTES", value.c_str(), 1);
        if (coyote::fuzz::accepted([] { (void)k_bytes.get(); }))
            coyote::fuzz::require(k_bytes.get() >= 1 && k_bytes.get() <= (uint64_t{1} << 36), "Bytes out of bounds");
        break;
    case 3:
        ::setenv("COYOTE_FUZZ_FLAG", value.c_str(), 1);
        (void)coyote::fuzz::accepted([] { (void)k_flag.get(); });
        break;
    default:
        ::setenv("COYOTE_FUZZ_CHOICE", value.c_str(), 1);
        if (coyote::fuzz::accepted([] { (void)k_choice.get(); })) {
            const std::string c = k_choice.get();
            coyote::fuzz::require(c == "shm" || c == "tcp" || c == "auto", "Choice outside its words");
        }
        break;
    }
    return 0;
}
