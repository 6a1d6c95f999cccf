// coyote-mpi: cConn, a client's connection to a cService: submit tasks, wait for their results.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <coyote/cDefs.hpp>
#include <coyote/cTask.hpp>
#include <coyote/error.hpp>

namespace coyote {

/// A connection to the service listening on Unix socket `sock_name`. Errors the service reports (unknown
/// function, bad arguments, refused, timeout, stopped) throw coyote::Error carrying the reason; every wait has
/// a deadline (COYOTE_CONN_TIMEOUT_MS).
class cConn {
public:
    cConn(std::string sock_name);
    /// coyote-mpi: a remote service (cService with remote = true) at `host`:`port`, presenting the shared key
    /// held in `key_file`.
    cConn(std::string host, uint16_t port, std::string key_file);
    ~cConn();
    cConn(const cConn&) = delete;
    cConn& operator=(const cConn&) = delete;

    /// Whether task `tid` (from iTask) has completed, successfully or not. Throws Errc::invalid_argument for an id
    /// this connection does not hold (never submitted here, or its result was already taken); stock Coyote prints
    /// an error and returns false there, which a polling loop never leaves.
    bool isTaskCompleted(int32_t tid);

    /// Runs function `fid` with `msg` on the service and waits for its return value.
    template <typename ret, typename... args>
    ret task(int32_t fid, args... msg) {
        return decode<ret>(wait_result(iTask<ret, args...>(fid, msg...)));
    }

    /// Submits function `fid` with `msg`; returns the task id at once.
    template <typename ret, typename... args>
    int32_t iTask(int32_t fid, args... msg) {
        static_assert((std::is_trivially_copyable_v<args> && ...), "cConn: arguments must be trivially copyable");
        std::vector<char> payload;
        payload.reserve((sizeof(args) + ... + 0));
        (append(payload, msg), ...);
        return submit(fid, payload, sizeof(ret));
    }

    /// The return value of completed task `tid` (it may be read again, as in stock Coyote: releaseTask forgets
    /// it); throws with the reason when the task failed, and Errc::invalid_argument when `tid` is unknown or not
    /// completed.
    template <typename ret>
    ret getTaskReturnValue(int32_t tid) {
        return decode<ret>(take_result(tid));
    }

    // ---- coyote-mpi extensions ----
    /// Waits for task `tid` and returns its return-value bytes (throws on failure or deadline).
    std::vector<char> wait_result(int32_t tid);
    /// Return-value bytes of completed task `tid` (throws on failure).
    std::vector<char> take_result(int32_t tid);
    /// Forgets completed task `tid` and its result (a client that polls with isTaskCompleted and reads results
    /// with getTaskReturnValue would otherwise keep every one); false when unknown or still running. task() and
    /// wait_result forget by themselves.
    bool releaseTask(int32_t tid);
    /// Sends a request of function `fid` with the arguments' bytes; the reply carries `ret_size` bytes.
    int32_t submit(int32_t fid, const std::vector<char>& payload, size_t ret_size);

private:
    void register_with_service(const std::vector<char>& hello);
    template <typename T>
    static void append(std::vector<char>& out, const T& v) {
        const char* p = reinterpret_cast<const char*>(&v);
        out.insert(out.end(), p, p + sizeof(T));
    }
    template <typename T>
    static T decode(const std::vector<char>& b) {
        static_assert(std::is_trivially_copyable_v<T>, "cConn: the return type must be trivially copyable");
        T v{};
        std::memcpy(&v, b.data(), sizeof(T) < b.size() ? sizeof(T) : b.size());
        return v;
    }

    class Impl;
    std::unique_ptr<Impl> impl;
};

}  // namespace coyote
