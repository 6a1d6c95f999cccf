// Test support: the TCP sockets of a process as /proc/<pid>/net/tcp and /proc/<pid>/fd show them (listeners,
// established connections and the descriptors that hold them).
#pragma once

#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace coyote_test {

/// One row of /proc/<pid>/net/tcp.
struct TcpRow {
    std::string addr;  ///< local address, 8 hex digits as the kernel prints it ("0100007F" is 127.0.0.1)
    uint16_t port = 0; ///< local port
    std::string state; ///< "0A" listening, "01" established
    std::string inode;
};

/// Every row of /proc/<pid>/net/tcp (the network namespace of `pid`).
inline std::vector<TcpRow> tcp_rows(pid_t pid) {
    std::vector<TcpRow> out;
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/tcp");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string sl, local, remote, st, q, tr, rexm, uid, timeout, inode;
        ls >> sl >> local >> remote >> st >> q >> tr >> rexm >> uid >> timeout >> inode;
        const auto colon = local.find(':');
        if (colon == std::string::npos) continue;
        out.push_back({local.substr(0, colon),
                       static_cast<uint16_t>(std::strtoul(local.c_str() + colon + 1, nullptr, 16)), st, inode});
    }
    return out;
}

/// Socket inode -> descriptor of process `pid` (from /proc/<pid>/fd).
inline std::vector<std::pair<std::string, int>> socket_fds(pid_t pid) {
    std::vector<std::pair<std::string, int>> out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (const dirent* e = ::readdir(d)) {
        char target[256] = {};
        const std::string link = dir + "/" + e->d_name;
        const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
        if (n > 9 && std::strncmp(target, "socket:[", 8) == 0)
            out.emplace_back(std::string(target + 8, static_cast<size_t>(n) - 9), std::atoi(e->d_name));
    }
    ::closedir(d);
    return out;
}

/// The rows of process `pid`'s own sockets in state `state` (all rows of its namespace when `own` is false).
inline std::vector<TcpRow> tcp_sockets(pid_t pid, const std::string& state, bool own = true) {
    std::set<std::string> inodes;
    for (const auto& [inode, fd] : socket_fds(pid)) inodes.insert(inode);
    std::vector<TcpRow> out;
    for (const auto& r : tcp_rows(pid))
        if (r.state == state && (!own || inodes.count(r.inode) != 0)) out.push_back(r);
    return out;
}

}  // namespace coyote_test
