// coyote-mpi: cThread, the Coyote v0.2.x handle to one vFPGA context (ctid).
#pragma once

// Coyote's cThread.hpp brings these system, standard and Boost headers into every program that includes it,
// and applications rely on them (mmap, ioctl, eventfd, std::thread, ...): include the same ones.
#include <fcntl.h>
#include <linux/mman.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/interprocess/sync/named_mutex.hpp>

#include <coyote/cDefs.hpp>
#include <coyote/cGpu.hpp>
#include <coyote/cOps.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

namespace coyote {

namespace detail {
class Device;
}

/// A Coyote thread: one ctid on one vFPGA, with its memory, registers, completions and queue pair.
class cThread {
protected:
    int32_t vfid = {-1};
    int32_t ctid = {-1};
    pid_t hpid = {0};
    fpgaCnfg fcnfg;
    std::unique_ptr<ibvQp> qpair;

public:
    /// Opens vFPGA `vfid` of `device` and registers a ctid; `uisr` receives user interrupts.
    cThread(int32_t vfid, pid_t hpid, uint32_t device = 0, std::function<void(int)> uisr = nullptr);
    ~cThread();

    cThread(const cThread&) = delete;
    cThread& operator=(const cThread&) = delete;

    /// Maps [vaddr, vaddr+len) into the vFPGA TLB.
    void userMap(void* vaddr, uint64_t len, int32_t mem_block = -1);
    /// Removes a mapping made by userMap.
    void userUnmap(void* vaddr);
    /// Allocates and maps memory; `remote = true` makes it the queue pair's registered buffer.
    void* getMem(CoyoteAlloc&& alloc);
    /// Frees memory returned by getMem; a null `vaddr` is ignored (as in Coyote). Any other address getMem of this
    /// cThread did not return (or that is already freed) throws Errc::not_mapped.
    void freeMem(void* vaddr);

    /// Writes user control register `offs` (word index).
    void setCSR(uint64_t val, uint32_t offs);
    /// Reads user control register `offs` (word index).
    uint64_t getCSR(uint32_t offs) const;

    /// LOCAL_OFFLOAD / LOCAL_SYNC; blocking.
    void invoke(CoyoteOper oper, syncSg sg);
    /// LOCAL_READ / LOCAL_WRITE; asynchronous.
    void invoke(CoyoteOper oper, localSg sg, bool last = true);
    /// LOCAL_TRANSFER; asynchronous.
    void invoke(CoyoteOper oper, localSg src_sg, localSg dst_sg, bool last = true);
    /// REMOTE_RDMA_READ / WRITE / SEND; asynchronous.
    void invoke(CoyoteOper oper, rdmaSg sg, bool last = true);
    /// REMOTE_TCP_SEND.
    void invoke(CoyoteOper oper, tcpSg sg, bool last = true);

    /// Completions of the class of `oper` since the last clearCompleted().
    uint32_t checkCompleted(CoyoteOper oper) const;
    /// Resets every completion counter of this ctid.
    void clearCompleted();

    /// Barrier with the connected peer over the out-of-band channel.
    void connSync(bool client);
    /// Stock out-of-band setup: server when `server_address` is null; returns the registered buffer.
    void* initRDMA(uint64_t buffer_size, uint16_t port, const char* server_address = nullptr);
    /// Same, over any out-of-band channel (takes ownership of it).
    void* initRDMA(uint64_t buffer_size, std::unique_ptr<OobChannel> channel);
    /// Releases the out-of-band connection.
    void closeConn();

    /// Writes the queue pair context registers (both layouts supported).
    void writeQpContext(uint32_t port);
    /// Writes `ip_addr` to the ARP lookup register.
    void doArpLookup(uint32_t ip_addr);

    /// Inter-process lock of this (device, vFPGA). Held per cThread, as in Coyote: a second lock() of a holder returns
    /// at once, unlock() without the lock does nothing, and of several threads unlocking one cThread one releases it.
    void lock();
    void unlock();

    int32_t getVfid() const;
    int32_t getCtid() const;
    pid_t getHpid() const;
    ibvQp* getQpair() const;
    /// Prints the status counters.
    void printDebug() const;

    // ---- coyote-mpi extensions (not in stock Coyote) ----

    /// The local wire blob: the 64-byte ibvQ followed by the backend's endpoint bytes.
    std::vector<std::byte> exportQp() const;
    /// Takes the peer's wire blob, connects the backend, writes the QP context and ARP entry.
    void connectQp(std::span<const std::byte> peer_blob, uint32_t port = DEF_PORT);
    /// Name of the backend in use ("sim" or "hw").
    std::string backendName() const;
    /// Device number this cThread was opened on.
    uint32_t getDevice() const;
    /// Shell configuration read at construction.
    const fpgaCnfg& getShellConfig() const;
    /// The out-of-band channel set up by initRDMA, or null.
    OobChannel* getOob() const;

    /// Exposes [vaddr, vaddr + len) of this process to the connected peer as a remote-access window of this
    /// ctid's queue pair, besides the registered buffer: the peer may RDMA WRITE / READ it by absolute address.
    /// At most k_max_windows per ctid. Throws Errc::invalid_argument (empty, overlapping, table full) or
    /// Errc::not_supported (backend cannot).
    void registerWindow(void* vaddr, uint64_t len);
    /// Withdraws the window starting at `vaddr` (Errc::invalid_argument if none starts there); requests validated
    /// later are rejected. As with RDMA memory deregistration, a request accepted just before may still complete:
    /// reuse the memory only once the peer's own completion message proves its writes are done.
    void unregisterWindow(void* vaddr);
    /// REMOTE_RDMA_WRITE / REMOTE_RDMA_READ with absolute addresses. WRITE: `local` is any readable memory of
    /// this process (page-fault path); READ: `local` lies in the registered buffer or a window of this ctid.
    /// `remote_vaddr` lies in the peer's registered buffer or one of its windows (checked at the peer).
    void invokeRdma(CoyoteOper oper, void* local, uint64_t remote_vaddr, uint32_t len, bool last = true);
    /// Windows per ctid.
    static constexpr uint32_t k_max_windows = 16;

protected:
    void sendAck(uint32_t ack);
    uint32_t readAck();

private:
    class Impl;
    std::unique_ptr<Impl> impl;
};

}  // namespace coyote
