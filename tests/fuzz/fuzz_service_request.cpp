// Fuzz target: the requests a local client sends to a cService (after its pid): headers, opcodes, function ids and
// argument bytes. The service must stay up and serve a well-behaved client after every input.
#include <coyote/cConn.hpp>
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "fuzz_stream_support.hpp"
#include "fuzz_support.hpp"
#include "rcnfg/bitstream_file.hpp"

namespace rc = coyote::detail::rcnfg;

namespace {

struct Service {
    coyote::cService* svc = nullptr;
    std::thread runner;
};

std::string bitstream_path(const std::string& model) {
    return "/tmp/coyote-fuzz-service-" + std::to_string(::getpid()) + "-" + model + ".bin";
}

std::string bitstream(const std::string& model) {
    const auto bytes = rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, model, ""});
    const std::string path = bitstream_path(model);
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

Service start_service() {
    ::signal(SIGPIPE, SIG_IGN);
    ::setenv("COYOTE_BACKEND", "sim", 0);
    ::setenv("COYOTE_SERVICE_REQUEST_TIMEOUT_MS", "100", 1);
    Service x;
    x.svc = coyote::cService::getInstance("fuzz-" + std::to_string(::getpid()), false, 0);
    const std::string a = bitstream("passthrough"), b = bitstream("vadd");
    x.svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t, int32_t>>(
        10, a, [](coyote::cThread*, int32_t p, int32_t q) { return static_cast<int32_t>(uint32_t(p) + uint32_t(q)); }));
    x.svc->addFunction(std::make_unique<coyote::cFunc<int64_t, int64_t, int64_t>>(
        11, b, [](coyote::cThread*, int64_t p, int64_t q) { return static_cast<int64_t>(uint64_t(p) * uint64_t(q)); }));
    x.svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t>>(
        12, a, [](coyote::cThread*, int32_t) -> int32_t { throw std::runtime_error("refused by the function"); }));
    x.runner = std::thread([svc = x.svc] { svc->run(); });
    for (int i = 0; i < 500 && !x.svc->isRunning(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!x.svc->isRunning()) coyote::fuzz::finding("the service did not start");
    return x;
}

Service& service();

/// libFuzzer ends with exit(): the serving thread stops and is joined before the service instance is destroyed.
void stop_service() {
    Service& s = service();
    s.svc->stop();
    if (s.runner.joinable()) s.runner.join();
    coyote::cService::releaseInstance(0);
    for (const char* model : {"passthrough", "vadd"}) ::unlink(bitstream_path(model).c_str());
}

Service& service() {
    static Service s = start_service();
    static const bool stop_registered = std::atexit(stop_service) == 0;
    (void)stop_registered;
    return s;
}

int connect_to(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
        coyote::fuzz::finding("cannot reach the service");
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Service& s = service();
    const int fd = connect_to(s.svc->getSocketPath());
    const pid_t me = ::getpid();
    if (coyote::fuzz::send_all(fd, &me, sizeof(me))) (void)coyote::fuzz::send_all(fd, data, size);
    coyote::fuzz::finish(fd, 10); // a client that leaves before its replies is part of the test
    // A well-behaved client is still served, with the right result.
    const int check = connect_to(s.svc->getSocketPath());
    const int32_t req[5] = {1, 10, 7, 20, 22};
    int32_t reply[3] = {-1, -1, -1};
    if (!coyote::fuzz::send_all(check, &me, sizeof(me)) || !coyote::fuzz::send_all(check, req, sizeof(req)) ||
        !coyote::fuzz::read_exact(check, reply, sizeof(reply), 10000) || reply[0] != 0 || reply[1] != 7 ||
        reply[2] != 42)
        coyote::fuzz::finding("the service no longer serves a well-behaved client");
    ::close(check);
    return 0;
}
