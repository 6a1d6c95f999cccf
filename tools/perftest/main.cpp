// coyote-mpi perftest-style tools: the main of coyote_<verb>_<lat|bw>, built once per tool with
// COYOTE_PERFTEST_VERB and COYOTE_PERFTEST_KIND naming the test.
#include <cstdio>

#include <coyote/error.hpp>

#include "perftest/perftest.hpp"

namespace pt = coyote::tools::perftest;

int main(int argc, char** argv) {
    std::string tool = argc > 0 ? argv[0] : "coyote_perftest";
    try {
        const auto opts = pt::parse_options(argc, argv, pt::Verb::COYOTE_PERFTEST_VERB, pt::Kind::COYOTE_PERFTEST_KIND);
        if (!opts) return 0;
        tool = opts->tool;
        const auto sizes = pt::sizes_of(*opts);
        const uint64_t max_size = sizes.back();
        auto session = pt::open_session(*opts, 2 * max_size, &argc, &argv);
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
        pt::write_json(*opts, *session, results);
        return all_verified ? 0 : 3;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", tool.c_str(), e.what());
        return 1;
    }
}
