// coyote-mpi: bitstream files: reading them with checks, and the sim bitstream format (encode / decode).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace coyote::detail::rcnfg {

/// Largest hw bitstream file accepted: what the driver's reconfiguration buffer holds (MAX_RECONFIG_BUFF_NUM, 128
/// huge pages of 2 MiB); a full-device .bin is tens of MiB.
inline constexpr uint64_t k_max_hw_bitstream = 128ULL * (2ULL << 20);
/// Largest sim bitstream file accepted.
inline constexpr uint64_t k_max_sim_bitstream = 64ULL << 10;
/// Longest model spec / shell settings text in a sim bitstream.
inline constexpr uint32_t k_max_sim_text = 4096;

/// Reads the whole file at `path`; throws Errc::invalid_argument naming the file when it is missing, not a
/// regular file, unreadable, empty or larger than `max_bytes`.
std::vector<char> read_file_checked(const std::string& path, uint64_t max_bytes);

/// What a sim bitstream asks for.
struct SimBitstream {
    enum class Kind : uint16_t { app = 1, shell = 2 };
    Kind kind = Kind::app;
    std::string model;          ///< built-in model name or model .so path ("" on a shell load: keep the models)
    std::string shell_settings; ///< "key=value,..." shell changes (shell loads only; "" = none)
};

/// Whether `bytes` start with the sim bitstream magic.
bool is_sim_bitstream(std::span<const char> bytes) noexcept;
/// The file image of `b`.
std::vector<char> encode_sim_bitstream(const SimBitstream& b);
/// Parses a sim bitstream; throws Errc::invalid_argument naming `origin` on a wrong magic or version,
/// truncation, trailing bytes, a bad kind or a checksum mismatch.
SimBitstream decode_sim_bitstream(std::span<const char> bytes, const std::string& origin);
/// Checks a hw bitstream (.bin): whole 32-bit words and the Xilinx sync word; throws Errc::invalid_argument.
void check_hw_bitstream(std::span<const char> bytes, const std::string& origin);

/// CRC-32 (IEEE 802.3) of `bytes`.
uint32_t crc32(std::span<const char> bytes) noexcept;

}  // namespace coyote::detail::rcnfg
