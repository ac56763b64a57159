#pragma once
// Commands the state backend builds on: appending to a change stream (XADD, trimmed) and asking
// the server whether it persists with an append-only file (a fleet's revocations and bans must
// survive a Redis restart; the gateway warns at start when they would not).

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "portcullis/redis/reply.hpp"

namespace portcullis::redis {

using Field = std::pair<std::string, std::string>;

// XADD key MAXLEN ~ max_length * field value ...: appends an entry with an id from the server's
// clock, trimming the oldest entries (in whole nodes, hence "~") past about max_length. The reply
// is the new entry's id.
Command xadd(std::string key, std::size_t max_length, std::span<const Field> fields);

// Reads `aof_enabled:` from an INFO persistence reply; nothing when absent or malformed.
std::optional<bool> parse_aof_enabled(std::string_view info);

// The lower-case hex SHA1 by which EVALSHA names `script` (what SCRIPT LOAD answers).
std::string script_sha1(std::string_view script);

// Stream ids ("1700000000000-0") compared as (milliseconds, sequence): <0, 0, >0. Malformed ids
// compare as 0-0.
int compare_stream_ids(std::string_view a, std::string_view b);

}  // namespace portcullis::redis
