// The arrival step of every collective bootstrap step: rank 0 gathers one token per rank (naming the step) and
// answers each rank with a verdict: all arrived, a rank is at another step, or the ranks that did not arrive by
// its deadline. 3 (n - 1) messages per step, O(1) per rank other than 0: the ranks that are missing or out of
// order are named exactly, on every rank that is present.
#include <coyote/mpi/bootstrap.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int k_root = 0;
constexpr int k_tag_presence = k_tag_arrival + 1;  // rank 0 to every rank at its arrival: its token
constexpr int k_tag_verdict = k_tag_arrival + 2;   // rank 0 to every rank: the outcome of the step
constexpr int k_named_max = 32;                    // missing ranks named one by one in a message

/// What a token carries: the name of the step (cut to fit), so that ranks at different steps notice.
struct StepToken {
    char step[64];
};

enum class Outcome : uint32_t { ok = 0, out_of_order = 1, missing = 2 };

/// Rank 0's answer: the outcome and, unless ok, the message every rank reports.
struct Verdict {
    uint32_t outcome;
    char text[1020];
};

/// check_mpi with the context "<step>: <what>" built only on failure (the arrival step runs in every barrier).
void check(int rc, const char* call, const std::string& step, const char* what) {
    if (rc != MPI_SUCCESS) check_mpi(rc, call, step + ": " + what);
}

StepToken token_of(const std::string& step) {
    StepToken t{};
    std::strncpy(t.step, step.c_str(), sizeof(t.step) - 1);
    return t;
}

std::string step_of(const StepToken& t) { return std::string(t.step, strnlen(t.step, sizeof(t.step))); }

std::string text_of(const Verdict& v) { return std::string(v.text, strnlen(v.text, sizeof(v.text))); }

/// Frees the requests still pending after a failed step; their buffers (`keep`) stay allocated for good (MPI may
/// still read or write them).
template <class... Buffers>
void abandon(std::vector<MPI_Request>& reqs, Buffers&&... keep) noexcept {
    for (auto& r : reqs)
        if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
    ((void)keep.release(), ...);
}

std::string out_of_order(int rank, const std::string& theirs, const std::string& mine) {
    return "rank " + std::to_string(rank) + " is at bootstrap step '" + theirs + "' while rank " +
           std::to_string(k_root) + " is at '" + mine +
           "': the ranks called the bootstrap functions (Communicator, select_device, QpSet, Collectives, barrier, "
           "...) in different orders";
}

/// "rank 2 of 3" or "ranks 1, 3 of 4" (the first k_named_max, then how many more) for the pending receives.
std::string missing_ranks(const std::vector<MPI_Request>& recvs, const std::vector<int>& from, int n) {
    std::string names;
    int count = 0;
    for (std::size_t i = 0; i < recvs.size(); ++i) {
        if (recvs[i] == MPI_REQUEST_NULL) continue;
        if (count < k_named_max) names += (count ? ", " : "") + std::to_string(from[i]);
        ++count;
    }
    if (count > k_named_max) names += " and " + std::to_string(count - k_named_max) + " more";
    return std::string(count == 1 ? "rank " : "ranks ") + names + " of " + std::to_string(n);
}

/// Rank 0: receives every token until all came, one names another step, or the deadline passes.
Verdict gather(MPI_Comm comm, int n, const std::string& step, Clock::time_point deadline) {
    const std::string mine = step_of(token_of(step));
    auto tokens = std::make_unique<std::vector<StepToken>>(static_cast<std::size_t>(n));
    std::vector<MPI_Request> recvs;
    std::vector<int> from;
    for (int r = 0; r < n; ++r) {
        if (r == k_root) continue;
        recvs.push_back(MPI_REQUEST_NULL);
        from.push_back(r);
        check(MPI_Irecv((*tokens)[static_cast<std::size_t>(r)].step, sizeof(StepToken), MPI_CHAR, r, k_tag_arrival,
                        comm, &recvs.back()),
              "MPI_Irecv", step, "arrival token");
    }
    // A rank at another step may be waited for by the others' missing tokens as well: the lowest such rank is
    // named once every token came or the deadline passed (its message says more than who is missing).
    int odd = -1;
    detail::PollUntil poll(recvs, deadline, step.c_str());
    int done = 0;
    while ((done = poll.next()) >= 0) {
        const int r = from[static_cast<std::size_t>(done)];
        if (step_of((*tokens)[static_cast<std::size_t>(r)]) != mine && (odd < 0 || r < odd)) odd = r;
    }
    Verdict v{};
    std::string text;
    if (odd >= 0) {
        v.outcome = static_cast<uint32_t>(Outcome::out_of_order);
        text = out_of_order(odd, step_of((*tokens)[static_cast<std::size_t>(odd)]), mine);
    } else if (done == detail::PollUntil::expired) {
        v.outcome = static_cast<uint32_t>(Outcome::missing);
        text = missing_ranks(recvs, from, n) + " did not arrive at bootstrap step '" + step + "'";
    }
    if (done == detail::PollUntil::expired) {
        detail::cancel_incomplete(recvs);
        (void)tokens.release();  // a cancelled receive may still be written to
    }
    std::strncpy(v.text, text.c_str(), sizeof(v.text) - 1);
    return v;
}

