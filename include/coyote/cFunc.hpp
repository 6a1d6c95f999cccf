// coyote-mpi: cFunc<ret, args...>, a typed service function bound to an application bitstream.
#pragma once

#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <coyote/bFunc.hpp>
#include <coyote/cThread.hpp>

namespace coyote {

/// A function of the service: `fn(cThread*, args...)` runs with the vFPGA loaded with `app_bitstream`.
/// Arguments and the return value travel as raw bytes, so they must be trivially copyable.
template <typename ret, typename... args>
class cFunc : public bFunc {
    static_assert(std::is_trivially_copyable_v<ret>, "cFunc: the return type must be trivially copyable");
    static_assert((std::is_trivially_copyable_v<args> && ...), "cFunc: arguments must be trivially copyable");

public:
    /// `app_bitstream` is made absolute against the current directory (an empty path stays empty: registering
    /// the function then fails as for any unreadable bitstream).
    cFunc(int32_t fid, std::string app_bitstream, std::function<ret(cThread*, args...)> fn)
        : fid_(fid), path_(app_bitstream.empty() ? std::string() : std::filesystem::absolute(app_bitstream).string()),
          fn_(std::move(fn)) {}

    std::vector<char> run(cThread* coyote_thread, const std::vector<std::vector<char>>& x) override {
        if (x.size() != sizeof...(args))
            throw std::invalid_argument("cFunc " + std::to_string(fid_) + ": expected " +
                                        std::to_string(sizeof...(args)) + " arguments, got " +
                                        std::to_string(x.size()));
        check_sizes(x, std::index_sequence_for<args...>{});
        ret value = call(coyote_thread, x, std::index_sequence_for<args...>{});
        std::vector<char> out(sizeof(ret));
        std::memcpy(out.data(), &value, sizeof(ret));
        return out;
    }

    int32_t getFid() const override { return fid_; }
    std::string getBitstreamPath() const override { return path_; }
    std::pair<void*, uint32_t> getBitstreamPointer() const override { return bitstream_; }
    void setBitstreamPointer(std::pair<void*, uint32_t> p) override { bitstream_ = p; }
    std::vector<size_t> getArgumentSizes() const override { return {sizeof(args)...}; }
    size_t getReturnSize() const override { return sizeof(ret); }

private:
    template <std::size_t... I>
    void check_sizes(const std::vector<std::vector<char>>& x, std::index_sequence<I...>) const {
        const size_t want[] = {sizeof(args)..., 0};
        for (size_t i = 0; i < sizeof...(args); ++i)
            if (x[i].size() != want[i])
                throw std::invalid_argument("cFunc " + std::to_string(fid_) + ": argument " + std::to_string(i) +
                                            " has " + std::to_string(x[i].size()) + " bytes, expected " +
                                            std::to_string(want[i]));
    }

    template <typename T>
    static T unpack(const std::vector<char>& b) {
        T v;
        std::memcpy(&v, b.data(), sizeof(T));
        return v;
    }

    template <std::size_t... I>
    ret call(cThread* t, const std::vector<std::vector<char>>& x, std::index_sequence<I...>) {
        (void)x;
        return fn_(t, unpack<args>(x[I])...);
    }

    int32_t fid_;
    std::string path_;
    std::pair<void*, uint32_t> bitstream_{nullptr, 0};
    std::function<ret(cThread*, args...)> fn_;
};

}  // namespace coyote
