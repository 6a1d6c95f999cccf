// Model of Coyote example 11 (packet sniffer): while capturing, every frame the emulated NICs of the device send or
// receive, in this process and in the user's other processes on this host (see packet_tap.hpp: both wires, both
// sides of an exchange; the device's rendezvous, rendezvous.hpp), that passes the filter is written as whole
// 512-bit beats (the frame, zero-padded to a multiple of 64 bytes) to the card copy of the host buffer, one frame
// after the other, as the example's pcap conversion reads it. Registers (the example's packet_sniffer_slv): CSR 0
// CTRL_0 (1 start, 0 stop), 1 CTRL_1 (1: buffer registers valid), 2 filter, 3 state (0 idle, 1 sniffing; read
// only), 4 captured bytes (read only), 5 timer in 4 ns cycles (read only), 6 buffer vaddr, 7 buffer length, 8 ctid,
// 9 dest. The NICs append the frames to a capture buffer in shared memory (capture_ring.hpp) as long as the host
// buffer; the model copies them (through the device's CardPort, under the model lock) on every register write and
// at the stop, so the captured size shows frames written by the last setCSR. The stop completes at once (no 32 KiB
// padding writes); beats past the buffer's end are dropped and not counted, as the example's vFPGA drops them.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend/sim/models/examples/capture_ring.hpp"
#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/examples/packet_tap.hpp"
#include "backend/sim/models/examples/rendezvous.hpp"
#include "backend/sim/segments.hpp"
#include "detail/format.hpp"
#include "detail/per_process.hpp"

