// coyote-mpi sim backend: what the TCP wire does with each frame it receives (one handler per frame type, picked
// from a table like the per-opcode handlers of libfabric's tcp provider), and how the answers to a peer's requests
// are sent: by the reader itself when the socket takes them at once, else by the connection's sender thread.
#include <cstdint>

#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/peer_ordered.hpp"
#include "backend/sim/net/process_memory.hpp"
#include "backend/sim/process_maps.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

namespace {

/// An ACK to the request `h`, to be sent on `c` (the handlers turn it into a NAK or a READ response).
Response answer_to(const std::shared_ptr<Conn>& c, const FrameHeader& h) {
    Response resp;
    resp.conn = c;
    resp.h.req_id = h.req_id;
    resp.h.dst_qpn = h.dst_qpn;
    return resp;
}

/// Makes `resp` a NAK for the failed check `check`, explained by `text`.
void set_nak(Response& resp, Check check, std::string text) {
    resp.h.type = FrameType::nak;
    resp.h.check = static_cast<uint32_t>(check);
    resp.text = std::move(text);
}

/// Writes a frame header and its payload (none when `len` is 0) from byte `done` of the frame on (write_parts);
/// returns an error text.
std::string send_frame(int fd, const FrameHeader& h, const void* payload, size_t len, size_t& done,
                       Clock::time_point deadline, bool wait) {
    const auto hb = encode_frame(h);
    return write_parts(fd, hb, payload, len, done, deadline, wait);
}

/// Bytes of the frame that answers with `r`.
size_t frame_size(const Response& r) noexcept { return k_frame_header_size + r.h.payload_len; }

static_assert(static_cast<size_t>(FrameType::hello) == 1 && static_cast<size_t>(FrameType::nak) == 8,
              "TcpWire::k_handlers is indexed by FrameType");

}  // namespace

const std::array<TcpWire::FrameHandler, 9> TcpWire::k_handlers = {
    nullptr,                 // 0: no frame type (decode_frame rejects it)
    &TcpWire::on_handshake,  // hello
    &TcpWire::on_handshake,  // hello_ack
    &TcpWire::on_write,      // write
    &TcpWire::on_write,      // send
    &TcpWire::on_read_req,   // read_req
    &TcpWire::on_read_resp,  // read_resp
    &TcpWire::on_ack,        // ack
    &TcpWire::on_nak,        // nak
};

bool TcpWire::handle_frame(const ConnPtr& c) {
    const auto deadline = Clock::now() + cfg_.io_timeout;
    std::array<std::byte, k_frame_header_size> hb{};
    std::string err = read_full(c->fd.get(), hb.data(), hb.size(), deadline);
    if (!err.empty()) {
        kill(c, err);
        return false;
    }
    FrameHeader h;
    if (!decode_frame(hb, h, err)) {
        nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
        kill(c, "malformed frame: " + err);
        return false;
    }
    return (this->*k_handlers[static_cast<size_t>(h.type)])(c, h, deadline);
}

bool TcpWire::on_handshake(const ConnPtr& c, const FrameHeader&, Clock::time_point) {
    nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
    kill(c, "unexpected handshake frame on an established connection");
    return false;
}

// ---- requests of the peer ------------------------------------------------------------------------

bool TcpWire::on_write(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline) {
    const RdmaRequest r = frame_request(h);
    const Verdict v = validate_and_claim(nic_.shared(), r);
    Response resp = answer_to(c, h);
    std::string err;
    if (v.check != Check::ok) {
        if (h.payload_len > 0) err = drain(c->fd.get(), h.payload_len, deadline);
        set_nak(resp, v.check, rejection_message(r, nic_.ip(), v).substr(0, k_max_nak_text));
    } else if (v.in_window) {
        err = receive_into_window(c->fd.get(), h, r, v, resp, deadline);
    } else {
        err = receive_into_buffer(c->fd.get(), h, r, v, resp, deadline);
    }
    // An accepted WRITE was captured by receive_into_* before it completed; a rejected one is captured here.
    if (err.empty() && resp.h.type == FrameType::nak) nic_.tap_served(r, v, resp.h.type);
    if (err.empty() && resp.h.type == FrameType::ack) return acknowledge(std::move(resp));
    return finish_request(c, std::move(resp), err);
}

