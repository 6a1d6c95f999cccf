// coyote-mpi perftest-style tools: connecting the pair over TCP (perftest style: server, or client of <server>)
// or, under mpirun -np 2, over MPI; both sides then check that they were started with the same options.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/device.hpp"
#include "detail/settings.hpp"
#include "perftest/perftest.hpp"

#ifdef COYOTE_PERFTEST_MPI
#include <coyote/mpi/mpi.hpp>
#endif

namespace coyote::tools::perftest {

namespace {

namespace settings = ::coyote::detail::settings;

/// The options both sides must share, as 32-bit words.
std::vector<uint32_t> shared_words(const Options& o) {
    return {static_cast<uint32_t>(o.verb) * 16 + static_cast<uint32_t>(o.kind),
            o.all ? 0u : static_cast<uint32_t>(o.size), // -s does not count with -a
            o.all ? 1u : 0u, o.iters};
}
constexpr const char* k_word_names[] = {"test", "-s", "-a", "-n"};

/// Both sides compare their options over the out-of-band channel; throws on a mismatch.
void agree(cThread& t, const Options& o) {
    OobChannel* oob = t.getOob();
    const auto mine = shared_words(o);
    // The server's verdict: 1 when all agree, else bit i + 1 set for each word i that differs.
    uint32_t verdict = 0;
    if (oob->is_client()) {
        for (uint32_t w : mine) oob->send_ack(w);
        verdict = oob->read_ack();
    } else {
        for (size_t i = 0; i < mine.size(); ++i)
            if (oob->read_ack() != mine[i]) verdict |= 2u << i;
        if (verdict == 0) verdict = 1;
        oob->send_ack(verdict);
    }
    if (verdict != 1) {
        std::string which;
        for (size_t i = 0; i < std::size(k_word_names); ++i)
            if ((verdict & (2u << i)) != 0) which += std::string(which.empty() ? "" : ", ") + k_word_names[i];
        throw_error(Errc::invalid_argument, o.tool,
                    "the peer runs with another " + (which.empty() ? std::string("set of options") : which) +
                        "; start both sides with the same test and -s / -a / -n");
    }
}

class TcpSession final : public Session {
public:
    TcpSession(const Options& o, uint64_t size) : t_(o.vfid, ::getpid(), o.device), client_(o.server.has_value()) {
        buf_ = static_cast<std::byte*>(t_.initRDMA(size, o.port, client_ ? o.server->c_str() : nullptr));
        agree(t_, o);
    }
    ~TcpSession() override { t_.closeConn(); }
    cThread& thread() override { return t_; }
    bool client() const override { return client_; }
    const char* exchange_method() const override { return "Ethernet (TCP out-of-band)"; }
    std::byte* buffer() override { return buf_; }

private:
    cThread t_;
    bool client_;
    std::byte* buf_ = nullptr;
};

#ifdef COYOTE_PERFTEST_MPI
bool under_mpi_launcher() {
    return settings::foreign("OMPI_COMM_WORLD_SIZE") || settings::foreign("PMI_SIZE") ||
           settings::foreign("PMIX_RANK");
}

class MpiSession final : public Session {
public:
    MpiSession(const Options& o, uint64_t size, int* argc, char*** argv) : env_(argc, argv), world_() {
        if (world_.size() != 2)
            throw_error(Errc::invalid_argument, o.tool,
                        "under mpirun it takes exactly 2 ranks (mpirun -np 2), got " + std::to_string(world_.size()));
        Options mine = o;
        if (selected_backend_is_sim(o) && !o.device_set) mine.device = static_cast<uint32_t>(world_.local_rank());
        if (!selected_backend_is_sim(o) && !o.vfid_set) mine.vfid = world_.local_rank();
        t_ = std::make_unique<cThread>(mine.vfid, ::getpid(), mine.device);
        buf_ = static_cast<std::byte*>(t_->initRDMA(size, coyote::mpi::make_mpi_oob(world_, 1 - world_.rank())));
        agree(*t_, o);
        hold_output_ = !client();
    }
    ~MpiSession() override { t_.reset(); }
    cThread& thread() override { return *t_; }
    bool client() const override { return world_.rank() == 1; }
    const char* exchange_method() const override { return "MPI"; }
    std::byte* buffer() override { return buf_; }
    bool writes_json(const Options&) const override { return client(); }

    /// The server (rank 0) sends its held report to the client (rank 1), which prints it after its own.
    void finish_output() override {
        if (client())
            out(receive_report());
        else
            send_report();
    }

private:
    static constexpr int k_tag_report = 1;
    static constexpr uint64_t k_max_report = uint64_t{1} << 24;

    /// Moves a message of `n` bytes at `data` (send or receive) within the bootstrap deadline.
    void move(bool send, void* data, int n, MPI_Datatype type, const std::string& what) {
        const auto options = coyote::mpi::BootstrapOptions::from_env();
        std::vector<MPI_Request> reqs(1, MPI_REQUEST_NULL);
        const int peer = 1 - world_.rank();
        if (send)
            coyote::mpi::check_mpi(MPI_Isend(data, n, type, peer, k_tag_report, world_.get(), &reqs[0]), "MPI_Isend",
                                   what);
        else
            coyote::mpi::check_mpi(MPI_Irecv(data, n, type, peer, k_tag_report, world_.get(), &reqs[0]), "MPI_Irecv",
                                   what);
        coyote::mpi::wait_all(reqs, world_.get(), what, std::chrono::steady_clock::now() + options.timeout, options);
    }

    void send_report() {
        uint64_t len = std::min<uint64_t>(held_.size(), k_max_report);
        move(true, &len, 1, MPI_UINT64_T, "perftest report to rank 1: its length not delivered");
        if (len > 0)
            move(true, held_.data(), static_cast<int>(len), MPI_CHAR, "perftest report to rank 1: not delivered");
        held_.clear();
    }

    std::string receive_report() {
        uint64_t len = 0;
        move(false, &len, 1, MPI_UINT64_T, "perftest report of rank 0: rank 0 sent none");
        if (len > k_max_report)
            throw_error(Errc::protocol, "perftest", "the report of rank 0 announces " + std::to_string(len) + " bytes");
        std::string text(len, '\0');
        if (len > 0)
            move(false, text.data(), static_cast<int>(len), MPI_CHAR, "perftest report of rank 0: not received");
        return text;
    }

    static bool selected_backend_is_sim(const Options& o) {
        return coyote::detail::selected_backend(o.device, o.vfid) == "sim";
    }

    coyote::mpi::Environment env_;
    coyote::mpi::Communicator world_;
    std::unique_ptr<cThread> t_;
    std::byte* buf_ = nullptr;
};
#endif

}  // namespace

std::unique_ptr<Session> open_session(const Options& o, uint64_t buffer_size, int* argc, char*** argv) {
#ifdef COYOTE_PERFTEST_MPI
    if (under_mpi_launcher()) {
        if (o.server)
            throw_error(Errc::invalid_argument, o.tool, "under mpirun the ranks find each other: drop the server "
                                                        "address");
        return std::make_unique<MpiSession>(o, buffer_size, argc, argv);
    }
#else
    (void)argc;
    (void)argv;
#endif
    return std::make_unique<TcpSession>(o, buffer_size);
}

}  // namespace coyote::tools::perftest
