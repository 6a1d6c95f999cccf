#include <coyote/mpi/bootstrap.hpp>

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "detail/settings.hpp"
#include "bootstrap/mpi_state.hpp"
#include "diag/wait.hpp"

namespace coyote::mpi {

using Clock = std::chrono::steady_clock;

namespace {
constexpr unsigned k_spin_polls = 64;  // polls (MPI_Testsome calls, a few us in all) before each further poll yields
}  // namespace

detail::PollUntil::PollUntil(std::vector<MPI_Request>& reqs, Clock::time_point deadline, const char* what)
    : reqs_(reqs), indices_(reqs.size()), start_(Clock::now()), deadline_(deadline), what_(what) {}

int detail::PollUntil::next() {
    // MPI_Testsome (not MPI_Testall) so that completed requests become MPI_REQUEST_NULL: after a timeout the
    // remaining ones say who is missing. Yields between polls (after the first few) so that oversubscribed ranks
    // make progress.
    for (;;) {
        if (ready_ < count_) return indices_[static_cast<std::size_t>(ready_++)];
        count_ = ready_ = 0;
        int outcount = 0;
        check_mpi(MPI_Testsome(static_cast<int>(reqs_.size()), reqs_.data(), &outcount, indices_.data(),
                               MPI_STATUSES_IGNORE),
                  "MPI_Testsome", what_);
        if (outcount == MPI_UNDEFINED) return all_done;  // no active request left
        if (outcount > 0) {
            count_ = outcount;
            continue;
        }
        if ((++polls_ & 0x3F) == 0) {
            const auto now = Clock::now();
            if (now >= deadline_) return expired;
            if (!watch_ && now - start_ >= std::chrono::milliseconds(1))
                watch_.emplace("MPI bootstrap", std::string("the other ranks: ") + what_,
                               "a rank has not reached this step (busy elsewhere, stuck or gone); the step fails at "
                               "its deadline (COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS)");
        }
        if (polls_ > k_spin_polls) ::sched_yield();  // spin briefly first: a peer on another core answers in us
    }
}

bool detail::test_until(std::vector<MPI_Request>& reqs, Clock::time_point deadline, const char* what) {
    PollUntil poll(reqs, deadline, what);
    int done = 0;
    while ((done = poll.next()) >= 0) {
    }
    return done == PollUntil::all_done;
}

void detail::cancel_incomplete(MPI_Request& r) noexcept {
    if (r == MPI_REQUEST_NULL) return;
    MPI_Cancel(&r);
    MPI_Request_free(&r);
}

void detail::cancel_incomplete(std::vector<MPI_Request>& reqs) noexcept {
    for (auto& r : reqs) cancel_incomplete(r);
}

void bootstrap_timeout(MPI_Comm comm, const std::string& message, const BootstrapOptions& options) {
    const std::string full = message + " (deadline " + std::to_string(options.timeout.count()) +
                             " ms, COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS)";
    if (options.on_timeout == OnTimeout::abort) {
        int rank = -1;
        MPI_Comm_rank(comm, &rank);
        std::fprintf(stderr, "coyote-mpi: rank %d: bootstrap deadline expired: %s; aborting the job\n", rank,
                     full.c_str());
        std::fflush(stderr);
        MPI_Abort(comm, 3);
        std::_Exit(3);  // MPI_Abort does not return; in case it does
    }
    throw_error(Errc::timeout, "bootstrap", full);
}

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Millis k_bootstrap_timeout{"COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS", "mpi", BootstrapOptions{}.timeout,
                                           "deadline of every bootstrap step (communicator set-up, device selection, QP wiring, barriers)"};
const settings::Flag k_allow_singleton{"COYOTE_MPI_ALLOW_SINGLETON", "mpi", false,
                                       "allow a 1-rank MPI_COMM_WORLD while the launcher claims more ranks"};

[[noreturn]] void fail_timeout(const Communicator& comm, const std::string& message, const BootstrapOptions& options) {
    bootstrap_timeout(comm.get(), message, options);
}

std::optional<long> parse_positive(const std::string& text) {
    if (text.empty()) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (errno != 0 || end == nullptr || *end != '\0' || v <= 0) return std::nullopt;
    return v;
}

}  // namespace

BootstrapOptions BootstrapOptions::from_env() {
    BootstrapOptions o;
    o.timeout = k_bootstrap_timeout.get();
    return o;
}

void check_launch(int world_size, const std::map<std::string, std::string>& env) {
    if (world_size != 1) return;
    if (auto it = env.find("COYOTE_MPI_ALLOW_SINGLETON"); it != env.end() && it->second == "1") return;
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "SLURM_NPROCS"}) {
        auto it = env.find(var);
        if (it == env.end()) continue;
        const auto n = parse_positive(it->second);
        if (n && *n > 1)
            throw_error(Errc::invalid_argument, "check_launch",
                        std::string("MPI_COMM_WORLD has 1 rank but ") + var + "=" + it->second +
                            " says the job has " + std::to_string(*n) +
                            ": each process started as an MPI singleton (launcher and MPI library do not match, "
                            "or srun without --mpi=pmix); start the program with the mpirun/srun of the MPI it "
                            "was built with (set COYOTE_MPI_ALLOW_SINGLETON=1 to run single-rank on purpose)");
    }
}