bool TcpWire::on_read_req(const ConnPtr& c, const FrameHeader& h, Clock::time_point) {
    const RdmaRequest r = frame_request(h);
    const Verdict v = validate_and_claim(nic_.shared(), r);
    Response resp = answer_to(c, h);
    if (v.check != Check::ok) {
        set_nak(resp, v.check, rejection_message(r, nic_.ip(), v).substr(0, k_max_nak_text));
    } else {
        // Sent from the buffer or window (respond), unless it went away by then.
        resp.h.type = FrameType::read_resp;
        resp.h.payload_len = r.len;
        resp.ctid = v.ctid;
        resp.buf_generation = v.buf.generation;
        resp.in_window = v.in_window;
        resp.window = v.window;
        resp.win_generation = v.win.generation;
        resp.data_addr = v.in_window ? v.win.vaddr + v.offset : v.buf.vaddr + v.offset;
    }
    nic_.tap_served(r, v, resp.h.type);
    return finish_request(c, std::move(resp), {});
}

std::string TcpWire::receive_into_window(int fd, const FrameHeader& h, const RdmaRequest& r, const Verdict& v,
                                         Response& resp, Clock::time_point deadline) {
    // Private memory of this process: received straight into it; unregisterWindow waits for this.
    std::shared_lock bl(nic_.buffers_mutex());
    const WinView now = read_win(nic_.shared().win[v.ctid][v.window]);
    const uint64_t addr = v.win.vaddr + v.offset;
    auto nak = [&](Check failed, const std::string& why) {
        count_rejection(nic_.shared(), failed, v.ctid);
        set_nak(resp, failed, rejection_text(r.op, nic_.ip(), r.dst_qpn, why));
    };
    if (!now.valid || now.generation != v.win.generation) {
        std::string err = drain(fd, h.payload_len, deadline);
        nak(Check::out_of_bounds, "the window holding " + hex(addr, 1) + " was withdrawn (unregisterWindow)");
        return err;
    }
    size_t fault_at = SIZE_MAX;
    std::string err;
    {
        const PeerOrderedAccess dma;
        err = read_full(fd, reinterpret_cast<void*>(addr), r.len, deadline, &fault_at);
    }
    if (err.empty() && fault_at != SIZE_MAX) {
        err = drain(fd, r.len - fault_at, deadline);
        nak(Check::unmapped, "window memory at " + hex(addr, 1) + " (len " + std::to_string(r.len) +
                                 ") is no longer mapped in the target");
        return err;
    }
    resp.h.type = FrameType::ack;
    if (err.empty()) received(r, v, h.last);
    return err;
}

std::string TcpWire::receive_into_buffer(int fd, const FrameHeader& h, const RdmaRequest& r, const Verdict& v,
                                         Response& resp, Clock::time_point deadline) {
    std::shared_lock bl(nic_.buffers_mutex());
    const BufMeta now = read_buf_meta(nic_.shared().buf[v.ctid]);
    if (!now.valid || now.generation != v.buf.generation) {
        std::string err = drain(fd, h.payload_len, deadline);
        set_nak(resp, Check::no_buffer,
                rejection_text(r.op, nic_.ip(), r.dst_qpn, "the registered buffer was released"));
        return err;
    }
    std::string err;
    {
        const PeerOrderedAccess dma;
        err = read_full(fd, reinterpret_cast<void*>(v.buf.vaddr + v.offset), r.len, deadline);
    }
    resp.h.type = FrameType::ack;
    if (err.empty()) received(r, v, h.last);
    return err;
}

void TcpWire::received(const RdmaRequest& r, const Verdict& v, bool last) {
    nic_.tap_served(r, v, FrameType::ack); // as a sniffer on the wire sees it: before the host sees the completion
    if (last) bump_wback(nic_.state(), CmplClass::local_write, v.ctid);
}

bool TcpWire::finish_request(const ConnPtr& c, Response resp, const std::string& err) {
    if (!err.empty()) {
        kill(c, err);
        return false;
    }
    return respond(std::move(resp));
}

