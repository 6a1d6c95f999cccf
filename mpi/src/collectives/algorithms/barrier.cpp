// coyote-mpi collectives: the dissemination barrier.
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

const char* barrier(Call& c) {
    int prev_recv = -1;
    for (int d = 1; d < c.n; d <<= 1) {
        Step s = send_step(mod(c.r + d, c.n), 0, nullptr);
        if (prev_recv >= 0) s.after.push_back(prev_recv);
        c.add(std::move(s));
        // Rounds complete in order: a round's message certifies every earlier round of its sender.
        Step rv = recv_step(mod(c.r - d, c.n), 0, nullptr);
        if (prev_recv >= 0) rv.after.push_back(prev_recv);
        prev_recv = c.add(std::move(rv));
    }
    c.run();
    return "dissemination";
}
}  // namespace coyote::detail::coll::algo
