#pragma once
// How the redis state backend writes records into Redis keys, values and change-stream entries,
// and reads them back. Internal to the backend (and its tests through state_backend.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "portcullis/redis/commands.hpp"
#include "portcullis/state/records.hpp"

namespace portcullis::redis::codec {

inline constexpr std::string_view kRevocations = "rev:";
inline constexpr std::string_view kCutoffs = "cut:";
inline constexpr std::string_view kBans = "ban:";
inline constexpr std::string_view kChanges = "changes";

// The write script (see state_backend.hpp) and its SHA1 for EVALSHA.
extern const std::string_view kWriteScript;
const std::string& write_script_sha1();

// "<len(first)>:<first>:<second>": unambiguous whatever bytes the two hold.
std::string pair_suffix(std::string_view first, std::string_view second);
std::optional<std::pair<std::string, std::string>> parse_pair_suffix(std::string_view suffix);

// A decimal int64 and nothing else.
std::optional<std::int64_t> parse_int(std::string_view text);

// A ban's value: "<until>:<reason>".
std::string ban_value(const state::Ban& ban);
// The ban stored under `ip_text` (the part of the key after "ban:") with `value`.
std::optional<state::Ban> parse_ban(std::string_view ip_text, std::string_view value);

// A SCAN MATCH pattern matching exactly the keys that start with `prefix`.
std::string glob_prefix(std::string_view prefix);

struct Unban {
  core::IpAddress ip;
};
using Change = std::variant<state::Revocation, state::SubjectCutoff, state::Ban, Unban>;

// The fields of a change-stream entry, and back.
std::vector<Field> change_fields(const Change& change);
std::optional<Change> parse_change(const std::vector<Field>& fields);

}  // namespace portcullis::redis::codec
