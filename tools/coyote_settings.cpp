// coyote-settings: lists every environment variable coyote-mpi reads, with its default, what it accepts and,
// for the variables set in this environment, the value in force. `--markdown` prints docs/settings.md.
#include <cstdio>
#include <cstring>
#include <string>

#include <coyote/error.hpp>

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
    for (const settings::Info* i : settings::all()) {
        const auto value = settings::foreign(i->name.c_str());
        std::printf("%-36s %-10s default %-10s %s\n", i->name.c_str(), i->group.c_str(),
                    i->def.empty() ? "(unset)" : i->def.c_str(), i->help.c_str());
        if (value) std::printf("%-36s set to '%s'\n", "", value->c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 2) return usage(stderr);
    const std::string opt = argc == 2 ? argv[1] : "";
    if (opt == "-h" || opt == "--help") return usage(stdout);
    if (opt == "--markdown") {
        std::fputs(settings::markdown().c_str(), stdout);
        return 0;
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
        return 0;
    }
    if (!opt.empty()) return usage(stderr);
    list();
    return 0;
}
