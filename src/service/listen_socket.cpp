// coyote-mpi: creating the service's Unix socket safely, reading a peer's credentials.
#include "service/listen_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <grp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <coyote/error.hpp>

namespace coyote::detail::service {

namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
    throw_error(Errc::invalid_argument, "cService", "cannot listen on " + path + ": " + why);
}

sockaddr_un address_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) refuse(path, "the path is too long for a Unix socket");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

/// Whether a server answers at `path`.
bool someone_listens(const sockaddr_un& a) {
    Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
}

/// Removes a stale socket of ours at `path`; refuses anything else.
void clear_stale(const std::string& path, const sockaddr_un& a) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        refuse(path, std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) refuse(path, "it is a symbolic link (refusing to follow it)");
    if (!S_ISSOCK(st.st_mode)) refuse(path, "a file that is not a socket is in the way");
    if (st.st_uid != ::geteuid()) refuse(path, "the socket belongs to uid " + std::to_string(st.st_uid));
    if (someone_listens(a)) refuse(path, "another service is already listening there");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) refuse(path, std::string("unlink: ") + std::strerror(errno));
}

}  // namespace

Fd listen_unix(const std::string& path, int backlog, gid_t group) {
    const sockaddr_un final_addr = address_of(path);
    clear_stale(path, final_addr);
    const std::string parent = path.substr(0, path.rfind('/') + 1);
    std::string dir = (parent.empty() ? std::string("./") : parent) + ".coyote-bind-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) refuse(path, "mkdtemp " + dir + ": " + std::strerror(errno));
    const std::string staged = dir + "/socket";
    auto fail = [&](const std::string& why) {
        ::unlink(staged.c_str());
        ::rmdir(dir.c_str());
        refuse(path, why);
    };
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail(std::string("socket: ") + std::strerror(errno));
    const sockaddr_un a = address_of(staged);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0)
        fail(std::string("bind: ") + std::strerror(errno));
    if (::listen(fd.get(), backlog) != 0) fail(std::string("listen: ") + std::strerror(errno));
    if (group != k_no_group && ::chown(staged.c_str(), static_cast<uid_t>(-1), group) != 0)
        fail("cannot give the socket to group " + std::to_string(group) + " (COYOTE_SERVICE_GROUP): " +
             std::strerror(errno));
    if (::chmod(staged.c_str(), group != k_no_group ? 0660 : 0600) != 0)
        fail(std::string("chmod: ") + std::strerror(errno));
    if (::rename(staged.c_str(), path.c_str()) != 0) fail(std::string("rename into place: ") + std::strerror(errno));
    ::rmdir(dir.c_str());
    return fd;
}

gid_t group_id(const std::string& spec) {
    uint64_t n = 0;
    if (!spec.empty() && spec.find_first_not_of("0123456789") == std::string::npos && spec.size() < 11 &&
        (n = std::stoull(spec)) < k_no_group)
        return static_cast<gid_t>(n);
    std::vector<char> buf(16384);
    group g{};
    group* found = nullptr;
    if (::getgrnam_r(spec.c_str(), &g, buf.data(), buf.size(), &found) != 0 || found == nullptr)
        throw_error(Errc::invalid_argument, "cService", "COYOTE_SERVICE_GROUP: no group named '" + spec + "'");
    return found->gr_gid;
}

Fd listen_tcp(const std::string& address, uint16_t port, int backlog) {
    const std::string where = (address.empty() ? "0.0.0.0" : address) + ":" + std::to_string(port);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::inet_pton(AF_INET, address.empty() ? "0.0.0.0" : address.c_str(), &a.sin_addr) != 1)
        refuse(where, "not an IPv4 address");
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd.get(), backlog) != 0)
        refuse(where, std::strerror(errno));
    return fd;
}

std::string read_key_file(const std::string& path) {
    auto bad = [&](const std::string& why) {
        throw_error(Errc::invalid_argument, "cService", "key file '" + path + "' (COYOTE_SERVICE_KEY_FILE): " + why);
    };
    if (path.empty()) bad("not set; remote clients need a shared key");
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) bad(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) bad("not a regular file");
    if (st.st_uid != ::geteuid()) bad("it belongs to uid " + std::to_string(st.st_uid));
    if ((st.st_mode & 077) != 0) bad("group or others may read it (chmod 600)");
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string key = ss.str();
    if (!key.empty() && key.back() == '\n') key.pop_back();
    if (key.empty() || key.size() > 4096) bad("the key must have 1 to 4096 bytes");
    return key;
}

bool same_key(const std::string& a, const std::string& b) noexcept {
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i)
        diff |= static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
    return diff == 0;
}

bool peer_of(int fd, Peer& out) {
    ucred c{};
    socklen_t len = sizeof(c);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return false;
    out = {c.pid, c.uid, c.gid};
    return true;
}

bool peer_in_group(int fd, const Peer& peer, gid_t group) {
    if (peer.gid == group) return true;
    std::vector<gid_t> groups(64);
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) {
        if (errno != ERANGE) return false;
        groups.resize(len / sizeof(gid_t)); // the kernel said how much it needs
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) return false;
    }
    groups.resize(len / sizeof(gid_t));
    for (gid_t g : groups)
        if (g == group) return true;
    return false;
}

namespace {

bool in_my_groups(gid_t g) {
    if (g == ::getegid()) return true;
    const int n = ::getgroups(0, nullptr);
    if (n <= 0) return false;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    const int got = ::getgroups(n, groups.data());
    for (int i = 0; i < got; ++i)
        if (groups[static_cast<size_t>(i)] == g) return true;
    return false;
}

}  // namespace

std::string untrusted_service_reason(const std::string& path, const Peer& peer) {
    if (peer.uid == ::geteuid() || peer.uid == 0) return {};
    const std::string who = "the service at " + path + " runs as uid " + std::to_string(peer.uid) + " (another user)";
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return who + " and no socket is at that path now";
    if (st.st_uid != peer.uid) return who + " but its socket belongs to uid " + std::to_string(st.st_uid);
    if ((st.st_mode & 0007) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        return who + " and its socket is open to every user (mode " + mode +
               "); a coyote service's socket is 0600, or 0660 for its COYOTE_SERVICE_GROUP";
    }
    if (!in_my_groups(st.st_gid))
        return who + " and its socket's group " + std::to_string(st.st_gid) + " is none of this process's groups";
    return {};
}

}  // namespace coyote::detail::service
