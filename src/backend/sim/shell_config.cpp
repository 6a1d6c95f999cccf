// coyote-mpi sim backend: the shell configuration of the sim vFPGAs (defaults, a file, key=value overrides).
#include "backend/sim/shell_config.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <coyote/error.hpp>

#include "detail/format.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim {

namespace {

namespace settings = ::coyote::detail::settings;

const settings::Text k_config_file{"COYOTE_SIM_CONFIG", "sim", "",
                                   "file of shell key=value lines ('#' comments) read before COYOTE_SIM_SHELL",
                                   [](const std::string& v) {
                                       return settings::problem_of([&] {
                                           ShellConfig probe;
                                           apply_shell_config_file(probe, v);
                                       });
                                   }};
const settings::Text k_shell{"COYOTE_SIM_SHELL", "sim", "",
                             "shell configuration 'key=value,...' (avx, wb, strm, mem, pr, rdma, tcp, n_xdma_chan, "
                             "n_fpga_reg, card_capacity)",
                             [](const std::string& v) { return shell_settings_problem(v, "COYOTE_SIM_SHELL"); }};

constexpr uint64_t k_tlb_s_order = 10; // 1024 small-page TLB sets
constexpr uint64_t k_n_s_assoc = 4;
constexpr uint64_t k_tlb_l_order = 9;  // 512 large-page TLB sets
constexpr uint64_t k_n_l_assoc = 2;
constexpr uint64_t k_pg_s_bits = 12;   // 4 KiB
constexpr uint64_t k_pg_l_bits = 21;   // 2 MiB

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

[[noreturn]] void bad_value(const std::string& origin, const std::string& key, const std::string& value,
                            const std::string& expected) {
    throw_error(Errc::invalid_argument, origin,
                "bad value '" + printable(value) + "' for shell key '" + printable(key) + "' (expected " + expected + ")");
}

bool parse_bool(const std::string& origin, const std::string& key, const std::string& v) {
    if (v == "1" || v == "on" || v == "true" || v == "yes") return true;
    if (v == "0" || v == "off" || v == "false" || v == "no") return false;
    bad_value(origin, key, v, "0 or 1");
}

uint64_t parse_uint(const std::string& origin, const std::string& key, const std::string& v, uint64_t lo,
                    uint64_t hi, bool suffixes) {
    const std::string expected = std::to_string(lo) + ".." + std::to_string(hi) +
                                 (suffixes ? " bytes, optional suffix K, M, G or T" : "");
    // Decimal only: base 0 read "n_fpga_reg=010" as 8 (octal) and "0x10" as 16, neither of them documented.
    if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0]))) bad_value(origin, key, v, expected);
    errno = 0;
    char* end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (errno != 0 || end == v.c_str()) bad_value(origin, key, v, expected);
    std::string rest(end);
    if (!rest.empty()) {
        if (!suffixes) bad_value(origin, key, v, expected);
        unsigned shift = 0;
        if (rest == "K" || rest == "k" || rest == "KiB") shift = 10;
        else if (rest == "M" || rest == "m" || rest == "MiB") shift = 20;
        else if (rest == "G" || rest == "g" || rest == "GiB") shift = 30;
        else if (rest == "T" || rest == "t" || rest == "TiB") shift = 40;
        else bad_value(origin, key, v, expected);
        if (n > (std::numeric_limits<unsigned long long>::max() >> shift)) bad_value(origin, key, v, expected);
        n <<= shift;
    }
    if (n < lo || n > hi) bad_value(origin, key, v, expected);
    return n;
}

void apply_one(ShellConfig& cfg, const std::string& key, const std::string& value, const std::string& origin) {
    if (key == "avx") cfg.en_avx = parse_bool(origin, key, value);
    else if (key == "wb") cfg.en_wb = parse_bool(origin, key, value);
    else if (key == "strm") cfg.en_strm = parse_bool(origin, key, value);
    else if (key == "mem") cfg.en_mem = parse_bool(origin, key, value);
    else if (key == "pr") cfg.en_pr = parse_bool(origin, key, value);
    else if (key == "rdma") cfg.en_rdma = parse_bool(origin, key, value);
    else if (key == "tcp") cfg.en_tcp = parse_bool(origin, key, value);
    else if (key == "n_xdma_chan") cfg.n_xdma_chan = static_cast<uint32_t>(parse_uint(origin, key, value, 1, 4, false));
    else if (key == "n_fpga_reg") cfg.n_fpga_reg = static_cast<uint32_t>(parse_uint(origin, key, value, 1, 16, false));
    else if (key == "card_capacity") cfg.card_capacity = parse_uint(origin, key, value, 2ULL << 20, 1ULL << 46, true);
    else
        throw_error(Errc::invalid_argument, origin,
                    "unknown shell key '" + printable(key) +
                        "' (known: avx, wb, strm, mem, pr, rdma, tcp, n_xdma_chan, n_fpga_reg, card_capacity)");
}

