// coyote-mpi collectives engine: what an algorithm hands to the engine: a schedule of steps (Engine::execute),
// a list of single-message operations (Engine::execute_eager) and a local copy to overlap with either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace coyote::detail::coll {

struct Channel;

/// One step of a collective schedule: a stream of chunks to one peer, from one peer, or from one peer
/// transformed and forwarded to another. Steps on the same outgoing (incoming) channel post (consume) in
/// schedule order; steps on different channels proceed concurrently.
struct Step {
    enum class Kind { send, recv, forward } kind = Kind::send;
    int to = -1;
    int from = -1;
    uint64_t bytes = 0;
    /// send: write payload [off, off+len) of the stream into dst (the staging slot).
    std::function<void(uint64_t off, std::byte* dst, uint32_t len)> produce;
    /// recv: take payload [off, off+len) from src (the receive slot).
    std::function<void(uint64_t off, const std::byte* src, uint32_t len)> consume;
    /// forward: src (received) -> dst (staging of the next message).
    std::function<void(uint64_t off, const std::byte* src, std::byte* dst, uint32_t len)> forward;
    /// forward, optional: when the outgoing side is blocked, take the chunk into local memory (absorb) and send
    /// it from there later (emit). Needed where forwards close a cycle (rings).
    std::function<void(uint64_t off, const std::byte* src, uint32_t len)> absorb;
    std::function<void(uint64_t off, std::byte* dst, uint32_t len)> emit;
    /// Chunk gate: chunk [off, off+len) waits until steps[gate] moved gate_shift + off + len bytes.
    int gate = -1;
    uint64_t gate_shift = 0;
    /// Steps that must be complete before the first chunk.
    std::vector<int> after;
    /// Pure copies moved by the engine (then produce / consume / forward / absorb-emit are not used, except
    /// absorb of a forward without direct_in): recv / forward: the stream lands at direct_in[0, bytes);
    /// send / forward: the stream is read from direct_out[0, bytes) (a forward without direct_out sends from
    /// direct_in; a forward with direct_out but no direct_in must absorb each chunk into direct_out). At
    /// EngineConfig::direct_min bytes and more the peer places the data directly, so both sides of a channel
    /// must mark their steps alike.
    std::byte* direct_in = nullptr;
    const std::byte* direct_out = nullptr;
    // progress (engine), in chunks
    uint64_t chunks = 0;
    uint64_t done = 0;    ///< chunks posted (send, forward) or consumed (recv)
    uint64_t in_done = 0; ///< forward: chunks taken from the incoming side
    bool finished = false;
    Channel* out = nullptr;
    Channel* in = nullptr;
    int prev_out = -1;
    int prev_in = -1;
    int rtr_in = -1;       ///< index of the ready-to-receive this step sends (-1: none)
    int rtr_out = -1;      ///< index of the ready-to-receive this step waits for (-1: none)
    bool rtr_sent = false;
    bool window = false;   ///< direct_in is registered as a window (Channel::wins[win_slot])
    int win_slot = -1;
    bool out_known = false;
    uint64_t out_addr = 0; ///< peer window of the stream (0: through the ring)
};

/// A local copy a schedule leaves to the engine: done in pieces while the schedule waits for peers, once every
/// outgoing chunk is posted (so it delays no send); copies above 256 KiB, and what is left, at the end.
struct IdleCopy {
    std::byte* dst = nullptr;
    const std::byte* src = nullptr;
    uint64_t bytes = 0;
};

/// One message of an eager call (Engine::execute_eager). Trivial (arrays of them cost nothing to declare): set
/// every field but the engine's.
struct EagerOp {
    bool send;
    /// A plain copy on both sides (the receive lands at `dst`). From EngineConfig::direct_min bytes on such a
    /// message is placed directly (ready-to-receive, write into the window, header), so both sides must mark
    /// the message alike.
    bool copy;
    int peer;
    uint32_t len;          ///< payload bytes (at most Engine::payload())
    const std::byte* src;  ///< send: the payload
    std::byte* dst;        ///< copy receive: the destination
    /// Other receives: takes the payload (e.g. a reduction); `ctx` is passed through. Not called for len 0.
    void (*take)(void* ctx, const std::byte* payload, uint32_t len);
    void* ctx;
    // set by execute_eager
    int32_t rtr;  ///< placed directly: index of its ready-to-receive on the channel (-1: through the ring)
    int32_t win;  ///< direct receive: the window offered (Channel::wins slot, -1: none)
    bool offered; ///< direct receive: ready-to-receive posted
};

}  // namespace coyote::detail::coll