namespace coyote::detail::sim::sniffer {

namespace {

using examples::InputChunk;
using examples::k_clock_ns;
using examples::Shell;
using examples::UserLogic;

enum Reg : uint32_t { ctrl_0 = 0, ctrl_1 = 1, filter = 2, state = 3, size = 4, timer = 5, vaddr = 6, len = 7 };
constexpr uint64_t k_idle = 0, k_sniffing = 1;

/// Writes this process's memory through the kernel (an unmapped address fails instead of crashing).
bool host_write(uint64_t addr, std::span<const std::byte> data) {
    iovec local{const_cast<std::byte*>(data.data()), data.size()};
    iovec remote{reinterpret_cast<void*>(addr), data.size()};
    return ::process_vm_writev(::getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(data.size());
}

class PacketSniffer;

/// The sniffers capturing, by device, their publications in the devices' rendezvous, the card ports, by (device,
/// vfid), and the sniff words of the NICs, by device.
struct Registry {
    std::mutex mtx;
    std::map<uint32_t, PacketSniffer*> sniffers;
    std::map<uint32_t, Publication> published; ///< the devices whose rendezvous this process holds
    std::map<std::pair<uint32_t, int32_t>, CardPort*> ports;
    std::multimap<uint32_t, std::atomic<uint64_t>*> nics;
    uint64_t next_id = 1;
};
/// Never destroyed (NIC threads may capture during static destruction); empty in a forked child, whose copies of
/// the parent's sniffers and ports are not its own.
Registry& registry() { return PerProcess<Registry>::get(); }

/// How long the stop waits for a writer that reserved room for a frame to copy it.
constexpr std::chrono::milliseconds k_close_wait{2000};

class PacketSniffer final : public UserLogic {
public:
    ~PacketSniffer() override {
        withdraw();
        if (ring_) untrack_segment(ring_.name());
    }
    const char* name() const noexcept override { return "packet_sniffer"; }
    void on_input(Shell&, const InputChunk&) override {} // the example's vFPGA reads no host data

    void on_csr_write(Shell& shell, uint32_t offs, uint64_t) override {
        if (offs == ctrl_0 || offs == ctrl_1) {
            const bool run = (shell.csr_read(ctrl_0) & 1) != 0;
            if (state_ == k_idle && run && (shell.csr_read(ctrl_1) & 1) != 0)
                start(shell);
            else if (state_ == k_sniffing && !run)
                stop();
        }
        uint64_t end = 0;
        if (ring_ && ring_settled(ring_, end)) flush(end);
        publish(shell);
    }

    /// The id of the capture buffer published in the NICs (registry lock held).
    uint64_t id() const noexcept { return id_; }
    /// A frame from a NIC of this process (registry lock held).
    void append(std::span<const std::byte> f) const noexcept { ring_append(ring_, f); }

private:
    void start(Shell& shell) {
        buf_vaddr_ = shell.csr_read(vaddr);
        written_ = 0;
        t0_ = std::chrono::steady_clock::now();
        device_ = shell.device();
        uint64_t id = 0;
        {
            std::lock_guard lk(registry().mtx);
            id = registry().next_id++;
        }
        ring_ = create_ring(id, shell.csr_read(len), shell.csr_read(filter));
        try {
            enter(shell, id);
        } catch (...) {
            untrack_segment(ring_.name());
            ring_ = ShmSegment();
            throw;
        }
        state_ = k_sniffing;
    }
    /// Registers the sniffer as the device's in this process (taking over from another of this process) and
    /// publishes capture buffer `id` in its NICs and in the device's rendezvous.
    void enter(Shell& shell, uint64_t id) {
        std::lock_guard lk(registry().mtx);
        auto held = registry().published.find(device_);
        std::optional<Publication> claimed;
        RendezvousRecord holder{};
        if (held == registry().published.end()) claimed = Publication::claim(device_, id, holder); // may throw
        auto it = registry().ports.find({shell.device(), shell.vfid()});
        port_ = it == registry().ports.end() ? nullptr : it->second;
        if (auto old = registry().sniffers.find(device_); old != registry().sniffers.end()) old->second->unpublish();
        registry().sniffers[device_] = this;
        id_ = id;
        publish_id(id_);
        if (held != registry().published.end())
            held->second.update(id);
        else if (claimed)
            registry().published.emplace(device_, std::move(*claimed));
        else
            warn_taken(holder);
    }
    /// Another process holds the device's rendezvous: this capture takes the frames of this process's NICs only.
    void warn_taken(const RendezvousRecord& holder) const {
        const bool named = record_valid(holder) && process_alive(holder.pid, holder.start_time);
        const std::string who = named ? "process " + std::to_string(holder.pid) : "another process";
        std::fprintf(stderr,
                     "coyote sim: packet_sniffer: device %u is captured by the packet_sniffer of %s; this capture "
                     "takes the frames of the NICs of this process only\n",
                     static_cast<unsigned>(device_), who.c_str());
    }
    void stop() {
        withdraw();
        if (ring_) {
            flush(ring_close(ring_, k_close_wait));
            untrack_segment(ring_.name());
            ring_ = ShmSegment();
        }
        cycles_ = elapsed_cycles();
        state_ = k_idle;
    }
    /// Takes the sniffer out of the registry and its id out of the NICs.
    void withdraw() noexcept {
        std::lock_guard lk(registry().mtx);
        auto it = registry().sniffers.find(device_);
        if (it != registry().sniffers.end() && it->second == this) {
            registry().sniffers.erase(it);
            registry().published.erase(device_); // the rendezvous goes, before the capture buffer closes
        }
        unpublish();
    }
    /// Another sniffer of the device takes over, or this one stops (registry lock held).
    void unpublish() noexcept {
        if (id_ == 0) return;
        for (auto [it, end] = registry().nics.equal_range(device_); it != end; ++it) {
            uint64_t mine = id_;
            it->second->compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
        }
        id_ = 0;
    }
    void publish_id(uint64_t id) noexcept {
        for (auto [it, end] = registry().nics.equal_range(device_); it != end; ++it)
            it->second->store(id, std::memory_order_release);
    }
    /// Writes the image up to `end` after what is written (under the model lock, where the card port is called).
    void flush(uint64_t end) {
        if (end <= written_) return;
        const std::span<const std::byte> out(ring_.bytes() + k_ring_data + written_, end - written_);
        if (port_ != nullptr)
            port_->write(buf_vaddr_ + written_, out);
        else if (!host_write(buf_vaddr_ + written_, out))
            throw std::runtime_error("cannot write the capture buffer at " + coyote::detail::hex(buf_vaddr_ + written_));
        written_ = end;
    }
    uint64_t elapsed_cycles() const {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_);
        return static_cast<uint64_t>(ns.count()) / k_clock_ns;
    }
    void publish(Shell& shell) {
        shell.csr_write(state, state_);
        shell.csr_write(size, written_);
        shell.csr_write(timer, state_ == k_sniffing ? elapsed_cycles() : cycles_);
    }

    uint64_t state_ = k_idle;
    uint64_t buf_vaddr_ = 0, written_ = 0, cycles_ = 0;
    std::chrono::steady_clock::time_point t0_{};
    uint32_t device_ = ~0u;
    uint64_t id_ = 0; ///< published in the NICs of the device (registry lock)
    CardPort* port_ = nullptr;
    ShmSegment ring_;
};

}  // namespace

void capture(uint32_t device, Direction, std::span<const std::byte> frame) noexcept {
    std::lock_guard lk(registry().mtx);
    auto it = registry().sniffers.find(device);
    if (it != registry().sniffers.end()) it->second->append(frame);
}

bool active(uint32_t device) noexcept {
    std::lock_guard lk(registry().mtx);
    return registry().sniffers.count(device) > 0;
}

void attach_nic(uint32_t device, std::atomic<uint64_t>* word) noexcept {
    std::lock_guard lk(registry().mtx);
    try {
        registry().nics.emplace(device, word);
    } catch (...) {
        return; // out of memory: this NIC is not captured
    }
    auto it = registry().sniffers.find(device);
    word->store(it == registry().sniffers.end() ? 0 : it->second->id(), std::memory_order_release);
}

void detach_nic(uint32_t device, std::atomic<uint64_t>* word) noexcept {
    std::lock_guard lk(registry().mtx);
    for (auto [it, end] = registry().nics.equal_range(device); it != end; ++it)
        if (it->second == word) {
            registry().nics.erase(it);
            break;
        }
    word->store(0, std::memory_order_release);
}

void attach_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept {
    std::lock_guard lk(registry().mtx);
    if (port != nullptr)
        registry().ports[{device, vfid}] = port;
    else
        registry().ports.erase({device, vfid});
}

void offer_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept {
    std::lock_guard lk(registry().mtx);
    try {
        registry().ports.emplace(std::make_pair(device, vfid), port);
    } catch (...) {
        // Without the port the sniffer writes the host buffer.
    }
}

void withdraw_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept {
    std::lock_guard lk(registry().mtx);
    auto it = registry().ports.find({device, vfid});
    if (it != registry().ports.end() && it->second == port) registry().ports.erase(it);
}

}  // namespace coyote::detail::sim::sniffer

namespace coyote::detail::sim::examples {

std::unique_ptr<coyote::sim::UserLogic> make_packet_sniffer() { return std::make_unique<sniffer::PacketSniffer>(); }

}  // namespace coyote::detail::sim::examples
