// coyote-mpi benchmarks: sim user-logic model of the local suite (loaded with COYOTE_SIM_MODEL=<path>).
//   dest 0: passthrough (input loops back to output dest 0), for LOCAL_TRANSFER;
//   dest 1: sink and source. Input is consumed: CSR 0 accumulates the 64-bit word sum (see below) and
//           CSR 1 the byte count. Every LOCAL_WRITE posted on dest 1 is answered at once with its length of
//           the pattern byte(k) = (k * 131 + 7) mod 256, k counted from the start of that write.
//   Writing any value to CSR 2 clears CSR 0 and CSR 1.
// Word sum of a chunk: the sum (mod 2^64) of its little-endian 8-byte words, plus each trailing byte.
#include <coyote/sim/user_logic.hpp>

#include <algorithm>
#include <cstring>

namespace {

constexpr uint32_t k_sink_dest = 1;
constexpr uint32_t k_csr_sum = 0;
constexpr uint32_t k_csr_bytes = 1;
constexpr uint32_t k_csr_clear = 2;

uint64_t word_sum(std::span<const std::byte> data) {
    uint64_t lane[4] = {0, 0, 0, 0}; // independent sums keep several loads in flight
    std::size_t i = 0;
    for (; i + 32 <= data.size(); i += 32) {
        uint64_t w[4];
        std::memcpy(w, data.data() + i, 32);
        for (int k = 0; k < 4; ++k) lane[k] += w[k];
    }
    uint64_t sum = lane[0] + lane[1] + lane[2] + lane[3];
    for (; i + 8 <= data.size(); i += 8) {
        uint64_t w = 0;
        std::memcpy(&w, data.data() + i, 8);
        sum += w;
    }
    for (; i < data.size(); ++i) sum += static_cast<uint64_t>(data[i]);
    return sum;
}

class BenchSinkSource final : public coyote::sim::UserLogic {
public:
    const char* name() const noexcept override { return "bench_sink_source"; }

    void on_input(coyote::sim::Shell& shell, const coyote::sim::InputChunk& in) override {
        if (in.dest != k_sink_dest) {
            shell.push(in.dest, in.data);
            return;
        }
        shell.csr_write(k_csr_sum, shell.csr_read(k_csr_sum) + word_sum(in.data));
        shell.csr_write(k_csr_bytes, shell.csr_read(k_csr_bytes) + in.data.size());
    }

    void on_csr_write(coyote::sim::Shell& shell, uint32_t offs, uint64_t value) override {
        (void)value;
        if (offs != k_csr_clear) return;
        shell.csr_write(k_csr_sum, 0);
        shell.csr_write(k_csr_bytes, 0);
    }

    void on_output_request(coyote::sim::Shell& shell, uint32_t dest, uint64_t len) override {
        if (dest != k_sink_dest) return;
        uint64_t k = 0;
        while (k < len) {
            auto window = shell.reserve(dest, static_cast<std::size_t>(std::min<uint64_t>(len - k, 1u << 20)));
            if (window.empty()) return;
            // The pattern repeats every 256 bytes: copy it from the table in pieces.
            for (std::size_t i = 0; i < window.size();) {
                const std::size_t phase = static_cast<std::size_t>((k + i) % 256);
                const std::size_t n = std::min(window.size() - i, k_table - 256);
                std::memcpy(window.data() + i, table_ + phase, n);
                i += n;
            }
            shell.commit(dest, window.size());
            k += window.size();
        }
    }

private:
    static constexpr std::size_t k_table = (64u << 10) + 256;
    static std::byte* make_table() {
        static std::byte table[k_table];
        for (std::size_t i = 0; i < k_table; ++i) table[i] = static_cast<std::byte>((i * 131u + 7u) & 0xFFu);
        return table;
    }
    std::byte* table_ = make_table();
};

}  // namespace

COYOTE_SIM_EXPORT_MODEL(BenchSinkSource)
