// coyote-mpi: environment variables: declaration registry, typed parsing, the docs table.
#include "detail/settings.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "coyote/error.hpp"
#include "detail/format.hpp"

namespace coyote::detail::settings {

namespace {

struct Registry {
    std::mutex mtx;
    std::vector<const Setting*> items;
    std::vector<const Consistency*> rules;
};

Registry& registry() {
    static Registry r;
    return r;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
        out += words[i];
    }
    return out;
}

std::string bytes_text(uint64_t v) {
    constexpr uint64_t k = 1024;
    if (v != 0 && v % (k * k * k) == 0) return std::to_string(v / (k * k * k)) + "G";
    if (v != 0 && v % (k * k) == 0) return std::to_string(v / (k * k)) + "M";
    if (v != 0 && v % k == 0) return std::to_string(v / k) + "K";
    return std::to_string(v);
}

Info make_info(std::string name, std::string group, Type type, std::string def, std::string accepts,
               std::string help) {
    return Info{std::move(name), std::move(group), type, std::move(def), std::move(accepts), std::move(help)};
}

std::string type_name(Type t) {
    switch (t) {
    case Type::text: return "text";
    case Type::flag: return "flag";
    case Type::integer: return "integer";
    case Type::millis: return "milliseconds";
    case Type::bytes: return "bytes";
    case Type::choice: return "choice";
    }
    return "?";
}

}  // namespace

// ---- parsers ----------------------------------------------------------------------------------------

