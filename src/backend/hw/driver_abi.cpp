// The Coyote driver's ABI: call names, the reconfiguration device, the default control word, command words.
#include "backend/hw/driver_abi.hpp"

#include "backend/registers.hpp"

namespace coyote::detail::hw::abi {

const char* ioctl_name(unsigned long request) noexcept {
    switch (request) {
    case k_register_ctid: return "IOCTL_REGISTER_CTID";
    case k_unregister_ctid: return "IOCTL_UNREGISTER_CTID";
    case k_register_eventfd: return "IOCTL_REGISTER_EVENTFD";
    case k_unregister_eventfd: return "IOCTL_UNREGISTER_EVENTFD";
    case k_map_user_mem: return "IOCTL_MAP_USER_MEM";
    case k_unmap_user_mem: return "IOCTL_UNMAP_USER_MEM";
    case k_map_dmabuf: return "IOCTL_MAP_DMABUF";
    case k_unmap_dmabuf: return "IOCTL_UNMAP_DMABUF";
    case k_offload_req: return "IOCTL_OFFLOAD_REQ";
    case k_sync_req: return "IOCTL_SYNC_REQ";
    case k_set_ip_address: return "IOCTL_SET_IP_ADDRESS";
    case k_set_mac_address: return "IOCTL_SET_MAC_ADDRESS";
    case k_get_ip_address: return "IOCTL_GET_IP_ADDRESS";
    case k_get_mac_address: return "IOCTL_GET_MAC_ADDRESS";
    case k_read_shell_config: return "IOCTL_READ_SHELL_CONFIG";
    case k_shell_hdma_stats: return "IOCTL_SHELL_HDMA_STATS";
    case k_shell_net_stats: return "IOCTL_SHELL_NET_STATS";
    case k_set_notification_processed: return "IOCTL_SET_NOTIFICATION_PROCESSED";
    case k_get_notification_value: return "IOCTL_GET_NOTIFICATION_VALUE";
    case k_alloc_host_reconfig_mem: return "IOCTL_ALLOC_HOST_RECONFIG_MEM";
    case k_free_host_reconfig_mem: return "IOCTL_FREE_HOST_RECONFIG_MEM";
    case k_reconfigure_app: return "IOCTL_RECONFIGURE_APP";
    case k_reconfigure_shell: return "IOCTL_RECONFIGURE_SHELL";
    case k_pr_cnfg: return "IOCTL_PR_CNFG";
    case k_pr_wb_stats: return "IOCTL_PR_WB_STATS";
    default: return "unknown ioctl";
    }
}

std::string reconfig_device_file(uint32_t device) {
    return "/dev/coyote_fpga_" + std::to_string(device) + "_reconfig";
}

uint64_t default_control_word(uint64_t shell_word) noexcept {
    const uint64_t avx = shell_word & 0x1;
    const uint64_t wb = (shell_word >> 1) & 0x1;
    return avx | (wb << 3) | (12ULL << 20) | (21ULL << 26);
}

namespace {

RdmaOpcode rdma_opcode(CoyoteOper oper) noexcept {
    switch (oper) {
    case CoyoteOper::REMOTE_RDMA_READ: return RdmaOpcode::read;
    case CoyoteOper::REMOTE_RDMA_SEND: return RdmaOpcode::send;
    default: return RdmaOpcode::write;
    }
}

uint64_t side_word(const Command& cmd, const SgSide& s, uint32_t opcode, bool start) noexcept {
    CtrlWord c;
    c.opcode = opcode;
    c.stream = s.stream;
    c.ctid = static_cast<uint32_t>(cmd.ctid);
    c.dest = s.dest;
    c.last = cmd.last;
    c.start = start;
    c.len = s.len;
    return c.encode();
}

}  // namespace

CmdWords encode_command(const Command& cmd) noexcept {
    CmdWords w;
    switch (cmd.oper) {
    case CoyoteOper::LOCAL_READ:
        w.src_ctrl = side_word(cmd, cmd.src, 0, true);
        w.src_addr = cmd.src.addr;
        break;
    case CoyoteOper::LOCAL_WRITE:
        w.dst_ctrl = side_word(cmd, cmd.dst, 0, true);
        w.dst_addr = cmd.dst.addr;
        break;
    case CoyoteOper::LOCAL_TRANSFER:
        w.src_ctrl = side_word(cmd, cmd.src, 0, true);
        w.src_addr = cmd.src.addr;
        w.dst_ctrl = side_word(cmd, cmd.dst, 0, true);
        w.dst_addr = cmd.dst.addr;
        break;
    case CoyoteOper::REMOTE_RDMA_READ:
    case CoyoteOper::REMOTE_RDMA_WRITE:
    case CoyoteOper::REMOTE_RDMA_SEND: {
        const auto op = static_cast<uint32_t>(rdma_opcode(cmd.oper));
        SgSide remote = cmd.dst;
        remote.stream = STRM_RDMA;
        remote.len = cmd.src.len;
        const uint64_t local_ctrl = side_word(cmd, cmd.src, op, false);
        const uint64_t remote_ctrl = side_word(cmd, remote, op, true);
        if (cmd.oper == CoyoteOper::REMOTE_RDMA_READ) {
            w = {remote_ctrl, remote.addr, local_ctrl, cmd.src.addr};
        } else {
            w = {local_ctrl, cmd.src.addr, remote_ctrl, remote.addr};
        }
        break;
    }
    default: break; // NOOP, syncs (ioctls) and TCP (not posted) have no command words
    }
    return w;
}

CmdWords encode_clear(int32_t ctid) noexcept {
    CtrlWord c;
    c.ctid = static_cast<uint32_t>(ctid);
    c.clr_stat = true;
    const uint64_t word = c.encode();
    return {word, 0, word, 0};
}

}  // namespace coyote::detail::hw::abi
