// coyote-settings: lists every environment variable coyote-mpi reads, with its default, what it accepts and,
// for the variables set in this environment, the value in force. `--markdown` prints docs/settings.md.
#include <cstdio>
#include <cstring>
#include <string>

#include <coyote/error.hpp>

#include "common/output.hpp"
#include "detail/settings.hpp"

namespace settings = coyote::detail::settings;

namespace {

int usage(std::FILE* out) {
    std::fputs("usage: coyote-settings [--markdown | --check]\n"
               "  (no option)  every variable with its default; the ones set here with their value\n"
               "  --markdown   the reference page docs/settings.md\n"
               "  --check      read every variable set here; exit 1 naming the first malformed one, or a\n"
               "               COYOTE_* name set here that is a misspelling of one coyote-mpi reads\n",
               out);
    return out == stdout ? 0 : 2;
}

void list() {
    const std::vector<settings::SetValue> set = settings::set_in_environment();
    for (const settings::Info* i : settings::all()) {
        std::printf("%-36s %-10s default %-10s %s\n", i->name.c_str(), i->group.c_str(),
                    i->def.empty() ? "(unset)" : i->def.c_str(), i->help.c_str());
        // The value in force, or each member set of a family (COYOTE_SIM_IP_3), and whether it is well-formed.
        const bool family = i->name.back() == '>';
        const std::string prefix = family ? i->name.substr(0, i->name.rfind('<')) : i->name;
        for (const settings::SetValue& v : set) {
            if (family ? !v.name.starts_with(prefix) || v.name.size() == prefix.size() : v.name != i->name) continue;
            const std::string who = family ? v.name + " " : std::string();
            if (v.problem.empty()) std::printf("%-36s %sset to '%s'\n", "", who.c_str(), v.value.c_str());
            else std::printf("%-36s %sset to '%s': MALFORMED: %s\n", "", who.c_str(), v.value.c_str(), v.problem.c_str());
        }
    }
}

}  // namespace

/// Exit status 1 when standard output could not be written (a full disk under `> docs/settings.md`).
int flushed(int rc) {
    const std::string why = coyote::tools::stdout_failure();
    if (why.empty()) return rc;
    std::fprintf(stderr, "coyote-settings: writing to standard output: %s\n", why.c_str());
    return 1;
}

int main(int argc, char** argv) {
    if (argc > 2) {
        std::fprintf(stderr, "coyote-settings: one option at most, got %d\n", argc - 1);
        return usage(stderr);
    }
    const std::string opt = argc == 2 ? argv[1] : "";
    if (opt == "-h" || opt == "--help") return usage(stdout);
    if (opt == "--markdown") {
        std::fputs(settings::markdown().c_str(), stdout);
        return flushed(0);
    }
    if (opt == "--check") {
        try {
            settings::check_all();
        } catch (const coyote::Error& e) {
            std::fprintf(stderr, "coyote-settings: %s\n", e.what());
            return 1;
        }
        const auto wrong = settings::misspelled_in_environment();
        for (const auto& m : wrong)
            std::fprintf(stderr, "coyote-settings: %s=%s is set, but coyote-mpi reads no such variable: %s?\n",
                         m.name.c_str(), settings::foreign(m.name.c_str()).value_or("").c_str(), m.nearest.c_str());
        if (!wrong.empty()) return 1;
        std::puts("coyote-settings: every variable set here is well-formed");
        return flushed(0);
    }
    if (!opt.empty()) {
        std::fprintf(stderr, "coyote-settings: unknown option %s\n", opt.c_str());
        return usage(stderr);
    }
    list();
    return flushed(0);
}
