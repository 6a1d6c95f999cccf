// A user-logic model built as a shared object for the sim tests (loaded with COYOTE_SIM_MODEL=<path>).
//   data:  every input byte XOR the low byte of CSR 0 goes to the same output dest;
//   CSR 1: writing v raises a user interrupt with value v for the ctid held in CSR 2;
//   CSR 3: writing v makes the model write 2 * v to CSR 4;
//   CSR 5: misbehaviour on input: 1 throws std::runtime_error, 2 pushes to output dest 99 (out of range),
//          3 reserves a window of 2^60 bytes on the input's dest, puts its size in CSR 7 and commits nothing;
//   CSR 6: writing it throws an int (an exception that is not a std::exception).
// With SIM_MODEL_PLUGIN_CTOR=int in the environment, the constructor (so the factory) throws an int.
#include <coyote/sim/user_logic.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace {

class XorModel final : public coyote::sim::UserLogic {
public:
    XorModel() {
        if (const char* e = std::getenv("SIM_MODEL_PLUGIN_CTOR"); e != nullptr && std::strcmp(e, "int") == 0) throw 42;
    }

    const char* name() const noexcept override { return "xor_plugin"; }

    void on_input(coyote::sim::Shell& shell, const coyote::sim::InputChunk& in) override {
        if (shell.csr_read(5) == 1) throw std::runtime_error("xor_plugin: asked to fail");
        if (shell.csr_read(5) == 2) shell.push(99, in.data);
        if (shell.csr_read(5) == 3) {
            shell.csr_write(7, shell.reserve(in.dest, std::size_t{1} << 60).size());
            shell.commit(in.dest, 0);
            return;
        }
        const auto key = static_cast<std::byte>(shell.csr_read(0) & 0xff);
        std::size_t done = 0;
        while (done < in.data.size()) {
            auto w = shell.reserve(in.dest, in.data.size() - done);
            for (std::size_t i = 0; i < w.size(); ++i) w[i] = in.data[done + i] ^ key;
            shell.commit(in.dest, w.size());
            done += w.size();
        }
    }

    void on_csr_write(coyote::sim::Shell& shell, uint32_t offs, uint64_t value) override {
        if (offs == 1) shell.raise_interrupt(static_cast<int32_t>(shell.csr_read(2)), static_cast<int32_t>(value));
        if (offs == 3) shell.csr_write(4, 2 * value);
        if (offs == 6) throw 42;
    }
};

}  // namespace

COYOTE_SIM_EXPORT_MODEL(XorModel)