bool TcpWire::acknowledge(Response resp) {
    Conn& c = *resp.conn;
    FrameHeader next;
    if (c.deferred_acks + 1 < k_max_coalesced_acks && next_frame_whole(c, next) &&
        (next.type == FrameType::write || next.type == FrameType::send)) {
        c.deferred_ack = resp.h; // answers this request and the ones held before it
        ++c.deferred_acks;
        return true;
    }
    auto& counters = nic_.shared().counters;
    counters.acks_coalesced.fetch_add(c.deferred_acks, std::memory_order_relaxed);
    counters.acks_sent.fetch_add(1, std::memory_order_relaxed);
    c.deferred_acks = 0; // this ACK answers them too
    return answer(std::move(resp));
}

bool TcpWire::flush_deferred_ack(const Response& r) {
    Conn& c = *r.conn;
    if (c.deferred_acks == 0) return true;
    Response ack;
    ack.conn = r.conn;
    ack.h = c.deferred_ack;
    auto& counters = nic_.shared().counters;
    counters.acks_coalesced.fetch_add(c.deferred_acks - 1, std::memory_order_relaxed);
    counters.acks_sent.fetch_add(1, std::memory_order_relaxed);
    c.deferred_acks = 0;
    return answer(std::move(ack));
}

// ---- answers to our requests ---------------------------------------------------------------------

bool TcpWire::take_pending(const ConnPtr& c, const FrameHeader& h, Pending& p) {
    {
        std::lock_guard lk(c->mtx);
        auto it = c->pending.find(h.req_id);
        if (it != c->pending.end()) {
            p = it->second;
            c->pending.erase(it);
            return true;
        }
    }
    nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
    kill(c, "response for unknown request " + std::to_string(h.req_id));
    return false;
}

bool TcpWire::take_acked(const ConnPtr& c, const FrameHeader& h, std::vector<Pending>& acked) {
    {
        std::lock_guard lk(c->mtx);
        // The ACK names the last request it answers: it must be pending (the peer answers in the wire's order).
        if (c->pending.count(h.req_id) != 0) {
            const auto end = c->pending.upper_bound(h.req_id);
            for (auto it = c->pending.begin(); it != end; ++it) acked.push_back(it->second);
            c->pending.erase(c->pending.begin(), end);
            return true;
        }
    }
    nic_.shared().counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
    kill(c, "ACK for unknown request " + std::to_string(h.req_id));
    return false;
}

bool TcpWire::finish_answer(const ConnPtr& c, const Pending& p, const std::string& err) {
    nic_.ctid_state(p.ctid).inflight.drop(p.generation);
    if (!err.empty()) {
        kill(c, err);
        return false;
    }
    return true;
}

bool TcpWire::on_ack(const ConnPtr& c, const FrameHeader& h, Clock::time_point) {
    // Cumulative: answers every request of the connection up to h.req_id (the earlier ones were held back).
    std::vector<Pending> acked;
    if (!take_acked(c, h, acked)) return false;
    std::string err;
    for (const Pending& p : acked) {
        // Captured before it completes, as a sniffer on the wire sees the frame before the host sees the completion.
        nic_.tap_requester(sniffer::Parts::answer, p.req, p.target_ip, 0, 0);
        if (p.req.op == RdmaOpcode::read) {
            err = "ACK for a READ request";
        } else if (p.last) {
            // Counted only for the ctid's owner that posted it: unregistering (which moves the generation on) takes
            // this lock exclusively, so a new owner of the ctid never sees the completion of its predecessor's WRITE.
            std::shared_lock bl(nic_.buffers_mutex());
            if (nic_.ctid_state(p.ctid).generation.load() == p.generation)
                bump_wback(nic_.state(), CmplClass::rdma_write, p.ctid);
        }
        nic_.ctid_state(p.ctid).inflight.drop(p.generation);
    }
    if (!err.empty()) {
        kill(c, err);
        return false;
    }
    return true;
}

bool TcpWire::on_nak(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline) {
    Pending p;
    if (!take_pending(c, h, p)) return false;
    std::string text(h.payload_len, '\0');
    const std::string err = read_full(c->fd.get(), text.data(), text.size(), deadline);
    nic_.tap_requester(sniffer::Parts::answer, p.req, p.target_ip, 0, sniffer::k_nak_remote_access);
    if (err.empty()) // recorded only while the ctid is at the request's generation (checked under its lock)
        nic_.record_error(p.ctid, p.generation,
                          Error(make_error_code(Errc::remote_rejected), opcode_label(p.req.op), text));
    return finish_answer(c, p, err);
}

