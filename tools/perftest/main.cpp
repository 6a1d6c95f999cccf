// coyote-mpi perftest-style tools: the main of coyote_<verb>_<lat|bw>, built once per tool with
// COYOTE_PERFTEST_VERB and COYOTE_PERFTEST_KIND naming the test.
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <coyote/error.hpp>

#include "common/output.hpp"
#include "perftest/perftest.hpp"

namespace pt = coyote::tools::perftest;

namespace {

/// "tool: message" once (a coyote::Error raised for the tool already starts with its name).
void report_error(const std::string& tool, const std::exception& e) {
    const auto* ce = dynamic_cast<const coyote::Error*>(&e);
    if (ce != nullptr && ce->call() == tool) std::fprintf(stderr, "%s\n", e.what());
    else std::fprintf(stderr, "%s: %s\n", tool.c_str(), e.what());
}

} // namespace

int main(int argc, char** argv) {
    const std::string prog = argc > 0 ? argv[0] : "coyote_perftest";
    std::string tool = prog.substr(prog.find_last_of('/') + 1);
    std::optional<pt::Options> opts;
    try {
        opts = pt::parse_options(argc, argv, pt::Verb::COYOTE_PERFTEST_VERB, pt::Kind::COYOTE_PERFTEST_KIND);
        if (!opts) return 0;
    } catch (const std::exception& e) {
        report_error(tool, e);
        return 2; // a usage error, as coyote-info's and coyote-sim-bitstream's
    }
    try {
        const auto sizes = pt::sizes_of(*opts);
        const uint64_t max_size = sizes.back();
        auto session = pt::open_session(*opts, 2 * max_size, &argc, &argv);
        // The JSON file is opened before the run: a path that cannot be written fails now, not after it.
        std::ofstream json = pt::open_json(*opts, *session);
        pt::print_header(*opts, *session);
        if (session->client()) pt::print_columns(*opts, *session);
        std::vector<pt::Result> results;
        bool all_verified = true;
        for (uint64_t size : sizes) {
            results.push_back(pt::run_size(*session, *opts, size, max_size));
            if (session->client()) pt::print_row(*opts, *session, results.back());
            all_verified = all_verified && results.back().verified;
        }
        pt::print_verdict(*session, all_verified, results.size());
        session->finish_output();
        pt::write_json(*opts, *session, results, json);
        if (const std::string why = coyote::tools::stdout_failure(); !why.empty()) {
            std::fprintf(stderr, "%s: writing the report to standard output: %s\n", tool.c_str(), why.c_str());
            return 1;
        }
        return all_verified ? 0 : 3;
    } catch (const std::exception& e) {
        report_error(tool, e);
        return 1;
    }
}
