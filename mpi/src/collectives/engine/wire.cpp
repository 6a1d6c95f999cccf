// coyote-mpi collectives engine: names of collective kinds and call signatures (for error messages).
#include "collectives/engine/wire.hpp"

#include <coyote/mpi/collectives_types.hpp>

namespace coyote::detail::coll {

const char* kind_name(CollKind k) noexcept {
    switch (k) {
    case CollKind::barrier: return "barrier";
    case CollKind::broadcast: return "broadcast";
    case CollKind::reduce: return "reduce";
    case CollKind::allreduce: return "allreduce";
    case CollKind::gather: return "gather";
    case CollKind::allgather: return "allgather";
    case CollKind::scatter: return "scatter";
    case CollKind::reduce_scatter: return "reduce_scatter";
    case CollKind::alltoall: return "alltoall";
    }
    return "unknown collective";
}

std::string describe(const Signature& s) {
    std::string out = kind_name(s.kind);
    out += " of " + std::to_string(s.count) + " " +
           mpi::name(static_cast<mpi::Datatype>(s.dtype));
    if (s.root >= 0) out += " root " + std::to_string(s.root);
    if (s.kind == CollKind::reduce || s.kind == CollKind::allreduce || s.kind == CollKind::reduce_scatter)
        out += std::string(" op ") + mpi::name(static_cast<mpi::Op>(s.op));
    return out;
}

namespace {

constexpr uint64_t k_stall_magic = 0x4c4c415453434f43ULL; // "COSTALL"

uint64_t stall_check(const StallRecord& r) noexcept {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint64_t v : {r.magic, r.epoch, uint64_t{r.kind} << 32 | r.dtype, r.count,
                       uint64_t{static_cast<uint32_t>(r.root)} << 32 | r.op}) {
        h ^= v;
        h *= 0x100000001b3ULL;
    }
    return h;
}

}  // namespace

StallRecord stall_record(uint64_t epoch, const Signature& sig) noexcept {
    StallRecord r;
    r.magic = k_stall_magic;
    r.epoch = epoch;
    r.kind = static_cast<uint32_t>(sig.kind);
    r.dtype = sig.dtype;
    r.count = sig.count;
    r.root = sig.root;
    r.op = sig.op;
    r.check = stall_check(r);
    return r;
}

bool stall_record_valid(const StallRecord& r) noexcept { return r.magic == k_stall_magic && r.check == stall_check(r); }

Signature signature_of(const StallRecord& r) noexcept {
    return Signature{static_cast<CollKind>(r.kind), r.dtype, r.count, r.root, r.op};
}

}  // namespace coyote::detail::coll
