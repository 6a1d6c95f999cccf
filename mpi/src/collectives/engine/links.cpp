// coyote-mpi collectives engine: links, queue pairs opened on demand for point-to-point messages to ranks
// outside the wired peer set (hello / ready / refuse over MPI on the engine's own communicator, see link.hpp).
#include "collectives/engine/engine.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

namespace {

constexpr auto k_link_poll = std::chrono::milliseconds(1); // MPI poll interval while no link is being opened
constexpr auto k_link_drain = std::chrono::seconds(2);     // teardown: wait this long for owed link messages

[[noreturn]] void malformed_link(int from, const std::string& why) {
    throw_error(Errc::protocol, "collectives",
                "malformed queue-pair link message from rank " + std::to_string(from) + ": " + why);
}

}  // namespace

std::vector<int> Engine::link_peers() {
    std::lock_guard lk(mtx_);
    std::vector<int> out;
    for (const auto& [p, l] : links_)
        if (l.thread) out.push_back(p);
    return out;
}

Channel& Engine::p2p_chan(int peer, const char* what) {
    check_peer(peer, what);
    if (Channel* c = chan_of_[static_cast<std::size_t>(peer)]) {
        if (c->lazy) {
            const Link& l = links_.at(peer);
            if (l.error) std::rethrow_exception(l.error);
        }
        return *c;
    }
    if (!owner_thread())
        throw_error(Errc::invalid_argument, what,
                    "rank " + std::to_string(rank_) + " has no queue pair to rank " + std::to_string(peer) +
                        " yet: the first message between them opens one over MPI, which only the thread that "
                        "created the Collectives object may call");
    Link& l = links_[peer];
    if (l.error) std::rethrow_exception(l.error);
    open_link(peer, l);
    send_link_msg(peer, k_link_hello, l.blob, {});
    l.hello_sent = true;
    ++links_waiting_;
    return *chan_of_[static_cast<std::size_t>(peer)];
}

void Engine::open_link(int peer, Link& l) {
    std::unique_ptr<cThread> t;
    try {
        t = std::make_unique<cThread>(device_.vfid, ::getpid(), device_.device);
    } catch (const Error& e) {
        if (e.code() != make_error_code(Errc::resource_exhausted)) throw;
        throw_error(Errc::resource_exhausted, "collectives",
                    "rank " + std::to_string(rank_) + " cannot open a queue pair to rank " + std::to_string(peer) +
                        " for point-to-point messages: every ctid of vFPGA " + std::to_string(device_.vfid) +
                        " on device " + std::to_string(device_.device) + " is taken (" +
                        std::to_string(chans_.size()) + " queue pairs of this Collectives object) [" + e.what() + "]");
    }
    auto* buf = static_cast<std::byte*>(
        t->getMem({CoyoteAllocType::HPF, static_cast<uint32_t>(cfg_.buffer_size), true}));
    Channel c = make_channel(peer, *t, buf);
    c.lazy = true;
    c.ready = false;
    l.blob = t->exportQp();
    if (l.blob.empty() || l.blob.size() > k_link_max_blob)
        throw_error(Errc::protocol, "collectives", "exportQp gave a blob of " + std::to_string(l.blob.size()) + " bytes");
    l.thread = std::move(t);
    chan_of_[static_cast<std::size_t>(peer)] = &chans_.emplace(peer, std::move(c)).first->second;
}

void Engine::send_link_msg(int peer, uint32_t type, const std::vector<std::byte>& blob, const std::string& text) {
    LinkMsg m;
    m.type = type;
    m.src = rank_;
    m.dst = peer;
    m.buffer_size = cfg_.buffer_size;
    m.blob_len = static_cast<uint32_t>(blob.size());
    std::strncpy(m.text, text.c_str(), sizeof(m.text) - 1);
    LinkSend s;
    s.data.resize(sizeof(m) + blob.size());
    std::memcpy(s.data.data(), &m, sizeof(m));
    if (!blob.empty()) std::memcpy(s.data.data() + sizeof(m), blob.data(), blob.size());
    mpi::check_mpi(MPI_Isend(s.data.data(), static_cast<int>(s.data.size()), MPI_BYTE, peer, k_link_tag,
                             link_comm_->get(), &s.req),
                   "MPI_Isend", "queue-pair link message to rank " + std::to_string(peer));
    link_sends_.push_back(std::move(s));
}

void Engine::reap_link_sends() {
    while (!link_sends_.empty()) {
        int flag = 0;
        mpi::check_mpi(MPI_Test(&link_sends_.front().req, &flag, MPI_STATUS_IGNORE), "MPI_Test", "queue-pair link message");
        if (!flag) break;
        link_sends_.pop_front();
    }
}

void Engine::fail_link(int peer, std::exception_ptr error) {
    Link& l = links_[peer];
    if (l.hello_sent && !l.peer_ready && !l.error) --links_waiting_;
    l.error = error;
    auto it = chans_.find(peer);
    if (it == chans_.end()) return;
    Channel& c = it->second;
    for (auto* q : {&c.sendq, &c.posted}) {
        for (auto& op : *q) {
            op->error = error;
            op->done.store(true, std::memory_order_release);
        }
        q->clear();
    }
}

void Engine::progress_links(bool force, bool defer_errors) {
    if (!owner_thread()) return;
    if (!defer_errors && link_error_) {
        // Met inside a collective earlier: reported to the next point-to-point call.
        auto e = std::exchange(link_error_, nullptr);
        std::rethrow_exception(e);
    }
    const auto now = Clock::now();
    if (!force && links_waiting_ == 0 && now < next_link_poll_) return;
    next_link_poll_ = now + k_link_poll;
    if (!defer_errors) {
        poll_links();
        return;
    }
    // Inside a collective: a failing MPI call or a malformed link message is not the collective's failure (a
    // dead peer, for one, must be reported by the collective as such).
    try {
        poll_links();
    } catch (...) {
        if (!link_error_) link_error_ = std::current_exception();
    }
}

