// Model of Coyote example 07 (perf_fpga): the vFPGA itself reads or writes a host buffer N times and times it.
// Registers (the example's perf_fpga_axi_ctrl_parser): CSR 0 control (bit 0 starts the reads, bit 1 the writes),
// 1 completed requests (read only), 2 timer in 4 ns cycles (read only), 3 buffer virtual address, 4 buffer length
// in bytes, 5 ctid, 6 repetitions, 7 expected 512-bit beats. As in the parser, the host reads back only registers
// 1 and 2; every other register reads 0 (the model keeps what was written to 3 .. 7 itself). A write repetition
// fills the buffer with 64-byte beats whose first 8 bytes hold the running beat number + 1 (little-endian) and the
// rest zeros, counting on across repetitions, as the example's vFPGA does. The model runs the whole benchmark inside the
// write of CSR 0; it reaches host memory through process_vm_readv / process_vm_writev, so an address that is not
// mapped in the process makes that setCSR throw instead of crashing it.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/sim/models/examples/examples.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::examples {

namespace {

enum Reg : uint32_t { ctrl = 0, done = 1, timer = 2, vaddr = 3, len = 4, pid = 5, n_reps = 6, n_beats = 7 };
constexpr uint64_t k_start_rd = 0x1;
constexpr uint64_t k_start_wr = 0x2;

/// Copies between this process's memory and `buf` through the kernel, failing cleanly on unmapped addresses.
void host_copy(bool write, uint64_t addr, std::vector<std::byte>& buf) {
    std::size_t done_bytes = 0;
    while (done_bytes < buf.size()) {
        iovec local{buf.data() + done_bytes, buf.size() - done_bytes};
        iovec remote{reinterpret_cast<void*>(addr + done_bytes), buf.size() - done_bytes};
        const ssize_t n = write ? ::process_vm_writev(::getpid(), &local, 1, &remote, 1, 0)
                                : ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
        if (n <= 0)
            throw std::runtime_error(std::string(write ? "LOCAL_WRITE" : "LOCAL_READ") + " of VADDR " +
                                     coyote::detail::hex(addr) + " failed: " + std::strerror(n < 0 ? errno : EFAULT));
        done_bytes += static_cast<std::size_t>(n);
    }
}

class PerfFpga final : public UserLogic {
public:
    const char* name() const noexcept override { return "perf_fpga"; }

    void on_input(Shell&, const InputChunk&) override {} // the example's vFPGA moves data by itself only

    void on_csr_write(Shell& shell, uint32_t offs, uint64_t value) override {
        if (offs == done || offs == timer) { // read-only registers keep what the vFPGA put there
            shell.csr_write(offs, offs == done ? done_ : timer_);
            return;
        }
        if (offs < regs_.size()) regs_[offs] = value;
        shell.csr_write(offs, 0); // write-only: the parser's read process answers 0
        if (offs != ctrl || (value & (k_start_rd | k_start_wr)) == 0) return;
        done_ = 0;
        timer_ = 0;
        shell.csr_write(done, 0);
        shell.csr_write(timer, 0);
        run(shell, (value & k_start_rd) == 0);
    }

private:
    void run(Shell& shell, bool write) {
        const uint64_t addr = regs_[vaddr];
        const auto bytes = static_cast<std::size_t>(regs_[len]);
        const auto reps = static_cast<uint32_t>(regs_[n_reps]);
        buf_.resize(bytes);
        const auto t0 = std::chrono::steady_clock::now();
        uint64_t beat = 0;
        for (uint32_t r = 0; r < reps; ++r) {
            if (write) beat = fill(beat);
            host_copy(write, addr, buf_);
        }
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
        done_ = reps;
        timer_ = std::max<uint64_t>(1, static_cast<uint64_t>(ns.count()) / k_clock_ns);
        shell.csr_write(done, done_);
        shell.csr_write(timer, timer_);
    }
    /// Fills buf_ with the beats of one write repetition, numbered from `beat`; returns the next number.
    uint64_t fill(uint64_t beat) {
        std::memset(buf_.data(), 0, buf_.size());
        for (std::size_t off = 0; off < buf_.size(); off += k_beat, ++beat) {
            const uint64_t v = beat + 1;
            std::memcpy(buf_.data() + off, &v, std::min<std::size_t>(8, buf_.size() - off));
        }
        return beat;
    }

    std::vector<std::byte> buf_;
    std::array<uint64_t, 8> regs_{}; ///< what the host wrote to registers 0 .. 7
    uint64_t done_ = 0;
    uint64_t timer_ = 0;
};

}  // namespace

std::unique_ptr<UserLogic> make_perf_fpga() { return std::make_unique<PerfFpga>(); }

}  // namespace coyote::detail::sim::examples
