// Fuzz target: a slot of the MPI layer's queue pair exchange (QpSet), as another rank may fill it. The first two
// bytes pick the sending rank and whether this rank expects a queue pair from it; the rest is the slot.
#include "bootstrap/wiring_slots.hpp"
#include "fuzz_support.hpp"

namespace md = coyote::mpi::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const int me = 1;
    const int r = data[0] % 4;
    const bool wanted = (data[1] & 1) != 0;
    const auto slot = coyote::fuzz::bytes_of(data + 2, size - 2);
    std::optional<std::span<const std::byte>> blob;
    if (!coyote::fuzz::accepted([&] { blob = md::slot_blob(slot, r, me, wanted); })) return 0;
    if (!blob) {
        coyote::fuzz::require(!wanted, "no blob although a queue pair was expected");
        return 0;
    }
    coyote::fuzz::require(wanted, "a blob although no queue pair was expected");
    coyote::fuzz::require(!blob->empty(), "an empty blob accepted");
    coyote::fuzz::require(blob->data() >= slot.data() + sizeof(md::SlotHeader) &&
                              blob->data() + blob->size() <= slot.data() + slot.size(),
                          "blob outside its slot");
    return 0;
}
