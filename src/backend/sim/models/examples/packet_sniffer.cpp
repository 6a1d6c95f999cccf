// Model of Coyote example 11 (packet sniffer): while capturing, every frame the emulated NIC of the device sends or
// receives (see packet_tap.hpp) that passes the filter is written as whole 512-bit beats (the frame, zero-padded
// to a multiple of 64 bytes) to the card copy of the host buffer, one frame after the other, as the example's
// pcap conversion reads it. Registers (the example's packet_sniffer_slv): CSR 0 CTRL_0 (1 start, 0 stop), 1 CTRL_1
// (1: buffer registers valid), 2 filter, 3 state (0 idle, 1 sniffing; read only), 4 captured bytes (read only),
// 5 timer in 4 ns cycles (read only), 6 buffer vaddr, 7 buffer length, 8 ctid, 9 dest. NIC threads queue the
// frames; the model writes them (through the device's CardPort, under the model lock) on every register write and
// at the stop, so the captured size shows frames written by the last setCSR. The stop completes at once (no 32 KiB
// padding writes); beats past the buffer's end are dropped and not counted.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <stdexcept>
#include <mutex>
#include <utility>
#include <vector>

#include "backend/sim/models/examples/examples.hpp"
#include "backend/sim/models/examples/packet_tap.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::sniffer {