std::optional<int64_t> parse_integer(std::string_view text) {
    if (text.empty()) return std::nullopt;
    bool neg = false;
    std::size_t i = 0;
    if (text[0] == '-' || text[0] == '+') neg = text[0] == '-', i = 1;
    if (i == text.size()) return std::nullopt;
    uint64_t v = 0;
    for (; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        const auto d = static_cast<uint64_t>(text[i] - '0');
        if (v > (uint64_t{1} << 63) / 10 || v * 10 > (uint64_t{1} << 63) - d) return std::nullopt;
        v = v * 10 + d;
    }
    if (!neg && v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    if (neg) return v == (uint64_t{1} << 63) ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(v);
    return static_cast<int64_t>(v);
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0) return std::nullopt;
    uint64_t v = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        const auto d = static_cast<uint64_t>(text[i] - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    const std::string unit = lower(text.substr(digits));
    unsigned shift = 0;
    if (unit.empty() || unit == "b") shift = 0;
    else if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
    else if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
    else if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
    else return std::nullopt;
    if (shift != 0 && v > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
    return v << shift;
}

std::optional<bool> parse_flag(std::string_view text) {
    const std::string v = lower(text);
    if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
    if (v == "0" || v == "false" || v == "no" || v == "off") return false;
    return std::nullopt;
}

// ---- Setting ----------------------------------------------------------------------------------------

namespace {
/// Adds `item` to (or, with `add` false, removes it from) the registry list `member` under the registry's lock.
template <class T>
void enlist(std::vector<const T*> Registry::*member, const T* item, bool add) {
    auto& r = registry();
    std::lock_guard lk(r.mtx);
    auto& v = r.*member;
    if (add) v.push_back(item);
    else v.erase(std::remove(v.begin(), v.end(), item), v.end());
}
} // namespace

Setting::Setting(Info info) : info_(std::move(info)) { enlist(&Registry::items, this, true); }

Setting::~Setting() { enlist(&Registry::items, static_cast<const Setting*>(this), false); }

Consistency::Consistency(std::string group, Check rule) : group_(std::move(group)), check_(rule) {
    enlist(&Registry::rules, this, true);
}

Consistency::~Consistency() { enlist(&Registry::rules, static_cast<const Consistency*>(this), false); }

void Consistency::check() const {
    if (std::string problem = check_(); !problem.empty())
        throw_error(Errc::invalid_argument, "environment variables (" + group_ + ")", problem);
}

std::string Setting::name(std::string_view suffix) const {
    const std::string& n = info_.name;
    const auto open = n.rfind('<');
    if (open == std::string::npos || n.back() != '>') return n;
    return n.substr(0, open) + std::string(suffix);
}

std::optional<std::string> Setting::raw(std::string_view suffix) const {
    const char* v = std::getenv(name(suffix).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
}

void Setting::reject(const std::string& value, std::string_view suffix) const {
    throw_error(Errc::invalid_argument, "environment variable",
                name(suffix) + "='" + printable(value) + "' (expected " + info_.accepts + "): " + info_.help);
}

// ---- typed settings ---------------------------------------------------------------------------------

Text::Text(std::string name, std::string group, std::string def, std::string help, TextCheck validate)
    : Setting(make_info(std::move(name), std::move(group), Type::text, def, "any text", std::move(help))),
      validate_(validate) {}

std::optional<std::string> ipv4_problem(const std::string& value) {
    in_addr a{};
    if (::inet_pton(AF_INET, value.c_str(), &a) == 1) return std::nullopt;
    return "not an IPv4 address (expected a.b.c.d)";
}

std::string Text::get(std::string_view suffix) const {
    auto v = raw(suffix);
    return v ? *v : info().def;
}

Flag::Flag(std::string name, std::string group, bool def, std::string help)
    : Setting(make_info(std::move(name), std::move(group), Type::flag, def ? "1" : "0",
                        "1 or 0 (also true/false, yes/no, on/off)", std::move(help))),
      def_(def) {}

bool Flag::get(std::string_view suffix) const {
    auto v = raw(suffix);
    if (!v) return def_;
    if (auto b = parse_flag(*v)) return *b;
    reject(*v, suffix);
}

Integer::Integer(std::string name, std::string group, int64_t def, int64_t min, int64_t max, std::string help,
                 std::string shown_default)
    : Setting(make_info(std::move(name), std::move(group), Type::integer,
                        shown_default.empty() ? std::to_string(def) : shown_default,
                        "an integer in " + std::to_string(min) + " .. " + std::to_string(max), std::move(help))),
      def_(def), min_(min), max_(max) {}

int64_t Integer::get(std::string_view suffix) const {
    auto v = raw(suffix);
    if (!v) return def_;
    auto x = parse_integer(*v);
    if (!x || *x < min_ || *x > max_) reject(*v, suffix);
    return *x;
}

Millis::Millis(std::string name, std::string group, std::chrono::milliseconds def, std::string help,
               std::chrono::milliseconds min, std::chrono::milliseconds max)
    : Setting(make_info(std::move(name), std::move(group), Type::millis, std::to_string(def.count()),
                        "a whole number of milliseconds in " + std::to_string(min.count()) + " .. " +
                            std::to_string(max.count()),
                        std::move(help))),
      def_(def), min_(min), max_(max) {}

std::chrono::milliseconds Millis::get(std::string_view suffix) const {
    auto v = raw(suffix);
    if (!v) return def_;
    auto x = parse_integer(*v);
    if (!x || *x < min_.count() || *x > max_.count()) reject(*v, suffix);
    return std::chrono::milliseconds(*x);
}

Bytes::Bytes(std::string name, std::string group, uint64_t def, std::string help, Range range)
    : Setting(make_info(std::move(name), std::move(group), Type::bytes,
                        (!range.word.empty() && def == range.word_value) ? range.word : bytes_text(def),
                        "a byte count in " + bytes_text(range.min) + " .. " + bytes_text(range.max) +
                            " (suffix K, M or G for KiB, MiB, GiB)" +
                            (range.word.empty() ? std::string() : ", or '" + range.word + "'"),
                        std::move(help))),
      def_(def), range_(std::move(range)) {}

uint64_t Bytes::get(std::string_view suffix) const {
    auto v = raw(suffix);
    if (!v) return def_;
    if (!range_.word.empty() && *v == range_.word) return range_.word_value;
    auto x = parse_bytes(*v);
    if (!x || *x < range_.min || *x > range_.max) reject(*v, suffix);
    return *x;
}

Choice::Choice(std::string name, std::string group, std::string def, std::vector<std::string> choices,
               std::string help)
    : Setting(make_info(std::move(name), std::move(group), Type::choice, def, join(choices), std::move(help))),
      choices_(std::move(choices)) {}

std::string Choice::get(std::string_view suffix) const {
    auto v = raw(suffix);
    if (!v) return info().def;
    if (std::find(choices_.begin(), choices_.end(), *v) == choices_.end()) reject(*v, suffix);
    return *v;
}

void Text::check(std::string_view suffix) const {
    const auto v = raw(suffix);
    if (!v || validate_ == nullptr) return;
    if (const auto problem = validate_(*v))
        throw_error(Errc::invalid_argument, "environment variable", name(suffix) + "='" + printable(*v) + "': " + *problem);
}
void Flag::check(std::string_view suffix) const { (void)get(suffix); }
void Integer::check(std::string_view suffix) const { (void)get(suffix); }
void Millis::check(std::string_view suffix) const { (void)get(suffix); }
void Bytes::check(std::string_view suffix) const { (void)get(suffix); }
void Choice::check(std::string_view suffix) const { (void)get(suffix); }

// ---- listing ----------------------------------------------------------------------------------------

std::optional<std::string> value_of(std::string_view name) {
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        for (const Setting* s : r.items)
            if (s->info().name == name) return s->raw();
    }
    throw_error(Errc::invalid_argument, "settings::value_of", "no declaration of " + std::string(name));
}

std::optional<std::string> foreign(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
}

namespace {

std::vector<const Setting*> registered_items() {
    auto& r = registry();
    std::lock_guard lk(r.mtx);
    return r.items;
}

/// Calls `fn(setting, name, value, suffix)` for every declared variable set in this environment (each set member of
/// a family with its suffix); throws for a family member whose suffix is not a device number.
template <class Fn>
void visit_set(const std::vector<const Setting*>& items, Fn&& fn) {
    for (const Setting* s : items) {
        if (s->info().name.back() != '>') {
            if (const auto v = s->raw()) fn(*s, s->info().name, *v, std::string_view{});
            continue;
        }
        // A family (COYOTE_SIM_IP_<device>): every member set in the environment, and its suffix.
        const std::string& family = s->info().name;
        const std::string prefix = family.substr(0, family.rfind('<'));
        const bool numbered = family.ends_with("<device>");
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
            const std::string_view kv(*e);
            const std::string_view name = kv.substr(0, kv.find('='));
            if (name.size() <= prefix.size() || !name.starts_with(prefix)) continue;
            const std::string_view suffix = name.substr(prefix.size());
            const std::string value(kv.substr(std::min(kv.size(), name.size() + 1)));
            if (numbered && (suffix.size() > 9 || suffix.find_first_not_of("0123456789") != std::string_view::npos))
                throw_error(Errc::invalid_argument, "environment variable",
                            std::string(kv) + ": '" + std::string(suffix) + "' is not a device number (" + family +
                                " takes the number of a device)");
            fn(*s, std::string(name), value, suffix);
        }
    }
}

} // namespace

void check_all() {
    std::vector<const Consistency*> rules;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        rules = r.rules;
    }
    visit_set(registered_items(), [](const Setting& s, const std::string&, const std::string&,
                                     std::string_view suffix) { s.check(suffix); });
    for (const Consistency* c : rules) c->check();
}