bool TcpWire::on_read_resp(const ConnPtr& c, const FrameHeader& h, Clock::time_point deadline) {
    Pending p;
    if (!take_pending(c, h, p)) return false;
    std::string err;
    if (p.req.op != RdmaOpcode::read || h.payload_len != p.req.len)
        err = "READ response of " + std::to_string(h.payload_len) + " bytes for a request of " +
              std::to_string(p.req.len);
    else
        err = receive_read_data(c->fd.get(), p, deadline); // captures the response (before completing)
    return finish_answer(c, p, err);
}

std::string TcpWire::receive_read_data(int fd, const Pending& p, Clock::time_point deadline) {
    // Into the local registered buffer or a local window, if it is still registered, and only for the ctid's owner
    // that posted the READ (unregistering takes this lock exclusively as it moves the generation on).
    std::shared_lock bl(nic_.buffers_mutex());
    const bool current = nic_.ctid_state(p.ctid).generation.load() == p.generation;
    const BufMeta mine = read_buf_meta(nic_.shared().buf[p.ctid]);
    const bool in_buf = current && mine.valid && range_inside(p.local_addr, p.req.len, mine.vaddr, mine.size);
    const bool in_win = current && !in_buf && find_window(nic_.shared(), p.ctid, p.local_addr, p.req.len).has_value();
    auto fail = [&](Errc code, const std::string& why) {
        nic_.record_error(p.ctid, p.generation,
                          Error(make_error_code(code), opcode_label(p.req.op),
                                "RDMA READ response from " + ip_to_string(p.target_ip) + " qpn " +
                                    hex(p.req.dst_qpn, 6) + " dropped: " + why));
    };
    if (!in_buf && !in_win) {
        std::string err = drain(fd, p.req.len, deadline);
        if (err.empty()) nic_.tap_requester(sniffer::Parts::answer, p.req, p.target_ip, p.local_addr, 0);
        if (current)
            fail(Errc::not_mapped, "the local target " + hex(p.local_addr, 1) + " + len " + std::to_string(p.req.len) +
                                       " is no longer in the registered buffer or a window of ctid " +
                                       std::to_string(p.ctid));
        return err;
    }
    size_t fault_at = SIZE_MAX;
    std::string err =
        read_full(fd, reinterpret_cast<void*>(p.local_addr), p.req.len, deadline, in_win ? &fault_at : nullptr);
    if (err.empty() && fault_at != SIZE_MAX) {
        err = drain(fd, p.req.len - fault_at, deadline);
        if (err.empty()) nic_.tap_requester(sniffer::Parts::answer, p.req, p.target_ip, p.local_addr, 0);
        fail(Errc::not_mapped, "the local window memory at " + hex(p.local_addr, 1) + " (len " +
                                   std::to_string(p.req.len) + ") is no longer writable");
    } else if (err.empty()) {
        nic_.tap_requester(sniffer::Parts::answer, p.req, p.target_ip, p.local_addr, 0);
        if (p.last) complete_read(nic_.state(), p.ctid);
    }
    return err;
}

// ---- the senders -------------------------------------------------------------------------------

bool TcpWire::respond(Response r) {
    // A NAK or READ response goes after the ACK held back for the requests before it.
    if (!flush_deferred_ack(r)) return false;
    return answer(std::move(r));
}

bool TcpWire::answer(Response r) {
    const ConnPtr c = r.conn;
    bool idle = false;
    {
        std::lock_guard lk(c->mtx);
        if (c->dead || stop_.load()) return false;
        idle = c->out.empty(); // only this reader adds to it: stays empty until it does
    }
    // Nothing unsent before it: the answer goes out now, from this thread, as far as the socket takes it without
    // waiting (no hand-off to the sender thread, which would have to be scheduled first). A request of ours being
    // written holds the turn: then the sender sends it.
    if (idle && c->wturn.try_acquire()) {
        const std::string err = send_response(r, Clock::now() + cfg_.io_timeout, false);
        const bool partial = err.empty() && r.sent != 0 && r.sent < frame_size(r);
        if (!partial) c->wturn.release(); // else the sender writes the rest under this turn
        if (!err.empty()) {
            kill(c, err);
            return false;
        }
        if (r.sent == frame_size(r)) return true;
    }
    return enqueue(std::move(r));
}