/// Applies one key=value item of a text; `seen` holds the keys the text gave before (a second one is an error:
/// which of the two was meant is not ours to guess).
void apply_pair(ShellConfig& cfg, const std::string& item, const std::string& origin, std::set<std::string>& seen) {
    const std::string t = trim(item);
    if (t.empty()) return;
    const auto eq = t.find('=');
    if (eq == std::string::npos)
        throw_error(Errc::invalid_argument, origin, "expected key=value, got '" + printable(t) + "'");
    const std::string key = trim(t.substr(0, eq));
    apply_one(cfg, key, trim(t.substr(eq + 1)), origin);
    if (!seen.insert(key).second)
        throw_error(Errc::invalid_argument, origin, "key '" + printable(key) + "' is given twice");
}

}  // namespace

uint64_t ShellConfig::shell_word() const noexcept {
    return (uint64_t(en_avx) << 0) | (uint64_t(en_wb) << 1) | (uint64_t(en_strm) << 2) | (uint64_t(en_mem) << 3) |
           (uint64_t(en_pr) << 4) | (uint64_t(en_rdma) << 16) | (uint64_t(en_tcp) << 17) |
           (uint64_t(n_xdma_chan & 0xff) << 32) | (uint64_t(n_fpga_reg & 0xff) << 48);
}

uint64_t ShellConfig::control_word() const noexcept {
    return (uint64_t(en_avx) << 0) | (1ULL << 1) /* bpss */ | (1ULL << 2) /* tlbf */ | (uint64_t(en_wb) << 3) |
           (k_tlb_s_order << 4) | (k_n_s_assoc << 8) | (k_tlb_l_order << 12) | (k_n_l_assoc << 16) |
           (k_pg_s_bits << 20) | (k_pg_l_bits << 26);
}

void apply_shell_settings(ShellConfig& cfg, const std::string& settings, const std::string& origin) {
    size_t pos = 0;
    std::set<std::string> seen;
    while (pos <= settings.size()) {
        const auto comma = settings.find(',', pos);
        const auto end = comma == std::string::npos ? settings.size() : comma;
        apply_pair(cfg, settings.substr(pos, end - pos), origin, seen);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
}

void apply_shell_config_text(ShellConfig& cfg, std::string_view text, const std::string& origin) {
    size_t pos = 0;
    int lineno = 0;
    std::set<std::string> seen;
    while (pos < text.size()) {
        const auto nl = text.find('\n', pos);
        const auto end = nl == std::string_view::npos ? text.size() : nl;
        std::string line(text.substr(pos, end - pos));
        ++lineno;
        if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        apply_pair(cfg, line, origin + ":" + std::to_string(lineno), seen);
        pos = end + 1;
    }
}

std::optional<std::string> shell_settings_problem(const std::string& text, const std::string& origin) {
    return settings::problem_of([&] {
        ShellConfig probe;
        apply_shell_settings(probe, text, origin);
    });
}

void apply_shell_config_file(ShellConfig& cfg, const std::string& path) {
    constexpr std::streamoff k_max_bytes = 1 << 20; // a few dozen key=value lines in practice
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw Error(std::error_code(errno, std::generic_category()), "COYOTE_SIM_CONFIG",
                    "cannot open shell configuration file " + path);
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) // a character device: /dev/null as an empty file
        throw_error(Errc::invalid_argument, "COYOTE_SIM_CONFIG",
                    "shell configuration file " + path + " is not a regular file (" +
                        (S_ISDIR(st.st_mode) ? "a directory" : "a pipe, socket or block device") + ")");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw Error(std::error_code(errno != 0 ? errno : ENOENT, std::generic_category()), "COYOTE_SIM_CONFIG",
                    "cannot open shell configuration file " + path);
    }
    std::string text;
    char chunk[4096];
    while (static_cast<std::streamoff>(text.size()) <= k_max_bytes && in.read(chunk, sizeof chunk).gcount() > 0)
        text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (in.bad())
        throw_error(Errc::invalid_argument, "COYOTE_SIM_CONFIG", "cannot read shell configuration file " + path);
    if (static_cast<std::streamoff>(text.size()) > k_max_bytes)
        throw_error(Errc::invalid_argument, "COYOTE_SIM_CONFIG",
                    "shell configuration file " + path + " is larger than 1 MiB: not a shell configuration");
    // Text only: a binary file would otherwise reach the messages below byte for byte.
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
            throw_error(Errc::invalid_argument, "COYOTE_SIM_CONFIG",
                        "shell configuration file " + path + " is not text (control byte " + std::to_string(c) +
                            " at offset " + std::to_string(i) + ")");
    }
    apply_shell_config_text(cfg, text, "COYOTE_SIM_CONFIG " + path);
}

void check_vfid_exists(const ShellConfig& cfg, uint32_t device, int32_t vfid, const char* call) {
    if (vfid < 0 || static_cast<uint32_t>(vfid) >= cfg.n_fpga_reg)
        throw_error(Errc::no_device, call,
                    "vFPGA " + std::to_string(vfid) + " does not exist on sim device " + std::to_string(device) +
                        " (the shell has n_fpga_reg=" + std::to_string(cfg.n_fpga_reg) + ")");
}

ShellConfig load_shell_config() {
    ShellConfig cfg;
    if (const auto path = k_config_file.raw()) apply_shell_config_file(cfg, *path);
    if (const auto s = k_shell.raw()) apply_shell_settings(cfg, *s, k_shell.name());
    return cfg;
}

}  // namespace coyote::detail::sim