void Engine::poll_links() {
    reap_link_sends();
    for (;;) {
        int flag = 0;
        MPI_Status st;
        mpi::check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, k_link_tag, link_comm_->get(), &flag, &st), "MPI_Iprobe",
                       "queue-pair link messages");
        if (!flag) break;
        int n = 0;
        mpi::check_mpi(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count", "queue-pair link message");
        if (n < 0 || static_cast<std::size_t>(n) > sizeof(LinkMsg) + k_link_max_blob)
            throw_error(Errc::protocol, "collectives",
                        "malformed queue-pair link message from rank " + std::to_string(st.MPI_SOURCE) + ": " +
                            std::to_string(n) + " bytes, more than a hello can carry");
        std::vector<std::byte> msg(static_cast<std::size_t>(std::max(n, 0)));
        mpi::check_mpi(MPI_Recv(msg.data(), n, MPI_BYTE, st.MPI_SOURCE, k_link_tag, link_comm_->get(), MPI_STATUS_IGNORE),
                       "MPI_Recv", "queue-pair link message from rank " + std::to_string(st.MPI_SOURCE));
        on_link_msg(st.MPI_SOURCE, msg.data(), msg.size());
    }
}

void Engine::on_link_msg(int from, const std::byte* msg, std::size_t bytes) {
    LinkMsg m;
    if (bytes < sizeof(LinkMsg))
        malformed_link(from, std::to_string(bytes) + " bytes, shorter than its 256-byte header");
    std::memcpy(&m, msg, sizeof(m));
    if (m.magic != k_link_magic) malformed_link(from, "bad magic");
    if (m.src != from || m.dst != rank_)
        malformed_link(from, "it names rank " + std::to_string(m.src) + " -> rank " + std::to_string(m.dst));
    if (m.blob_len != bytes - sizeof(LinkMsg) || m.blob_len > k_link_max_blob)
        malformed_link(from, "blob length " + std::to_string(m.blob_len) + " in a message of " +
                                 std::to_string(bytes) + " bytes");
    if (m.type < k_link_hello || m.type > k_link_refuse) malformed_link(from, "unknown type " + std::to_string(m.type));
    if (m.buffer_size != cfg_.buffer_size)
        malformed_link(from, "buffer size " + std::to_string(m.buffer_size) + " where this rank uses " +
                                 std::to_string(cfg_.buffer_size));
    if (qps_.has_peer(from)) malformed_link(from, "a link was requested although the ranks are wired");
    using Handler = void (Engine::*)(int, Link&, const LinkMsg&, const std::byte*);
    static constexpr Handler k_handlers[] = {&Engine::on_link_hello, &Engine::on_link_ready, &Engine::on_link_refuse};
    (this->*k_handlers[m.type - k_link_hello])(from, links_[from], m, msg + sizeof(LinkMsg));
}

void Engine::on_link_refuse(int from, Link&, const LinkMsg& m, const std::byte*) {
    const std::string reason(m.text, strnlen(m.text, sizeof(m.text)));
    fail_link(from, std::make_exception_ptr(Error(make_error_code(Errc::resource_exhausted), "collectives",
                                                  "rank " + std::to_string(from) + " cannot open a queue pair for rank " +
                                                      std::to_string(rank_) + ": " + reason)));
}

void Engine::on_link_ready(int from, Link& l, const LinkMsg&, const std::byte*) {
    if (l.error) return; // this side failed (connecting to the peer's blob) and refused already
    if (!l.connected || l.peer_ready) malformed_link(from, l.peer_ready ? "a second ready" : "ready before its hello");
    l.peer_ready = true;
    --links_waiting_;
    chans_.at(from).ready = true;
}

void Engine::on_link_hello(int from, Link& l, const LinkMsg& m, const std::byte* blob) {
    if (l.connected) malformed_link(from, "a second hello");
    if (l.error) return; // this side failed or was refused; the peer has been (or is being) told
    if (!l.hello_sent) {
        try {
            open_link(from, l);
        } catch (const std::exception& e) {
            send_link_msg(from, k_link_refuse, {}, e.what());
            l.error = std::current_exception();
            return;
        }
        send_link_msg(from, k_link_hello, l.blob, {});
        l.hello_sent = true;
        ++links_waiting_;
    }
    try {
        l.thread->connectQp(std::span<const std::byte>(blob, m.blob_len));
    } catch (const std::exception& e) {
        send_link_msg(from, k_link_refuse, {}, std::string("connecting failed: ") + e.what());
        fail_link(from, std::current_exception());
        return;
    }
    l.connected = true;
    send_link_msg(from, k_link_ready, {}, {});
}

void Engine::drain_links() noexcept {
    // Link messages still owed to us (a peer's ready we never polled for) are received so that none is left in
    // the communicator; our own sends are completed. Both are bounded.
    const auto drain_until = Clock::now() + k_link_drain;
    try {
        std::lock_guard lk(mtx_);
        for (;;) {
            progress_links(true, true);
            if ((links_waiting_ == 0 && link_sends_.empty()) || Clock::now() > drain_until) break;
            ::sched_yield();
        }
    } catch (...) {
        // teardown never throws; a malformed or failed link message changes nothing here
    }
    for (auto& s : link_sends_) {
        // An eager send not complete by now: let MPI finish it; its buffer is left allocated on purpose.
        if (s.req != MPI_REQUEST_NULL) {
            MPI_Request_free(&s.req);
            new std::vector<std::byte>(std::move(s.data));
        }
    }
    link_sends_.clear();
}

}  // namespace coyote::detail::coll