namespace {

using examples::InputChunk;
using examples::k_beat;
using examples::k_clock_ns;
using examples::Shell;
using examples::UserLogic;

enum Reg : uint32_t { ctrl_0 = 0, ctrl_1 = 1, filter = 2, state = 3, size = 4, timer = 5, vaddr = 6, len = 7 };
constexpr uint64_t k_idle = 0, k_sniffing = 1;

/// Filter bits (the example's --no-* options).
enum Bit : unsigned {
    no_ipv4 = 8, no_ipv6 = 9, no_arp = 16, no_icmp4 = 18, no_icmp6 = 20, no_udp4 = 22, no_udp4_payload = 23,
    no_udp6 = 24, no_udp6_payload = 25, no_tcp4 = 26, no_tcp4_payload = 27, no_roce4 = 30, no_roce4_payload = 31
};

unsigned at(std::span<const std::byte> f, std::size_t i) { return i < f.size() ? static_cast<unsigned>(f[i]) : 0u; }

/// Length of a RoCEv2 frame's headers (Ethernet .. BTH and its AETH / RETH), as the example's converter counts.
std::size_t roce_headers(std::span<const std::byte> f) {
    const unsigned op = at(f, 42);
    const bool aeth = op == 0x10 || op == 0x0d || op == 0x0f || op == 0x11;
    const bool reth = op == 0x0a || op == 0x06 || op == 0x0b || op == 0x0c;
    return std::size_t{14 + 20 + 8 + 12} + (aeth ? 4u : 0u) + (reth ? 16u : 0u);
}

/// Bytes of `f` the filter keeps (0: the frame is dropped).
std::size_t filtered_length(std::span<const std::byte> f, uint64_t cfg) {
    const auto off = [&](unsigned b) { return (cfg >> b) & 1; };
    const unsigned type = (at(f, 12) << 8) | at(f, 13);
    const std::size_t all = f.size();
    if (type == 0x0806) return off(no_arp) ? 0 : all;
    if (type == 0x86dd) {
        if (off(no_ipv6)) return 0;
        const unsigned next = at(f, 20);
        if (next == 58) return off(no_icmp6) ? 0 : all;
        if (next == 17) return off(no_udp6) ? 0 : off(no_udp6_payload) ? std::min<std::size_t>(all, 14 + 40 + 8) : all;
        return all;
    }
    if (type != 0x0800) return all;
    if (off(no_ipv4)) return 0;
    const unsigned proto = at(f, 23);
    if (proto == 1) return off(no_icmp4) ? 0 : all;
    if (proto == 6) return off(no_tcp4) ? 0 : off(no_tcp4_payload) ? std::min<std::size_t>(all, 14 + 20 + 20) : all;
    if (proto != 17) return all;
    if (at(f, 36) == 0x12 && at(f, 37) == 0xb7) // UDP destination port 4791: RoCEv2
        return off(no_roce4) ? 0 : off(no_roce4_payload) ? std::min(all, roce_headers(f)) : all;
    return off(no_udp4) ? 0 : off(no_udp4_payload) ? std::min<std::size_t>(all, 14 + 20 + 8) : all;
}

/// Writes this process's memory through the kernel (an unmapped address fails instead of crashing).
bool host_write(uint64_t addr, std::span<const std::byte> data) {
    iovec local{const_cast<std::byte*>(data.data()), data.size()};
    iovec remote{reinterpret_cast<void*>(addr), data.size()};
    return ::process_vm_writev(::getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(data.size());
}

class PacketSniffer;

/// The sniffers capturing, by device, and the card ports, by (device, vfid).
struct Registry {
    std::mutex mtx;
    std::map<uint32_t, PacketSniffer*> sniffers;
    std::map<std::pair<uint32_t, int32_t>, CardPort*> ports;
    std::atomic<std::size_t> capturing{0}; ///< sniffers.size(), for the NIC's lock-free check
};
Registry& registry() {
    static auto* r = new Registry(); // never destroyed: NIC threads may capture during static destruction
    return *r;
}

class PacketSniffer final : public UserLogic {
public:
    ~PacketSniffer() override { stop_capturing(); }
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
        flush(shell);
        publish(shell);
    }

    /// A frame from the NIC (any thread; the registry lock is held): filtered, cut into beats and queued.
    void enqueue(std::span<const std::byte> f) {
        std::lock_guard lk(q_mtx_);
        if (!capturing_) return;
        const std::size_t keep = filtered_length(f, filter_);
        const std::size_t bytes = std::min<uint64_t>((keep + k_beat - 1) / k_beat * k_beat, room_);
        if (bytes == 0) return;
        const std::size_t at = queue_.size();
        queue_.resize(at + bytes, std::byte{0});
        std::copy(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(std::min(keep, bytes)),
                  queue_.begin() + static_cast<std::ptrdiff_t>(at));
        room_ -= bytes;
    }

private:
    void start(Shell& shell) {
        state_ = k_sniffing;
        buf_vaddr_ = shell.csr_read(vaddr);
        written_ = 0;
        t0_ = std::chrono::steady_clock::now();
        {
            std::lock_guard lk(q_mtx_);
            capturing_ = true;
            filter_ = shell.csr_read(filter);
            room_ = shell.csr_read(len);
            queue_.clear();
        }
        device_ = shell.device();
        std::lock_guard lk(registry().mtx);
        auto it = registry().ports.find({shell.device(), shell.vfid()});
        port_ = it == registry().ports.end() ? nullptr : it->second;
        registry().sniffers[device_] = this;
        registry().capturing.store(registry().sniffers.size(), std::memory_order_release);
    }
    void stop() {
        stop_capturing();
        {
            std::lock_guard lk(q_mtx_);
            capturing_ = false;
        }
        cycles_ = elapsed_cycles();
        state_ = k_idle;
    }
    void stop_capturing() {
        std::lock_guard lk(registry().mtx);
        auto it = registry().sniffers.find(device_);
        if (it != registry().sniffers.end() && it->second == this) registry().sniffers.erase(it);
        registry().capturing.store(registry().sniffers.size(), std::memory_order_release);
    }
    /// Writes the queued beats after what is written (under the model lock, where the card port is called).
    void flush(Shell&) {
        {
            std::lock_guard lk(q_mtx_);
            out_.swap(queue_);
        }
        if (out_.empty()) return;
        if (port_ != nullptr)
            port_->write(buf_vaddr_ + written_, out_);
        else if (!host_write(buf_vaddr_ + written_, out_))
            throw std::runtime_error("cannot write the capture buffer at " + coyote::detail::hex(buf_vaddr_ + written_));
        written_ += out_.size();
        out_.clear();
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

    // Model side (callbacks, under the model lock).
    uint64_t state_ = k_idle;
    uint64_t buf_vaddr_ = 0, written_ = 0, cycles_ = 0;
    std::chrono::steady_clock::time_point t0_{};
    uint32_t device_ = ~0u;
    CardPort* port_ = nullptr;
    std::vector<std::byte> out_;
    // NIC side (q_mtx_).
    std::mutex q_mtx_;
    bool capturing_ = false;
    uint64_t filter_ = 0, room_ = 0;
    std::vector<std::byte> queue_;
};

}  // namespace

void capture(uint32_t device, Direction, std::span<const std::byte> frame) noexcept {
    try {
        std::lock_guard lk(registry().mtx);
        auto it = registry().sniffers.find(device);
        if (it != registry().sniffers.end()) it->second->enqueue(frame);
    } catch (...) {
        // A sniffer that cannot keep a frame loses it, as a full FIFO would.
    }
}

bool active(uint32_t device) noexcept {
    if (registry().capturing.load(std::memory_order_acquire) == 0) return false; // every post asks
    std::lock_guard lk(registry().mtx);
    return registry().sniffers.count(device) > 0;
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
