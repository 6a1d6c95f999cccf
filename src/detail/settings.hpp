// coyote-mpi: the one way to read environment variables. Every variable is declared once, at namespace scope
// beside the code that reads it, with its default and a one-line description; `all()` lists the declarations
// (docs/settings.md and `coyote-settings` are made from it). A malformed value is an Error that names the
// variable and what it accepts. Values are read at each get(), so a later setenv() takes effect.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <coyote/error.hpp>

namespace coyote::detail::settings {

/// What a variable holds.
enum class Type { text, flag, integer, millis, bytes, choice };

/// One declaration, as listed for the docs.
struct Info {
    std::string name;    ///< e.g. COYOTE_POST_TIMEOUT_MS; a trailing "<...>" marks a family (COYOTE_SIM_IP_<device>)
    std::string group;   ///< part of the project: runtime, sim, sim-net, mpi, collectives, bench, test
    Type type = Type::text;
    std::string def;     ///< default as text ("" when unset means "not set")
    std::string accepts; ///< what a value may be, e.g. "1 .. 86400000 (ms)"
    std::string help;    ///< one line
};

/// Common part of every typed setting: registration, lookup and the error for a malformed value.
class Setting {
public:
    Setting(const Setting&) = delete;
    Setting& operator=(const Setting&) = delete;
    const Info& info() const noexcept { return info_; }
    /// The variable's name; for a family, `suffix` replaces the trailing "<...>".
    std::string name(std::string_view suffix = {}) const;
    /// The value when the variable is set and not empty.
    std::optional<std::string> raw(std::string_view suffix = {}) const;
    /// Whether the variable is set to a non-empty value.
    bool is_set(std::string_view suffix = {}) const { return raw(suffix).has_value(); }

protected:
    explicit Setting(Info info);
    virtual ~Setting();
    /// Parses the value in force (throws when malformed); for a family, the member named by `suffix`.
    virtual void check(std::string_view suffix = {}) const = 0;
    friend void check_all();
    friend std::vector<struct SetValue> set_in_environment();
    /// Throws Errc::invalid_argument with "NAME='value' (expected ...): help".
    [[noreturn]] void reject(const std::string& value, std::string_view suffix = {}) const;

private:
    Info info_;
};

/// What is wrong with a text value ("is not an IPv4 address (expected a.b.c.d)"), nullopt when it is fine.
using TextCheck = std::optional<std::string> (*)(const std::string& value);

/// Free text (paths, addresses, model names). Empty means unset. `validate`, when given, is what check() (and so
/// `coyote-settings --check`) applies to a value that is set; the code that uses the value checks it too.
class Text : public Setting {
public:
    Text(std::string name, std::string group, std::string def, std::string help, TextCheck validate = nullptr);
    /// The value, or the default when unset.
    std::string get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    TextCheck validate_ = nullptr;
};

/// A TextCheck: an IPv4 address a.b.c.d.
std::optional<std::string> ipv4_problem(const std::string& value);

/// For a TextCheck: runs `use` (what the code that reads the value does with it) and returns the context of the
/// coyote::Error it throws (with the system's reason when its code is an errno), nullopt when it throws none.
template <class Use>
std::optional<std::string> problem_of(Use&& use) {
    try {
        use();
        return std::nullopt;
    } catch (const Error& e) {
        if (e.code().category() == std::generic_category() || e.code().category() == std::system_category())
            return e.context() + " (" + e.code().message() + ")";
        return e.context();
    }
}

/// A switch: 1/0, true/false, yes/no, on/off (any case).
class Flag : public Setting {
public:
    Flag(std::string name, std::string group, bool def, std::string help);
    bool get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    bool def_;
};

/// A bounded integer (decimal).
class Integer : public Setting {
public:
    /// `shown_default` replaces the default in the listing when unset means something else (e.g. "unset").
    Integer(std::string name, std::string group, int64_t def, int64_t min, int64_t max, std::string help,
            std::string shown_default = {});
    int64_t get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    int64_t def_, min_, max_;
};

/// A bounded duration in whole milliseconds.
class Millis : public Setting {
public:
    /// Up to a day by default: larger values are more likely a typo than a wish, and keep deadline arithmetic safe.
    static constexpr std::chrono::milliseconds k_max_default{86400000};
    Millis(std::string name, std::string group, std::chrono::milliseconds def, std::string help,
           std::chrono::milliseconds min = std::chrono::milliseconds(1),
           std::chrono::milliseconds max = k_max_default);
    std::chrono::milliseconds get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    std::chrono::milliseconds def_, min_, max_;
};

/// Limits of a Bytes setting.
struct ByteRange {
    uint64_t min = 0;
    uint64_t max = uint64_t{1} << 40;
    std::string word = {};   ///< optional keyword, e.g. "auto"
    uint64_t word_value = 0; ///< what the keyword stands for
};

/// A bounded byte count: a decimal number with an optional binary suffix K, M or G (any case, optional "iB"/"B").
class Bytes : public Setting {
public:
    using Range = ByteRange;
    Bytes(std::string name, std::string group, uint64_t def, std::string help, Range range = {});
    uint64_t get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    uint64_t def_;
    Range range_;
};

/// One of a fixed set of words (exact, lower case).
class Choice : public Setting {
public:
    Choice(std::string name, std::string group, std::string def, std::vector<std::string> choices, std::string help);
    std::string get(std::string_view suffix = {}) const;
    void check(std::string_view suffix = {}) const override;

private:
    std::vector<std::string> choices_;
};

/// The raw value of a variable declared elsewhere (e.g. in another layer), for messages; throws
/// Errc::invalid_argument when no loaded library declares `name`.
std::optional<std::string> value_of(std::string_view name);

/// A variable that belongs to other software (the MPI launcher, Slurm, the shell): read here so that the rest of
/// the code never calls getenv, but not declared as ours.
std::optional<std::string> foreign(const char* name);

/// A rule across variables that each parse alone (a buffer that must hold chunks of another variable's size),
/// declared at namespace scope like the variables; check_all() runs it after every variable passed. `check`
/// returns what is wrong with the values in force, naming the variables, or "" when they agree.
class Consistency {
public:
    using Check = std::string (*)();
    Consistency(std::string group, Check rule);
    ~Consistency();
    Consistency(const Consistency&) = delete;
    Consistency& operator=(const Consistency&) = delete;
    /// Throws Errc::invalid_argument with the problem, if any.
    void check() const;

private:
    std::string group_;
    Check check_;
};

/// Reads every declared variable set in this environment, then the rules across them; throws the first
/// problem's error.
void check_all();

/// A declared variable set in this environment (a member of a family under its own name) and what check_all
/// would say of it ("" when it is well-formed).
struct SetValue {
    std::string name, value, problem;
};
/// Every declared variable set in this environment, in declaration order, each checked alone.
std::vector<SetValue> set_in_environment();

/// check_all() once per process, at the first cThread: a malformed value fails there, naming the variable, not
/// in whichever later call first reads it (COYOTE_LOCK_TIMEOUT_MS only when a lock is contended). Runs again
/// after a failure, so a corrected environment is checked anew.
void check_all_once();

/// A variable set in this environment that no loaded library declares but whose name is one or two letters away
/// from a declared one: `name` is probably a misspelling of `nearest` (which then reads as unset).
struct Misspelling {
    std::string name, nearest;
};
/// The likely misspellings among the COYOTE_* variables set here. Other undeclared COYOTE_* names are left alone:
/// the project's scripts (Slurm batch scripts, benchmark runners) read variables of their own.
std::vector<Misspelling> misspelled_in_environment();

/// Every declaration of the libraries loaded in this process, ordered by group, then name.
std::vector<const Info*> all();

/// The declarations as a Markdown document (docs/settings.md).
std::string markdown();

/// Parsers, exposed for the tests. They return nullopt for a malformed text.
std::optional<uint64_t> parse_bytes(std::string_view text);
std::optional<int64_t> parse_integer(std::string_view text);
std::optional<bool> parse_flag(std::string_view text);

}  // namespace coyote::detail::settings
