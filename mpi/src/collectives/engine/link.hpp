// coyote-mpi collectives engine: links, queue pairs opened on demand for point-to-point messages.
//
// Links (point-to-point to a rank outside the wired peer set): the first send or receive between two such
// ranks opens a queue pair on demand. Each side sends a hello (its exportQp blob) over MPI on the engine's own
// communicator, connects to the peer's blob when it arrives and answers with ready; a side writes into the
// link only after it connected and received the peer's ready. Crossing hellos need no tie-break: each side
// connects to the other's blob. A rank that cannot open the queue pair answers with a refusal (its reason).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <vector>

#include <mpi.h>

#include <coyote/cThread.hpp>

namespace coyote::detail::coll {

constexpr int k_link_tag = 0x4c4e; ///< MPI tag of link messages on Engine::link_comm()

// Link messages (MPI, on the engine's own communicator): a 256-byte LinkMsg, then the blob.
constexpr uint32_t k_link_magic = 0x314b4e4c; // "LNK1"
constexpr uint32_t k_link_hello = 1;          ///< blob: the sender's exportQp
constexpr uint32_t k_link_ready = 2;          ///< the sender connected to our blob
constexpr uint32_t k_link_refuse = 3;         ///< text: why the sender cannot open a queue pair
constexpr uint32_t k_link_max_blob = 64u << 10;  ///< the largest exportQp blob accepted

/// Header of a link message.
struct LinkMsg {
    uint32_t magic = k_link_magic;
    uint32_t type = 0;
    int32_t src = -1;
    int32_t dst = -1;
    uint64_t buffer_size = 0;
    uint32_t blob_len = 0;
    uint32_t reserved = 0;
    char text[224] = {};
};
static_assert(sizeof(LinkMsg) == 256);

/// A queue pair opened on demand for point-to-point messages (see the file comment).
struct Link {
    std::unique_ptr<cThread> thread;
    std::vector<std::byte> blob; ///< our exportQp
    bool hello_sent = false;
    bool connected = false;      ///< connectQp to the peer's blob done
    bool peer_ready = false;     ///< the peer connected to ours
    std::exception_ptr error;    ///< refused or failed: operations with this peer fail with it
};

/// An MPI send of a link message (the buffer lives until the send completes).
struct LinkSend {
    std::vector<std::byte> data;
    MPI_Request req = MPI_REQUEST_NULL;
};

}  // namespace coyote::detail::coll
