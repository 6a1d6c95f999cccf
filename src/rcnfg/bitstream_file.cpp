// coyote-mpi: reading bitstream files with checks; the sim bitstream format (see docs/service.md).
#include "rcnfg/bitstream_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <coyote/error.hpp>

namespace coyote::detail::rcnfg {

namespace {

// Layout: magic[8] version:u16 kind:u16 model_len:u32 shell_len:u32 model shell crc32:u32 (little endian).
constexpr char k_magic[8] = {'C', 'O', 'Y', 'S', 'I', 'M', 'B', 'S'};
constexpr uint16_t k_version = 1;
constexpr size_t k_header = 8 + 2 + 2 + 4 + 4;
constexpr uint32_t k_sync_word = 0xAA995566u;

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
    throw_error(Errc::invalid_argument, "cRcnfg", "bitstream '" + origin + "': " + what);
}

template <typename T>
void put(std::vector<char>& out, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <typename T>
T get(std::span<const char> in, size_t at) {
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
        v = static_cast<T>(v | static_cast<T>(static_cast<T>(static_cast<unsigned char>(in[at + i])) << (8 * i)));
    return v;
}

}  // namespace

uint32_t crc32(std::span<const char> bytes) noexcept {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xFFFFFFFFu;
    for (char ch : bytes) c = table[(c ^ static_cast<unsigned char>(ch)) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

std::vector<char> read_file_checked(const std::string& path, uint64_t max_bytes) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0)
        bad(path, errno == ENOENT ? "no such file" : std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) bad(path, "not a regular file");
    if (st.st_size == 0) bad(path, "the file is empty");
    if (static_cast<uint64_t>(st.st_size) > max_bytes)
        bad(path, "the file has " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                      std::to_string(max_bytes));
    std::ifstream in(path, std::ios::binary);
    if (!in) bad(path, std::string("cannot open: ") + std::strerror(errno));
    std::vector<char> bytes(static_cast<size_t>(st.st_size));
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<size_t>(in.gcount()) != bytes.size()) bad(path, "short read (the file changed while read?)");
    return bytes;
}

bool is_sim_bitstream(std::span<const char> bytes) noexcept {
    return bytes.size() >= sizeof(k_magic) && std::memcmp(bytes.data(), k_magic, sizeof(k_magic)) == 0;
}

namespace {

/// Whether `text` holds a control character (a NUL, a newline, an escape): no model path or shell setting does.
bool has_control(const std::string& text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

} // namespace

std::vector<char> encode_sim_bitstream(const SimBitstream& b) {
    if (b.model.size() > k_max_sim_text || b.shell_settings.size() > k_max_sim_text)
        throw_error(Errc::invalid_argument, "coyote-sim-bitstream",
                    "model and shell settings are limited to " + std::to_string(k_max_sim_text) + " bytes each");
    if (b.kind == SimBitstream::Kind::app && b.model.empty())
        throw_error(Errc::invalid_argument, "encode_sim_bitstream", "an app bitstream needs a model");
    if (has_control(b.model) || has_control(b.shell_settings))
        throw_error(Errc::invalid_argument, "coyote-sim-bitstream",
                    "the model and the shell settings cannot hold control characters (NUL, newline, escape)");
    std::vector<char> out(k_magic, k_magic + sizeof(k_magic));
    put<uint16_t>(out, k_version);
    put<uint16_t>(out, static_cast<uint16_t>(b.kind));
    put<uint32_t>(out, static_cast<uint32_t>(b.model.size()));
    put<uint32_t>(out, static_cast<uint32_t>(b.shell_settings.size()));
    out.insert(out.end(), b.model.begin(), b.model.end());
    out.insert(out.end(), b.shell_settings.begin(), b.shell_settings.end());
    put<uint32_t>(out, crc32(out));
    return out;
}

SimBitstream decode_sim_bitstream(std::span<const char> in, const std::string& origin) {
    if (!is_sim_bitstream(in)) bad(origin, "not a sim bitstream (wrong magic; write one with coyote-sim-bitstream)");
    if (in.size() < k_header + 4) bad(origin, "truncated: " + std::to_string(in.size()) + " bytes, shorter than the header");
    const auto version = get<uint16_t>(in, 8);
    if (version != k_version)
        bad(origin, "sim bitstream version " + std::to_string(version) + " (this library reads version " +
                        std::to_string(k_version) + ")");
    const auto kind = get<uint16_t>(in, 10);
    const auto model_len = get<uint32_t>(in, 12);
    const auto shell_len = get<uint32_t>(in, 16);
    if (model_len > k_max_sim_text || shell_len > k_max_sim_text) bad(origin, "corrupt header (text lengths too large)");
    const size_t want = k_header + model_len + shell_len + 4;
    if (in.size() < want)
        bad(origin, "truncated: " + std::to_string(in.size()) + " bytes, the header announces " + std::to_string(want));
    if (in.size() > want) bad(origin, std::to_string(in.size() - want) + " unexpected bytes after the checksum");
    if (crc32(in.first(want - 4)) != get<uint32_t>(in, want - 4)) bad(origin, "checksum mismatch (corrupt file)");
    if (kind != 1 && kind != 2) bad(origin, "unknown kind " + std::to_string(kind) + " (1 app, 2 shell)");
    SimBitstream b;
    b.kind = static_cast<SimBitstream::Kind>(kind);
    b.model.assign(in.data() + k_header, model_len);
    b.shell_settings.assign(in.data() + k_header + model_len, shell_len);
    if (b.kind == SimBitstream::Kind::app && b.model.empty()) bad(origin, "an app bitstream without a model");
    if (has_control(b.model) || has_control(b.shell_settings)) // no writer puts them there; they would garble messages
        bad(origin, "its model or shell settings hold control characters (corrupt or forged file)");
    if (b.kind == SimBitstream::Kind::app && !b.shell_settings.empty())
        bad(origin, "an app bitstream with shell changes (only a shell bitstream carries them)");
    return b;
}

void check_hw_bitstream(std::span<const char> in, const std::string& origin) {
    if (is_sim_bitstream(in)) bad(origin, "a sim bitstream cannot be loaded on the hw backend");
    // A Vivado .bit starts with a header (field 0x0009, 0x0ff0 0x0ff0 ... 0x00 0x00 0x01) before the configuration
    // words; the driver loads the bare words of a .bin.
    static constexpr unsigned char k_bit_header[] = {0x00, 0x09, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x00, 0x00, 0x01};
    if (in.size() >= sizeof(k_bit_header) && std::memcmp(in.data(), k_bit_header, sizeof(k_bit_header)) == 0)
        bad(origin, "a .bit file (with Vivado's header): Coyote loads the bare configuration words of a .bin "
                    "(write_bitstream -bin_file, or write_cfgmem -format bin)");
    if (in.size() % 4 != 0) bad(origin, "truncated: " + std::to_string(in.size()) + " bytes, not whole 32-bit words");
    const size_t scan = in.size() < 4096 ? in.size() : 4096;
    for (size_t i = 0; i + 4 <= scan; i += 4) {
        const uint32_t le = get<uint32_t>(in, i);
        const uint32_t be = __builtin_bswap32(le);
        if (le == k_sync_word || be == k_sync_word) return;
    }
    bad(origin, "not an FPGA bitstream (no sync word 0xAA995566 in the first 4 KiB)");
}

}  // namespace coyote::detail::rcnfg
