// coyote-mpi: Coyote v0.2.x compatible operations, allocation requests and scatter-gather entries.
#pragma once

#include <cstdint>

#include <coyote/cDefs.hpp>

namespace coyote {

/// Operations a cThread can invoke.
enum class CoyoteOper {
    NOOP = 0,
    LOCAL_READ = 1,        ///< memory -> vFPGA input stream
    LOCAL_WRITE = 2,       ///< vFPGA output stream -> memory
    LOCAL_TRANSFER = 3,    ///< memory -> vFPGA -> memory
    LOCAL_OFFLOAD = 4,     ///< host memory -> card memory (blocking)
    LOCAL_SYNC = 5,        ///< card memory -> host memory (blocking)
    REMOTE_RDMA_READ = 6,  ///< one-sided RDMA read
    REMOTE_RDMA_WRITE = 7, ///< one-sided RDMA write
    REMOTE_RDMA_SEND = 8,  ///< two-sided RDMA send
    REMOTE_TCP_SEND = 9    ///< TCP send
};

inline constexpr bool isLocalRead(CoyoteOper oper) {
    return oper == CoyoteOper::LOCAL_READ || oper == CoyoteOper::LOCAL_TRANSFER;
}
inline constexpr bool isLocalWrite(CoyoteOper oper) {
    return oper == CoyoteOper::LOCAL_WRITE || oper == CoyoteOper::LOCAL_TRANSFER;
}
inline constexpr bool isLocalSync(CoyoteOper oper) {
    return oper == CoyoteOper::LOCAL_OFFLOAD || oper == CoyoteOper::LOCAL_SYNC;
}
inline constexpr bool isRemoteRdma(CoyoteOper oper) {
    return oper == CoyoteOper::REMOTE_RDMA_WRITE || oper == CoyoteOper::REMOTE_RDMA_READ ||
           oper == CoyoteOper::REMOTE_RDMA_SEND;
}
inline constexpr bool isRemoteRead(CoyoteOper oper) { return oper == CoyoteOper::REMOTE_RDMA_READ; }
inline constexpr bool isRemoteWrite(CoyoteOper oper) { return oper == CoyoteOper::REMOTE_RDMA_WRITE; }
inline constexpr bool isRemoteSend(CoyoteOper oper) {
    return oper == CoyoteOper::REMOTE_RDMA_SEND || oper == CoyoteOper::REMOTE_TCP_SEND;
}
inline constexpr bool isRemoteWriteOrSend(CoyoteOper oper) {
    return oper == CoyoteOper::REMOTE_RDMA_SEND || oper == CoyoteOper::REMOTE_RDMA_WRITE;
}
inline constexpr bool isRemoteTcp(CoyoteOper oper) { return oper == CoyoteOper::REMOTE_TCP_SEND; }

/// Kinds of memory getMem can allocate.
enum class CoyoteAllocType {
    REG = 0, ///< regular 4 KiB pages
    THP = 1, ///< 2 MiB-aligned, transparent huge pages
    HPF = 2, ///< hugetlb pages
    PRM = 3, ///< reconfiguration memory
    GPU = 4  ///< GPU memory
};

/// An allocation request for cThread::getMem.
struct CoyoteAlloc {
    CoyoteAllocType alloc = {CoyoteAllocType::REG};
    uint32_t size = {0};
    bool remote = {false}; ///< becomes the queue pair's registered buffer
    uint32_t gpu_dev_id = {3};
    int32_t gpu_dmabuf_fd = {0};
    void* mem = {nullptr};
};

/// Scatter-gather entry for LOCAL_OFFLOAD / LOCAL_SYNC.
struct syncSg {
    void* addr = {nullptr};
    uint64_t len = {0};
};

/// Scatter-gather entry for LOCAL_READ / LOCAL_WRITE / LOCAL_TRANSFER.
struct localSg {
    void* addr = {nullptr};
    uint32_t len = {0};
    uint32_t stream = {STRM_HOST};
    uint32_t dest = {0};
};

/// Scatter-gather entry for RDMA; offsets are relative to the queue pair's registered buffers.
struct rdmaSg {
    uint64_t local_offs = {0};
    uint32_t local_stream = {STRM_HOST};
    uint32_t local_dest = {0};
    uint64_t remote_offs = {0};
    uint32_t remote_dest = {0};
    uint32_t len = {0};
};

/// Scatter-gather entry for TCP.
struct tcpSg {
    uint32_t stream = {STRM_TCP};
    uint32_t dest = {0};
    uint32_t len = {0};
};

}  // namespace coyote