/// Rank 0's part: presence to all, gather, verdict to all.
void arrive_as_root(MPI_Comm comm, int n, const std::string& step, const BootstrapOptions& options) {
    const auto deadline = Clock::now() + options.timeout;
    auto presence = std::make_unique<StepToken>(token_of(step));
    std::vector<MPI_Request> sends;
    for (int r = 0; r < n; ++r) {
        if (r == k_root) continue;
        sends.push_back(MPI_REQUEST_NULL);
        check(MPI_Isend(presence->step, sizeof(StepToken), MPI_CHAR, r, k_tag_presence, comm, &sends.back()),
              "MPI_Isend", step, "arrival presence");
    }
    auto verdict = std::make_unique<Verdict>(gather(comm, n, step, deadline));
    // Only the outcome and the text's bytes travel (an ok verdict is 5 bytes).
    const auto verdict_bytes =
        static_cast<int>(offsetof(Verdict, text) + strnlen(verdict->text, sizeof(verdict->text)) + 1);
    for (int r = 0; r < n; ++r) {
        if (r == k_root) continue;
        sends.push_back(MPI_REQUEST_NULL);
        check(MPI_Isend(verdict.get(), verdict_bytes, MPI_BYTE, r, k_tag_verdict, comm, &sends.back()),
              "MPI_Isend", step, "arrival verdict");
    }
    const auto outcome = static_cast<Outcome>(verdict->outcome);
    const std::string text = text_of(*verdict);
    if (outcome == Outcome::ok) {
        if (detail::test_until(sends, Clock::now() + options.timeout, step.c_str())) return;
        abandon(sends, presence, verdict);
        bootstrap_timeout(comm, "the verdict of bootstrap step '" + step + "' was not delivered", options);
    }
    abandon(sends, presence, verdict);  // a rank that did not arrive may never take them
    if (outcome == Outcome::out_of_order) throw_error(Errc::protocol, "bootstrap", text);
    bootstrap_timeout(comm, text, options);
}

/// Every other rank: token to rank 0, then its verdict. Rank 0's presence tells when it arrived: from then on the
/// wait lasts as long as rank 0's own deadline (and a little more), so that its verdict names who is missing.
void arrive_as_member(MPI_Comm comm, int me, int n, const std::string& step, const BootstrapOptions& options) {
    auto token = std::make_unique<StepToken>(token_of(step));
    auto presence = std::make_unique<StepToken>();
    auto verdict = std::make_unique<Verdict>();
    std::vector<MPI_Request> reqs(3, MPI_REQUEST_NULL);
    check(MPI_Irecv(presence->step, sizeof(StepToken), MPI_CHAR, k_root, k_tag_presence, comm, &reqs[0]),
          "MPI_Irecv", step, "arrival presence");
    check(MPI_Irecv(verdict.get(), sizeof(Verdict), MPI_BYTE, k_root, k_tag_verdict, comm, &reqs[1]), "MPI_Irecv",
          step, "arrival verdict");
    check(MPI_Isend(token->step, sizeof(StepToken), MPI_CHAR, k_root, k_tag_arrival, comm, &reqs[2]), "MPI_Isend",
          step, "arrival token");
    const auto slack = std::min<Clock::duration>(options.timeout, std::chrono::seconds(2));
    detail::PollUntil poll(reqs, Clock::now() + options.timeout, step.c_str());
    bool present = false;
    for (;;) {
        const int done = poll.next();
        if (done == 0) {
            present = true;
            poll.extend(Clock::now() + options.timeout + slack);
        }
        if (done == 1 || done == detail::PollUntil::all_done || done == detail::PollUntil::expired) break;
    }
    if (reqs[1] != MPI_REQUEST_NULL) {  // no verdict by the deadline
        detail::cancel_incomplete(reqs[0]);
        detail::cancel_incomplete(reqs[1]);
        abandon(reqs, token, presence, verdict);
        const std::string who = "rank " + std::to_string(k_root) + " of " + std::to_string(n);
        bootstrap_timeout(comm,
                          present ? who + " arrived at bootstrap step '" + step +
                                        "' but gave no verdict by the deadline (it gathers every rank's arrival: "
                                        "it is stuck or gone)"
                                  : who + " did not arrive at bootstrap step '" + step + "'",
                          options);
    }
    const auto outcome = static_cast<Outcome>(verdict->outcome);
    const std::string text = text_of(*verdict);
    if (outcome == Outcome::ok) {
        if (detail::test_until(reqs, Clock::now() + options.timeout, step.c_str())) return;
        abandon(reqs, token, presence, verdict);
        bootstrap_timeout(comm, "rank " + std::to_string(me) + "'s arrival at bootstrap step '" + step +
                                    "' was not delivered", options);
    }
    detail::cancel_incomplete(reqs[0]);  // rank 0's presence, when the verdict overtook it
    abandon(reqs, token, presence, verdict);
    if (outcome == Outcome::out_of_order) throw_error(Errc::protocol, "bootstrap", text);
    if (outcome != Outcome::missing)
        throw_error(Errc::protocol, "bootstrap",
                    "rank 0's verdict of bootstrap step '" + step + "' is malformed (outcome " +
                        std::to_string(static_cast<uint32_t>(outcome)) + "; another coyote-mpi version?)");
    bootstrap_timeout(comm, text, options);
}

}  // namespace

void detail::arrive_on(MPI_Comm comm, int me, int n, const std::string& step, const BootstrapOptions& options) {
    if (n == 1) return;
    if (me == k_root)
        arrive_as_root(comm, n, step, options);
    else
        arrive_as_member(comm, me, n, step, options);
}

void arrive(const Communicator& comm, const std::string& step, const BootstrapOptions& options) {
    detail::require_valid(comm, "arrive");
    detail::arrive_on(comm.get(), comm.rank(), comm.size(), step, options);
}

}  // namespace coyote::mpi