bool TcpWire::enqueue(Response r) {
    const ConnPtr c = r.conn;
    {
        std::unique_lock lk(c->mtx);
        // Back-pressure: while the queue is full this connection's reader takes no more of its peer's requests.
        const bool room = c->room_cv.wait_until(lk, Clock::now() + cfg_.io_timeout, [&] {
            return c->dead || stop_.load() || c->out.size() < k_max_queued_answers;
        });
        if (c->dead || stop_.load()) {
            if (r.sent != 0) c->wturn.release(); // nobody writes the rest
            return false;
        }
        if (room) {
            c->out.push_back(std::move(r));
            c->out_cv.notify_one();
            return true;
        }
    }
    kill(c, "peer " + c->name + " reads no answers: " + std::to_string(k_max_queued_answers) +
                " stayed queued for " + std::to_string(cfg_.io_timeout.count()) + " ms (COYOTE_SIM_WIRE_TIMEOUT_MS)");
    return false;
}

void TcpWire::sender(ConnPtr c) {
    for (;;) {
        Response* r = nullptr;
        {
            std::unique_lock lk(c->mtx);
            c->out_cv.wait(lk, [&] { return stop_.load() || c->dead || !c->out.empty(); });
            if (stop_.load() || c->dead) {
                if (!c->out.empty() && c->out.front().sent != 0) c->wturn.release(); // a reader's partial answer
                c->out.clear(); // the answers hold the connection
                return;
            }
            r = &c->out.front(); // stays put: the reader only appends, and only this thread removes
        }
        if (r->sent == 0) c->wturn.acquire(); // else the reader that wrote its first part handed its turn over
        const std::string err = send_response(*r, Clock::now() + cfg_.io_timeout, true);
        c->wturn.release();
        {
            std::lock_guard lk(c->mtx);
            c->out.pop_front();
        }
        c->room_cv.notify_one();
        if (!err.empty()) kill(c, err);
    }
}

std::string TcpWire::send_response(Response& r, Clock::time_point deadline, bool wait) {
    if (r.h.type == FrameType::read_resp) return send_read_data(r, deadline, wait);
    r.h.payload_len = static_cast<uint32_t>(r.text.size());
    return send_frame(r.conn->fd.get(), r.h, r.text.data(), r.text.size(), r.sent, deadline, wait);
}

std::string TcpWire::send_read_data(Response& r, Clock::time_point deadline, bool wait) {
    // Send from the registered buffer or window, unless it went away since the request was validated (checked
    // again when the sender resumes a response a reader began: unregistering waits only while one thread sends).
    std::shared_lock bl(nic_.buffers_mutex());
    Check gone = Check::ok;
    std::string why;
    if (r.in_window) {
        const WinView now = read_win(nic_.shared().win[r.ctid][r.window]);
        if (!now.valid || now.generation != r.win_generation) {
            gone = Check::out_of_bounds;
            why = "the window holding " + hex(r.data_addr, 1) + " was withdrawn (unregisterWindow)";
        } else if (process_access(r.data_addr, r.data_addr + r.h.payload_len, false) != nullptr) {
            gone = Check::unmapped;
            why = "window memory at " + hex(r.data_addr, 1) + " (len " + std::to_string(r.h.payload_len) +
                  ") is no longer mapped in the target";
        }
    } else {
        const BufMeta now = read_buf_meta(nic_.shared().buf[r.ctid]);
        if (!now.valid || now.generation != r.buf_generation) {
            gone = Check::no_buffer;
            why = "the registered buffer was released";
        }
    }
    if (gone == Check::ok) {
        const PeerOrderedAccess dma;
        return send_frame(r.conn->fd.get(), r.h, reinterpret_cast<const void*>(r.data_addr), r.h.payload_len,
                          r.sent, deadline, wait);
    }
    count_rejection(nic_.shared(), gone, r.ctid);
    if (r.sent != 0) return "READ response cut after " + std::to_string(r.sent) + " bytes: " + why;
    set_nak(r, gone, rejection_text(RdmaOpcode::read, nic_.ip(), r.h.dst_qpn, why));
    r.h.payload_len = static_cast<uint32_t>(r.text.size());
    return send_frame(r.conn->fd.get(), r.h, r.text.data(), r.text.size(), r.sent, deadline, wait);
}

}  // namespace coyote::detail::sim::net