void check_launch() {
    detail::require_mpi("check_launch");
    int size = 0;
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size", "MPI_COMM_WORLD");
    std::map<std::string, std::string> env;
    if (k_allow_singleton.get()) env["COYOTE_MPI_ALLOW_SINGLETON"] = "1";
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "SLURM_NPROCS"})
        if (auto v = ::coyote::detail::settings::foreign(var)) env[var] = *v;
    check_launch(size, env);
}

void wait_all(std::vector<MPI_Request>& requests, MPI_Comm comm, const std::string& what,
              Clock::time_point deadline, const BootstrapOptions& options) {
    if (detail::test_until(requests, deadline, what.c_str())) return;
    detail::cancel_incomplete(requests);
    bootstrap_timeout(comm, what, options);
}

void detail::wait_uncancellable(MPI_Request& req, MPI_Comm comm, const std::string& step, const std::string& failure,
                                Clock::time_point deadline, const BootstrapOptions& options) {
    std::vector<MPI_Request> one{req};
    if (detail::test_until(one, deadline, step.c_str())) {
        req = MPI_REQUEST_NULL;
        return;
    }
    bootstrap_timeout(comm, failure, options);
}

namespace {

/// Waits for a non-blocking collective; on timeout its buffers must stay alive, so they are leaked.
void wait_collective(MPI_Request& req, const Communicator& comm, const std::string& step,
                     const BootstrapOptions& options, Clock::time_point deadline,
                     std::vector<std::byte>& send_buf, std::vector<std::byte>& recv_buf) {
    std::vector<MPI_Request> one{req};
    if (detail::test_until(one, deadline, step.c_str())) {
        req = MPI_REQUEST_NULL;
        return;
    }
    // The collective cannot be cancelled: hand both buffers to MPI for good (only reached before failing).
    (void)new std::vector<std::byte>(std::move(send_buf));
    (void)new std::vector<std::byte>(std::move(recv_buf));
    fail_timeout(comm, "collective of bootstrap step '" + step + "' did not complete although every rank arrived",
                 options);
}

}  // namespace

std::vector<std::byte> allgather_bytes(const Communicator& comm, const void* mine, std::size_t bytes_per_rank,
                                       const std::string& step, const BootstrapOptions& options) {
    if (bytes_per_rank > static_cast<std::size_t>(INT32_MAX))
        throw_error(Errc::invalid_argument, "allgather_bytes", step + ": slot too large");
    arrive(comm, step, options);
    const auto deadline = Clock::now() + options.timeout;
    std::vector<std::byte> send(static_cast<const std::byte*>(mine), static_cast<const std::byte*>(mine) + bytes_per_rank);
    std::vector<std::byte> out(bytes_per_rank * static_cast<std::size_t>(comm.size()));
    MPI_Request req = MPI_REQUEST_NULL;
    const int count = static_cast<int>(bytes_per_rank);
    check_mpi(MPI_Iallgather(send.data(), count, MPI_BYTE, out.data(), count, MPI_BYTE, comm.get(), &req),
              "MPI_Iallgather", step);
    wait_collective(req, comm, step, options, deadline, send, out);
    return out;
}

std::vector<std::byte> alltoall_bytes(const Communicator& comm, const std::vector<std::byte>& send,
                                      std::size_t slot_bytes, const std::string& step,
                                      const BootstrapOptions& options) {
    const auto n = static_cast<std::size_t>(comm.size());
    if (send.size() != slot_bytes * n)
        throw_error(Errc::invalid_argument, "alltoall_bytes",
                    step + ": send buffer has " + std::to_string(send.size()) + " bytes, expected " +
                        std::to_string(n) + " slots of " + std::to_string(slot_bytes));
    if (slot_bytes > static_cast<std::size_t>(INT32_MAX))
        throw_error(Errc::invalid_argument, "alltoall_bytes", step + ": slot too large");
    arrive(comm, step, options);
    const auto deadline = Clock::now() + options.timeout;
    std::vector<std::byte> out(slot_bytes * n);
    std::vector<std::byte> in = send;
    MPI_Request req = MPI_REQUEST_NULL;
    const int count = static_cast<int>(slot_bytes);
    check_mpi(MPI_Ialltoall(in.data(), count, MPI_BYTE, out.data(), count, MPI_BYTE, comm.get(), &req),
              "MPI_Ialltoall", step);
    wait_collective(req, comm, step, options, deadline, in, out);
    return out;
}

}  // namespace coyote::mpi