std::vector<SetValue> set_in_environment() {
    std::vector<SetValue> out;
    const auto items = registered_items();
    for (const Setting* s : items) { // one family at a time, so that a bad suffix spoils only its own line
        try {
            visit_set({s}, [&](const Setting& st, const std::string& name, const std::string& value,
                               std::string_view suffix) {
                SetValue v{name, value, ""};
                try {
                    st.check(suffix);
                } catch (const Error& e) {
                    v.problem = e.context();
                }
                out.push_back(std::move(v));
            });
        } catch (const Error& e) {
            out.push_back(SetValue{s->info().name, "", e.context()});
        }
    }
    return out;
}

void check_all_once() {
    static std::atomic<bool> done{false};
    static std::mutex mtx;
    if (done.load(std::memory_order_acquire)) return;
    std::lock_guard lk(mtx);
    if (done.load(std::memory_order_relaxed)) return;
    check_all();
    done.store(true, std::memory_order_release);
}

namespace {

/// Levenshtein distance of `a` and `b`, stopping early above `limit` (returns limit + 1 then).
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0], best = i;
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
            best = std::min(best, row[j]);
        }
        if (best > limit) return limit + 1;
    }
    return row[b.size()];
}

}  // namespace

std::vector<Misspelling> misspelled_in_environment() {
    std::vector<std::string> names;
    for (const Info* i : all()) names.push_back(i->name);
    auto declared = [&](std::string_view n) {
        return std::any_of(names.begin(), names.end(), [&](const std::string& d) {
            const auto family = d.find('<'); // COYOTE_SIM_IP_<device>: any name with that prefix
            return family == std::string::npos ? d == n : n.size() > family && n.substr(0, family) == d.substr(0, family);
        });
    };
    std::vector<Misspelling> out;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view kv(*e);
        const std::string_view name = kv.substr(0, kv.find('='));
        if (name.rfind("COYOTE_", 0) != 0 || declared(name)) continue;
        for (const std::string& d : names)
            if (d.find('<') == std::string::npos && edit_distance(name, d, 2) <= 2) {
                out.push_back({std::string(name), d});
                break;
            }
    }
    std::sort(out.begin(), out.end(), [](const Misspelling& x, const Misspelling& y) { return x.name < y.name; });
    return out;
}

