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

}  // namespace coyote::detail::coll
