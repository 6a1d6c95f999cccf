// coyote-mpi sim NIC, TCP wire: why the connection to each lost peer ended, so that a later post to that peer fails
// at once with the reason. Bounded: a long-running target (a service serving client after client, each with keys
// of its own) keeps the most recent records only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace coyote::detail::sim::net {

class DeadPeers {
public:
    /// Keeps at most `capacity` records (at least 1).
    explicit DeadPeers(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

    /// Records that the connection to the peer of `key` ended because of `why` (replacing an older record of it).
    /// Beyond the capacity the oldest record goes: a post to that peer then dials it again and fails there.
    void record(uint64_t key, std::string why) {
        records_[key] = Record{next_++, std::move(why)};
        if (records_.size() <= capacity_) return;
        auto oldest = records_.begin();
        for (auto it = records_.begin(); it != records_.end(); ++it)
            if (it->second.order < oldest->second.order) oldest = it;
        records_.erase(oldest);
    }

    /// The reason recorded for `key`, if any.
    std::optional<std::string> find(uint64_t key) const {
        const auto it = records_.find(key);
        if (it == records_.end()) return std::nullopt;
        return it->second.why;
    }

    /// Forgets `key` (its peer connected again).
    void erase(uint64_t key) { records_.erase(key); }

    std::size_t size() const { return records_.size(); }

private:
    struct Record {
        uint64_t order; ///< when recorded (larger: later)
        std::string why;
    };
    std::size_t capacity_;
    uint64_t next_ = 0;
    std::map<uint64_t, Record> records_;
};

}  // namespace coyote::detail::sim::net
