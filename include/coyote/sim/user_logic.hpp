// coyote-mpi: the interface of user-logic models for the sim backend.
//
// A model stands in for the user logic of one vFPGA. The simulated shell feeds it the data of
// LOCAL_READ commands (and of the read half of LOCAL_TRANSFER) as input streams, one per `dest`,
// and drains what the model produces on its output streams into the buffers of LOCAL_WRITE commands
// (and of the write half of LOCAL_TRANSFER) posted on the same `dest`, in posting order.
//
// The shell calls a model from one thread at a time (it is one piece of hardware), always under the
// vFPGA's model lock. Shell methods may only be called from inside those callbacks.
//
// A model in a shared object exports a factory (see COYOTE_SIM_EXPORT_MODEL below) and is selected
// with COYOTE_SIM_MODEL=/path/to/model.so. See docs/user_logic_models.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace coyote::sim {

/// Version of this interface; a shared-object model built against another version is rejected.
inline constexpr uint32_t k_user_logic_abi = 1;

/// Number of user control registers (64 KiB region of 64-bit words).
inline constexpr uint32_t k_csr_words = 8192;

/// Number of stream destinations (the 4-bit `dest` field of a command).
inline constexpr uint32_t k_n_dests = 16;

/// Where the data of a stream comes from or goes to (same values as STRM_CARD / STRM_HOST).
enum class StreamKind : uint32_t { card = 0, host = 1 };

/// One piece of input data on input stream `dest`.
struct InputChunk {
    uint32_t dest = 0;                    ///< input stream (0..15)
    StreamKind kind = StreamKind::host;   ///< host memory or card memory read
    int32_t ctid = 0;                     ///< Coyote thread that posted the read
    std::span<const std::byte> data;      ///< valid only during the call
    bool end_of_command = false;          ///< this is the final chunk of the command
    bool last = false;                    ///< end_of_command of a command posted with last = true
};

/// The simulated shell as the model sees it.
class Shell {
public:
    /// Pushes `data` on output stream `dest`. It is written straight into the pending LOCAL_WRITE
    /// buffers of `dest` (one copy), and buffered by the shell only when no write is pending.
    virtual void push(uint32_t dest, std::span<const std::byte> data) = 0;

    /// Returns a writable window of up to `max_bytes` on output stream `dest`: the next bytes of the
    /// pending write of `dest` when there is one (possibly shorter than `max_bytes`), else a shell
    /// buffer of at most 2 MiB. Fill it and call commit(); a second reserve() without commit() discards the first.
    virtual std::span<std::byte> reserve(uint32_t dest, std::size_t max_bytes) = 0;
    /// Publishes the first `n` bytes of the window reserve() returned for `dest`.
    virtual void commit(uint32_t dest, std::size_t n) = 0;

    /// Bytes the pending LOCAL_WRITEs of `dest` still wait for.
    virtual uint64_t output_demand(uint32_t dest) const = 0;

    /// User control registers (word index < k_csr_words; out-of-range reads give 0, writes are ignored).
    virtual uint64_t csr_read(uint32_t offs) const = 0;
    virtual void csr_write(uint32_t offs, uint64_t value) = 0;

    /// Raises a user interrupt for `ctid`; the handler of that Coyote thread receives `value`.
    virtual void raise_interrupt(int32_t ctid, int32_t value) = 0;

    /// vFPGA index and device number of the shell.
    virtual int32_t vfid() const noexcept = 0;
    virtual uint32_t device() const noexcept = 0;

protected:
    virtual ~Shell() = default;
};

/// A user-logic model. Implement the callbacks that matter to your logic.
class UserLogic {
public:
    virtual ~UserLogic() = default;

    /// Short name; cThread::printDebug() shows it after the plug-in's path.
    virtual const char* name() const noexcept = 0;

    /// Data arrived on input stream `in.dest`.
    virtual void on_input(Shell& shell, const InputChunk& in) = 0;

    /// The host wrote user control register `offs` (the new value is already visible to csr_read).
    virtual void on_csr_write(Shell& shell, uint32_t offs, uint64_t value) {
        (void)shell;
        (void)offs;
        (void)value;
    }

    /// A LOCAL_WRITE of `len` bytes was posted on output stream `dest` (models that produce data on
    /// demand can respond here).
    virtual void on_output_request(Shell& shell, uint32_t dest, uint64_t len) {
        (void)shell;
        (void)dest;
        (void)len;
    }
};

}  // namespace coyote::sim

/// Name of the factory symbol a model shared object exports.
#define COYOTE_SIM_MODEL_FACTORY "coyote_sim_create_model"
/// Name of the matching destructor symbol.
#define COYOTE_SIM_MODEL_DESTROY "coyote_sim_destroy_model"
/// Name of the ABI version symbol.
#define COYOTE_SIM_MODEL_ABI "coyote_sim_model_abi"

/// Exports model class `Type` (default-constructible) from a shared object:
/// the factory, the matching destructor and the interface version.
#define COYOTE_SIM_EXPORT_MODEL(Type)                                                                    \
    extern "C" __attribute__((visibility("default"))) ::coyote::sim::UserLogic* coyote_sim_create_model() { \
        return new Type();                                                                               \
    }                                                                                                    \
    extern "C" __attribute__((visibility("default"))) void coyote_sim_destroy_model(                     \
        ::coyote::sim::UserLogic* model) {                                                               \
        delete model;                                                                                    \
    }                                                                                                    \
    extern "C" __attribute__((visibility("default"))) uint32_t coyote_sim_model_abi() {                 \
        return ::coyote::sim::k_user_logic_abi;                                                          \
    }
