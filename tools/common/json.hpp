// coyote-mpi tools: a small ordered JSON value the tools fill once and print either as JSON or as indented text.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace coyote::tools {

/// A JSON value: null, bool, number (integer or real), string, array or object (keys in insertion order).
class Json {
public:
    enum class Kind { null, boolean, integer, real, string, array, object };

    Json() = default;
    Json(bool b) : kind_(Kind::boolean), int_(b ? 1 : 0) {}
    Json(int v) : kind_(Kind::integer), int_(v) {}
    Json(long v) : kind_(Kind::integer), int_(v) {}
    Json(long long v) : kind_(Kind::integer), int_(v) {}
    Json(unsigned v) : kind_(Kind::integer), int_(static_cast<int64_t>(v)) {}
    Json(unsigned long v) : kind_(Kind::integer), int_(static_cast<int64_t>(v)) {}
    Json(unsigned long long v) : kind_(Kind::integer), int_(static_cast<int64_t>(v)) {}
    Json(double v) : kind_(Kind::real), real_(v) {}
    Json(const char* s) : kind_(Kind::string), str_(s) {}
    Json(std::string s) : kind_(Kind::string), str_(std::move(s)) {}

    static Json array() { Json j; j.kind_ = Kind::array; return j; }
    static Json object() { Json j; j.kind_ = Kind::object; return j; }

    /// Appends to an array.
    Json& push(Json v);
    /// Sets `key` of an object (appended; keys are expected to be unique).
    Json& set(const std::string& key, Json v);

    Kind kind() const noexcept { return kind_; }
    /// The member `key` of an object, or nullptr.
    const Json* get(const std::string& key) const;
    /// The elements of an array (empty for other kinds).
    const std::vector<Json>& elements() const noexcept { return items_; }
    /// The text of a string, the digits of an integer ("" for other kinds).
    std::string str() const { return kind_ == Kind::string ? str_ : kind_ == Kind::integer ? std::to_string(int_) : ""; }
    /// Compact JSON (one line) or, with `indent` > 0, pretty-printed.
    std::string dump(int indent = 2) const;
    /// Indented "key: value" text (arrays of objects as numbered blocks).
    std::string text(int depth = 0) const;

private:
    void dump_to(std::string& out, int indent, int depth) const;
    std::string scalar() const;

    Kind kind_ = Kind::null;
    int64_t int_ = 0;
    double real_ = 0.0;
    std::string str_;
    std::vector<Json> items_;
    std::vector<std::pair<std::string, Json>> members_;
};

}  // namespace coyote::tools
