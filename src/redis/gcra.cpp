#include "portcullis/redis/gcra.hpp"

#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/connection.hpp"

namespace portcullis::redis {

// Numbers are Lua doubles: microseconds since the epoch (about 1.7e15) are exact below 2^53.
// They are written with %.0f, since tostring() would round them to 14 digits.
const std::string_view kGcraScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local n = #KEYS
local t0s, new_tats, passes, granted = {}, {}, {}, {}
local allowed = true
for i = 1, n do
  local T = tonumber(ARGV[3 * i - 2])
  local tau = tonumber(ARGV[3 * i - 1])
  local k = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  local t0 = math.max(tat, now)
  -- A lease (k > 1) that does not fit shrinks to the one request that asked.
  if k > 1 and (t0 + k * T - now) > (tau + T) then k = 1 end
  local new_tat = t0 + k * T
  t0s[i], new_tats[i], granted[i] = t0, new_tat, k
  passes[i] = (new_tat - now) <= (tau + T)
  if not passes[i] then allowed = false end
end
local out = {allowed and 1 or 0}
for i = 1, n do
  local T = tonumber(ARGV[3 * i - 2])
  local tau = tonumber(ARGV[3 * i - 1])
  local d
  if allowed then
    d = new_tats[i] - now
    redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]),
               'PX', string.format('%.0f', math.max(1, math.ceil(d / 1000))))
  else
    d = t0s[i] - now
  end
  local retry = 0
  if not passes[i] then retry = new_tats[i] - now - (tau + T) end
  local remaining = math.max(0, math.floor((tau + T - d) / T))
  out[#out + 1] = passes[i] and 1 or 0
  out[#out + 1] = (allowed and granted[i]) or 0
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = d
end
return out
)lua";

const std::string& gcra_script_sha1() {
  static const std::string hex = script_sha1(kGcraScript);
  return hex;
}

Command gcra_command(std::span<const GcraLimit> limits) {
  Command command;
  command.reserve(3 + limits.size() * 4);
  command.emplace_back("EVALSHA");
  command.push_back(gcra_script_sha1());
  command.push_back(std::to_string(limits.size()));
  for (const auto& limit : limits)
    command.push_back(limit.key);
  for (const auto& limit : limits) {
    command.push_back(std::to_string(limit.emission_interval_us));
    command.push_back(std::to_string(limit.burst_tolerance_us));
    command.push_back(std::to_string(limit.quantity));
  }
  return command;
}

// Per limit: passed, granted, remaining, retry_after_us, reset_us.
constexpr std::size_t kFields = 5;

void read_gcra_reply(const Reply& reply, std::size_t limit_count, GcraDecision& decision) {
  decision.status = reply.status;
  decision.limits.clear();
  if (reply.status != Status::ok) return;
  if (reply.value.is_error()) {
    decision.error = reply.value.string;
    return;
  }
  const auto& values = reply.value.elements;
  const bool shaped = reply.value.is_array() && values.size() == 1 + kFields * limit_count &&
                      std::all_of(values.begin(), values.end(), [](const Value& value) {
                        return value.type == Value::Type::integer;
                      });
  if (!shaped) {
    decision.status = Status::protocol;
    return;
  }
  decision.allowed = values[0].integer == 1;
  for (std::size_t i = 0; i < limit_count; ++i) {
    const auto* base = &values[1 + kFields * i];
    decision.limits.push_back(GcraOutcome{base[0].integer == 1, base[1].integer, base[2].integer,
                                          base[3].integer, base[4].integer});
  }
}

boost::asio::awaitable<GcraDecision> gcra_decide(Connection& connection,
                                                 std::span<const GcraLimit> limits) {
  GcraDecision decision;
  for (const auto& limit : limits) {
    if (limit.emission_interval_us <= 0 || limit.burst_tolerance_us < 0 || limit.quantity < 1) {
      decision.status = Status::ok;
      decision.error = "invalid limit for " + limit.key;
      co_return decision;
    }
  }
  if (limits.empty()) {
    decision.status = Status::ok;
    decision.allowed = true;
    co_return decision;
  }
  auto reply = co_await connection.execute(gcra_command(limits));
  if (reply.is_error("NOSCRIPT")) {
    const auto loaded = co_await connection.execute(make_command("SCRIPT", "LOAD", kGcraScript));
    if (!loaded.ok()) {
      decision.status = loaded.status;
      if (loaded.status == Status::ok) decision.error = loaded.value.string;
      co_return decision;
    }
    reply = co_await connection.execute(gcra_command(limits));
  }
  read_gcra_reply(reply, limits.size(), decision);
  co_return decision;
}

}  // namespace portcullis::redis
