// coyote-mpi collectives engine: point-to-point messages: posting sends and receives, matching arrivals with
// posted receives (or keeping them as unexpected), progress, test and wait.
#include "collectives/engine/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <coyote/mpi/collectives.hpp>

#include "collectives/engine/internal.hpp"

namespace coyote::detail::coll {

using namespace engine_detail;

namespace {

/// The error of a receive whose buffer of `capacity` bytes is too small for the message.
std::exception_ptr too_long(uint64_t total, int peer, int tag, uint64_t capacity) {
    return std::make_exception_ptr(Error(make_error_code(Errc::invalid_argument), "recv",
                                         "message of " + std::to_string(total) + " bytes from rank " +
                                             std::to_string(peer) + " (tag " + std::to_string(tag) +
                                             ") exceeds the receive buffer of " + std::to_string(capacity) + " bytes"));
}

/// A new point-to-point operation.
std::shared_ptr<OpState> p2p_op(int peer, int tag, uint64_t bytes) {
    auto op = std::make_shared<OpState>();
    op->is_p2p = true;
    op->peer = peer;
    op->tag = tag;
    op->bytes = bytes;
    return op;
}

}  // namespace

void Engine::dispatch_p2p(Channel& c, const MsgHeader& h, const std::byte* payload) {
    if (h.first != 0) {
        begin_p2p(c, h);
    } else if (!c.in_active) {
        throw_error(Errc::protocol, "recv", "rank " + std::to_string(c.peer) + " sent a continuation without a message");
    }
    if (h.len > c.in_total - c.in_got)
        throw_error(Errc::protocol, "recv",
                    "rank " + std::to_string(c.peer) + " sent more than the " + std::to_string(c.in_total) +
                        " bytes its message announced");
    if (h.len != 0) {
        if (c.in_req)
            std::memcpy(c.in_req->rbuf + c.in_got, payload, h.len);
        else if (c.in_unexp)
            std::memcpy(c.in_unexp->data.data() + c.in_got, payload, h.len);
    }
    c.in_got += h.len;
    if (c.in_got == c.in_total) {
        if (c.in_req) c.in_req->done.store(true, std::memory_order_release);
        if (c.in_unexp) c.in_unexp->complete = true;
        c.in_active = false;
        c.in_req.reset();
        c.in_unexp.reset();
    }
}

void Engine::begin_p2p(Channel& c, const MsgHeader& h) {
    if (c.in_active)
        throw_error(Errc::protocol, "recv",
                    "rank " + std::to_string(c.peer) + " started a new message before finishing the previous one");
    c.in_active = true;
    c.in_total = h.total;
    c.in_got = 0;
    c.in_tag = h.tag;
    c.in_discard = false;
    c.in_req.reset();
    c.in_unexp.reset();
    const auto it = std::find_if(c.posted.begin(), c.posted.end(), [&](const std::shared_ptr<OpState>& r) {
        return r->tag == mpi::any_tag || r->tag == h.tag;
    });
    if (it == c.posted.end()) {
        auto u = std::make_shared<Unexpected>();
        u->tag = h.tag;
        u->total = h.total;
        u->data.resize(h.total);
        c.unexpected.push_back(u);
        c.in_unexp = std::move(u);
        return;
    }
    auto req = *it;
    c.posted.erase(it);
    if (h.total > req->bytes) {
        req->error = too_long(h.total, c.peer, h.tag, req->bytes);
        req->done.store(true, std::memory_order_release);
        c.in_discard = true;
    } else {
        req->received = h.total;
        c.in_req = std::move(req);
    }
}

void Engine::complete_from_unexpected(OpState& op) {
    const auto& u = *op.from_unexpected;
    if (u.total > op.bytes) {
        op.error = too_long(u.total, op.peer, u.tag, op.bytes);
    } else {
        if (u.total != 0) std::memcpy(op.rbuf, u.data.data(), u.total);
        op.received = u.total;
    }
    op.from_unexpected.reset();
    op.done.store(true, std::memory_order_release);
}

void Engine::progress_p2p(Channel* drain, bool in_collective) {
    progress_links(false, in_collective);
    for (auto& [p, c] : chans_) {
        if (!c.ready) continue;
        push_p2p_sends(c);
        pull_p2p(c, &c == drain);
    }
    for (auto& op : p2p_pending_)
        if (op->from_unexpected && op->from_unexpected->complete) complete_from_unexpected(*op);
    p2p_pending_.erase(std::remove_if(p2p_pending_.begin(), p2p_pending_.end(),
                                      [](const std::shared_ptr<OpState>& o) { return o->done.load(); }),
                       p2p_pending_.end());
}

void Engine::push_p2p_sends(Channel& c) {
    while (!c.sendq.empty()) {
        OpState& op = *c.sendq.front();
        while (!op.started || op.progress < op.bytes) {
            if (!can_send(c, 2)) return;
            const auto len = static_cast<uint32_t>(std::min<uint64_t>(payload_, op.bytes - op.progress));
            if (len != 0) std::memcpy(staging(c), op.sbuf + op.progress, len);
            MsgHeader h;
            h.kind = k_kind_p2p;
            h.len = len;
            h.epoch = op.msg_id;
            h.tag = op.tag;
            h.first = op.started ? 0 : 1;
            h.total = op.bytes;
            post(c, h);
            op.started = true;
            op.progress += len;
        }
        op.done.store(true, std::memory_order_release);
        c.sendq.pop_front();
    }
}

void Engine::pull_p2p(Channel& c, bool drain) {
    // Incoming point-to-point messages at the head of the ring.
    for (;;) {
        const std::byte* pl = nullptr;
        const MsgHeader* h = head(c, &pl);
        if (h == nullptr) break;
        if (h->kind == k_kind_p2p) {
            dispatch_p2p(c, *h, pl);
            release_head(c);
        } else if (h->kind == k_kind_rtr) {
            set_aside(c, *h, nullptr);
            release_head(c);
        } else if (drain) {
            set_aside(c, *h, pl);
            release_head(c);
        } else {
            check_current(c, *h); // left at the head for its call
            break;
        }
    }
}

std::shared_ptr<OpState> Engine::post_send(const void* buf, uint64_t bytes, int peer, int tag) {
    std::lock_guard lk(mtx_);
    Channel& c = p2p_chan(peer, "send");
    auto op = p2p_op(peer, tag, bytes);
    op->is_send = true;
    op->sbuf = static_cast<const std::byte*>(buf);
    op->msg_id = c.p2p_msgs_out++;
    op->what = "send to rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ", " + std::to_string(bytes) +
               " bytes)";
    c.sendq.push_back(op);
    p2p_pending_.push_back(op);
    progress_p2p(nullptr);
    return op;
}

std::shared_ptr<OpState> Engine::post_recv(void* buf, uint64_t bytes, int peer, int tag) {
    std::lock_guard lk(mtx_);
    Channel& c = p2p_chan(peer, "recv");
    auto op = p2p_op(peer, tag, bytes);
    op->rbuf = static_cast<std::byte*>(buf);
    op->what = "recv from rank " + std::to_string(peer) + " (tag " +
               (tag == mpi::any_tag ? std::string("any") : std::to_string(tag)) + ", up to " + std::to_string(bytes) +
               " bytes)";
    const auto it = std::find_if(c.unexpected.begin(), c.unexpected.end(), [&](const std::shared_ptr<Unexpected>& u) {
        return tag == mpi::any_tag || u->tag == tag;
    });
    if (it != c.unexpected.end()) {
        op->from_unexpected = *it;
        c.unexpected.erase(it);
        if (op->from_unexpected->complete) {
            complete_from_unexpected(*op);
            return op;
        }
    } else {
        c.posted.push_back(op);
    }
    p2p_pending_.push_back(op);
    progress_p2p(&c);
    return op;
}

bool Engine::test(OpState& op) {
    if (op.is_p2p && !op.done.load(std::memory_order_acquire)) {
        std::lock_guard lk(mtx_);
        Channel* drain = op.is_send ? nullptr : &chan(op.peer, "test");
        progress_p2p(drain);
        if (!op.done.load(std::memory_order_acquire)) flush_credits();
    }
    if (!op.done.load(std::memory_order_acquire)) return false;
    if (op.error) std::rethrow_exception(op.error);
    return true;
}

bool Engine::wait(OpState& op, std::optional<std::chrono::milliseconds> timeout) {
    const auto start = Clock::now();
    const auto limit = timeout ? *timeout : cfg_.timeout;
    for (;;) {
        if (test(op)) return true;
        ::sched_yield();
        const auto now = Clock::now();
        bool linking = false;
        bool peer_closed = false;
        if (op.is_p2p) {
            std::lock_guard lk(mtx_);
            check_abort(op.what);
            Channel& c = chan(op.peer, "wait");
            linking = !c.ready;
            if (c.ready && now - c.last_probe >= cfg_.probe_interval && now - start >= cfg_.probe_interval) {
                c.last_probe = now;
                probe(c, op.what);
                Channel* const mine[] = {&c};
                check_liveness(mine, op.what);
            }
            // Closed, and every message it sent before closing has arrived (its notice carries their count: a
            // completion count may lag the memory it describes).
            peer_closed = c.ready && load_u64(c.buf + k_closed_in) != 0 &&
                          arrived(c) == static_cast<uint32_t>(load_u64(c.buf + k_closed_sent));
        }
        // The peer closed and all it sent is here: if one more look does not complete the operation, nothing will.
        if (peer_closed) {
            if (test(op)) return true;
            std::lock_guard lk(mtx_);
            lost_peer(chan(op.peer, "wait"), op.what,
                      std::string("it closed its collectives before ") +
                          (op.is_send ? "taking the data" : "sending a matching message"));
        }
        if (now - start >= limit) {
            if (timeout) return false;
            if (!op.is_p2p) continue; // the worker applies the deadline itself
            if (linking)
                throw_error(Errc::timeout, op.what,
                            "not complete after " + std::to_string(limit.count()) + " ms: rank " +
                                std::to_string(op.peer) + " did not complete opening the queue pair (a rank answers "
                                "only while it is inside a call on its Collectives object)");
            throw_error(Errc::timeout, op.what,
                        "not complete after " + std::to_string(limit.count()) + " ms (rank " + std::to_string(op.peer) +
                            " did not " + (op.is_send ? "take the data" : "send a matching message") + ")");
        }
    }
}

}  // namespace coyote::detail::coll