std::vector<const Info*> all() {
    std::vector<const Info*> out;
    {
        auto& r = registry();
        std::lock_guard lk(r.mtx);
        for (const Setting* s : r.items) out.push_back(&s->info());
    }
    std::sort(out.begin(), out.end(), [](const Info* a, const Info* b) {
        return a->group != b->group ? a->group < b->group : a->name < b->name;
    });
    out.erase(std::unique(out.begin(), out.end(), [](const Info* a, const Info* b) { return a->name == b->name; }),
              out.end());
    return out;
}

std::string markdown() {
    std::string out =
        "# Environment variables\n\n"
        "Every variable coyote-mpi reads, generated from the declarations in the sources by `coyote-settings "
        "--markdown` (a test fails when this page is out of date). A malformed value is an error that names the "
        "variable and what it accepts; an empty value counts as unset. Every variable set is checked when a process "
        "opens its first `cThread` (those of the libraries it loaded: the `collectives` and `mpi` groups in programs of "
        "the MPI layer), so a malformed one fails there, whichever call would read it first; so do rules across "
        "variables (`COYOTE_COLL_BUFFER_SIZE` must hold 4 slots of `COYOTE_COLL_CHUNK` per direction). "
        "`coyote-settings --check` checks them without opening a device and names likely misspellings.\n";
    std::string group;
    for (const Info* i : all()) {
        if (i->group != group) {
            group = i->group;
            out += "\n## " + group + "\n\n| variable | type | default | accepts | meaning |\n| --- | --- | --- | --- | --- |\n";
        }
        out += "| `" + i->name + "` | " + type_name(i->type) + " | " + (i->def.empty() || i->def == "unset" ? "unset" : "`" + i->def + "`") +
               " | " + i->accepts + " | " + i->help + " |\n";
    }
    return out;
}

}  // namespace coyote::detail::settings
