// Fuzz target: the out-of-band message of a queue pair (the peer's ibvQ and sim endpoint, as initRDMA or the MPI
// wiring receives it): cThread::connectQp on a sim vFPGA. Accepted messages must leave the thread usable.
#include <coyote/cThread.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <memory>

#include "fuzz_support.hpp"

namespace {

coyote::cThread& thread() {
    static std::unique_ptr<coyote::cThread> t = [] {
        ::setenv("COYOTE_BACKEND", "sim", 0);
        auto p = std::make_unique<coyote::cThread>(0, ::getpid());
        (void)p->getMem({coyote::CoyoteAllocType::HPF, 4096, true});
        return p;
    }();
    return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    coyote::cThread& t = thread();
    const bool ok = coyote::fuzz::accepted([&] { t.connectQp(coyote::fuzz::bytes_of(data, size), 0); });
    if (ok) coyote::fuzz::require(t.exportQp().size() >= sizeof(coyote::ibvQ), "thread unusable after connectQp");
    return 0;
}
