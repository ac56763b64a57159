#include "portcullis/redis/commands.hpp"

#include <openssl/evp.h>

#include <charconv>
#include <cstdint>

namespace portcullis::redis {

Command xadd(std::string key, std::size_t max_length, std::span<const Field> fields) {
  Command command;
  command.reserve(6 + 2 * fields.size());
  command.emplace_back("XADD");
  command.push_back(std::move(key));
  command.emplace_back("MAXLEN");
  command.emplace_back("~");
  command.push_back(std::to_string(max_length));
  command.emplace_back("*");
  for (const auto& [field, value] : fields) {
    command.push_back(field);
    command.push_back(value);
  }
  return command;
}

std::optional<bool> parse_aof_enabled(std::string_view info) {
  constexpr std::string_view kField = "aof_enabled:";
  std::size_t at = 0;
  while (at < info.size()) {
    auto end = info.find('\n', at);
    if (end == std::string_view::npos) end = info.size();
    auto line = info.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with(kField)) {
      const auto value = line.substr(kField.size());
      if (value == "1") return true;
      if (value == "0") return false;
      return std::nullopt;
    }
    at = end + 1;
  }
  return std::nullopt;
}

namespace {

std::pair<std::uint64_t, std::uint64_t> split_id(std::string_view id) {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  const auto dash = id.find('-');
  const auto head = id.substr(0, dash);
  const auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), ms);
  if (ec != std::errc() || end != head.data() + head.size()) return {0, 0};
  if (dash != std::string_view::npos) {
    const auto tail = id.substr(dash + 1);
    const auto [tail_end, tail_ec] = std::from_chars(tail.data(), tail.data() + tail.size(), seq);
    if (tail_ec != std::errc() || tail_end != tail.data() + tail.size()) return {0, 0};
  }
  return {ms, seq};
}

}  // namespace

std::string script_sha1(std::string_view script) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(script.data(), script.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    text += kDigits[digest[i] >> 4];
    text += kDigits[digest[i] & 15];
  }
  return text;
}

int compare_stream_ids(std::string_view a, std::string_view b) {
  const auto left = split_id(a);
  const auto right = split_id(b);
  return left < right ? -1 : (right < left ? 1 : 0);
}

}  // namespace portcullis::redis
