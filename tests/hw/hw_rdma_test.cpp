// RDMA WRITE / READ / SEND between two processes on COYOTE_BACKEND=hw and the fake driver (LD_PRELOAD), both
// register layouts: the hw backend's command and QP-context words drive each process's fake FPGA, whose sim NIC
// moves the data; the data and the completion counts are checked by the same scenario as on the sim backend.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <cstdlib>
#include <string>

#include "support/rdma_scenarios.hpp"

namespace {

constexpr uint32_t k_buf = 1u << 20;

void child_env(bool avx) {
    ::setenv("COYOTE_BACKEND", "hw", 1);
    ::setenv("COYOTE_FAKE_HUGE_PAGES", "1", 1); // initRDMA allocates HPF memory; this machine may reserve none
    ::setenv("COYOTE_SIM_SHELL", avx ? "avx=1" : "avx=0", 1);
    ::setenv("COYOTE_OOB_CONNECT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_ACCEPT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_IO_TIMEOUT_MS", "30000", 1);
}

class HwRdma : public testing::TestWithParam<bool> {};

std::string layout_name(const testing::TestParamInfo<bool>& i) { return i.param ? "avx" : "legacy"; }

}  // namespace

// The client WRITEs, the server writes back, the client READs and SENDs; every byte and every count is checked.
TEST_P(HwRdma, WriteReadSendBetweenTwoProcesses) {
    const bool avx = GetParam();
    using coyote_test::Peer;
    namespace scenario = coyote_test::scenario;
    coyote_test::run_pair([avx] { child_env(avx); }, k_buf,
                          [](Peer& p) {
                              coyote_test::check(std::string(p.t.backendName()) == "hw", "the hw backend runs");
                              scenario::write_read_send_server(p, k_buf);
                          },
                          [](Peer& p) { scenario::write_read_send_client(p, k_buf); });
}

// The peer's FPGA does not check an RDMA request against its registered buffer (it reaches whatever its TLB maps):
// the hw backend refuses a remote range outside it before posting (a WRITE past it changed the peer's other
// memory, a READ past it returned that memory).
TEST_P(HwRdma, RemoteRangesOutsideThePeersBufferAreRefusedBeforePosting) {
    const bool avx = GetParam();
    using coyote_test::Peer;
    coyote_test::run_pair([avx] { child_env(avx); }, k_buf, [](Peer& p) { p.sync(); },
                          [](Peer& p) {
                              using coyote::CoyoteOper;
                              using coyote::rdmaSg;
                              auto said = [](auto f) {
                                  try {
                                      f();
                                  } catch (const coyote::Error& e) {
                                      return std::string(e.what());
                                  }
                                  return std::string("accepted");
                              };
                              const std::string outside = "not inside the peer's registered buffer";
                              coyote::cThread& t = p.t;
                              for (const auto& sg : {rdmaSg{.remote_offs = k_buf - 64, .len = 4096},
                                                     rdmaSg{.remote_offs = k_buf + 4096, .len = 64}})
                                  for (auto op : {CoyoteOper::REMOTE_RDMA_WRITE, CoyoteOper::REMOTE_RDMA_READ}) {
                                      const std::string m = said([&] { t.invoke(op, sg); });
                                      coyote_test::check(m.find(outside) != std::string::npos, m);
                                  }
                              const std::string m = said([&] {
                                  t.invokeRdma(CoyoteOper::REMOTE_RDMA_WRITE, p.buf, 0x1000, 64);
                              });
                              coyote_test::check(m.find(outside) != std::string::npos, m);
                              // The last byte of the buffer is still fine.
                              t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.remote_offs = k_buf - 64, .len = 64});
                              coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "the WRITE at the end");
                              p.sync();
                          });
}

INSTANTIATE_TEST_SUITE_P(Layouts, HwRdma, testing::Values(true, false), layout_name);
