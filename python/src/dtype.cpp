// pycoyote: the dtype table and element-count checks.
#include "dtype.hpp"

#include <array>
#include <utility>

#include <coyote/error.hpp>

namespace pycoyote {

namespace {

// long is int64 on the LP64 platforms Coyote runs on; char is a one-byte character ('c').
constexpr std::array<Dtype, 15> k_types{{
    {"bool", "?", 1},     {"char", "c", 1},     {"int8", "b", 1},    {"uint8", "B", 1},
    {"int16", "h", 2},    {"uint16", "H", 2},   {"int32", "i", 4},   {"uint32", "I", 4},
    {"int64", "q", 8},    {"uint64", "Q", 8},   {"long", "l", sizeof(long)},
    {"float16", "e", 2},  {"float32", "f", 4},  {"float64", "d", 8}, {"ulong", "L", sizeof(unsigned long)},
}};

constexpr std::array<std::pair<const char*, const char*>, 5> k_aliases{{
    {"int", "int32"}, {"uint", "uint32"}, {"float", "float32"}, {"double", "float64"}, {"half", "float16"}}};

}  // namespace

const Dtype& dtype_by_name(const std::string& name) {
    std::string key = name;
    for (const auto& [alias, canonical] : k_aliases)
        if (key == alias) key = canonical;
    for (const auto& t : k_types)
        if (key == t.name) return t;
    std::string known;
    for (const auto& t : k_types) known += std::string(known.empty() ? "" : ", ") + t.name;
    coyote::throw_error(coyote::Errc::invalid_argument, "dtype",
                        "unknown dtype '" + name + "' (expected one of " + known + ", int, uint, float, double)");
}

unsigned long long checked_unsigned(long long value, unsigned long long max, const char* call, const char* what) {
    if (value < 0 || static_cast<unsigned long long>(value) > max)
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            std::string(what) + " " + std::to_string(value) + " is out of range (0 .. " +
                                std::to_string(max) + ")");
    return static_cast<unsigned long long>(value);
}

std::size_t checked_bytes(long long count, const Dtype& type, std::size_t limit, const char* call,
                          const std::string& what) {
    if (count < 0) coyote::throw_error(coyote::Errc::invalid_argument, call, "negative " + what + " " + std::to_string(count));
    const auto n = static_cast<unsigned long long>(count);
    if (n > limit / type.itemsize)
        coyote::throw_error(coyote::Errc::invalid_argument, call,
                            std::to_string(n) + " elements of " + type.name + " exceed the limit of " +
                                std::to_string(limit) + " bytes");
    return static_cast<std::size_t>(n) * type.itemsize;
}

}  // namespace pycoyote
