// coyote-mpi tools: JSON and text rendering of tools::Json.
#include "common/json.hpp"

#include <cmath>
#include <cstdio>

namespace coyote::tools {

namespace {

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", u);
            out += b;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace

Json& Json::push(Json v) {
    items_.push_back(std::move(v));
    return items_.back();
}

const Json* Json::get(const std::string& key) const {
    for (const auto& [k, v] : members_)
        if (k == key) return &v;
    return nullptr;
}

Json& Json::set(const std::string& key, Json v) {
    members_.emplace_back(key, std::move(v));
    return members_.back().second;
}

std::string Json::scalar() const {
    switch (kind_) {
    case Kind::null: return "null";
    case Kind::boolean: return int_ ? "true" : "false";
    case Kind::integer: return std::to_string(int_);
    case Kind::real: {
        if (!std::isfinite(real_)) return "null";
        char b[64];
        std::snprintf(b, sizeof b, "%.6g", real_);
        return b;
    }
    case Kind::string: return quote(str_);
    default: return {};
    }
}

void Json::dump_to(std::string& out, int indent, int depth) const {
    const bool pretty = indent > 0;
    const std::string pad = pretty ? "\n" + std::string(static_cast<size_t>(indent * (depth + 1)), ' ') : "";
    const std::string end = pretty ? "\n" + std::string(static_cast<size_t>(indent * depth), ' ') : "";
    if (kind_ == Kind::array) {
        out += '[';
        for (size_t i = 0; i < items_.size(); ++i) {
            out += (i ? "," : "") + pad;
            items_[i].dump_to(out, indent, depth + 1);
        }
        out += (items_.empty() ? "" : end) + "]";
    } else if (kind_ == Kind::object) {
        out += '{';
        for (size_t i = 0; i < members_.size(); ++i) {
            out += (i ? "," : "") + pad + quote(members_[i].first) + (pretty ? ": " : ":");
            members_[i].second.dump_to(out, indent, depth + 1);
        }
        out += (members_.empty() ? "" : end) + "}";
    } else {
        out += scalar();
    }
}

std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out + "\n";
}

std::string Json::text(int depth) const {
    const std::string pad(static_cast<size_t>(2 * depth), ' ');
    std::string out;
    auto value_text = [](const Json& v) { return v.kind_ == Kind::string ? v.str_ : v.scalar(); };
    if (kind_ == Kind::object) {
        for (const auto& [k, v] : members_) {
            if (v.kind_ == Kind::object || v.kind_ == Kind::array) {
                out += pad + k + ":" + ((v.kind_ == Kind::array && v.items_.empty()) || (v.kind_ == Kind::object && v.members_.empty()) ? " (none)" : "") + "\n";
                out += v.text(depth + 1);
            } else {
                out += pad + k + ": " + value_text(v) + "\n";
            }
        }
    } else if (kind_ == Kind::array) {
        for (size_t i = 0; i < items_.size(); ++i) {
            const Json& v = items_[i];
            if (v.kind_ == Kind::object || v.kind_ == Kind::array) {
                out += pad + "[" + std::to_string(i) + "]\n" + v.text(depth + 1);
            } else {
                out += pad + "- " + value_text(v) + "\n";
            }
        }
    } else {
        out += pad + value_text(*this) + "\n";
    }
    return out;
}

}  // namespace coyote::tools
