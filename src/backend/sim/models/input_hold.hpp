// coyote-mpi sim backend: holding host input past on_input, for the built-in two-operand models (no copy of the
// operand that comes first). The hardware reads a stream only as fast as the logic consumes it; so does a hold.
#pragma once

#include <cstdint>

#include <coyote/sim/user_logic.hpp>

namespace coyote::detail::sim {

/// The shell side (the sim's ShellPort implements it; find it with dynamic_cast on the Shell).
class InputHold {
public:
    /// During on_input: keeps the chunk's data readable after the call returns; the shell completes its read only
    /// when the model releases it. False when the shell cannot (card memory, another process's memory): copy then.
    virtual bool hold_input() = 0;
    /// The oldest held chunk of `dest` is consumed: its read completes.
    virtual void release_input(uint32_t dest) = 0;

protected:
    ~InputHold() = default;
};

/// The model side: a model that holds input implements it (found with dynamic_cast on the model).
class InputHolder {
public:
    /// Copies every held chunk into the model's own memory and releases it. The shell asks when it has no queued
    /// command left that could bring the partner data, and before held memory is freed.
    virtual void spill(coyote::sim::Shell& shell) = 0;

protected:
    ~InputHolder() = default;
};

}  // namespace coyote::detail::sim
