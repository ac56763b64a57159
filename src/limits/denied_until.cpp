#include "portcullis/limits/denied_until.hpp"

#include <algorithm>

namespace portcullis::limits {

std::optional<std::int64_t> DeniedUntilCache::check(std::span<const LimitKey> keys,
                                                    std::int64_t now_us) const {
  std::optional<std::int64_t> latest;
  for (const LimitKey& key : keys) {
    const auto state = table_.find(key);
    if (state && state->until > now_us) latest = std::max(latest.value_or(now_us), state->until);
  }
  return latest;
}

void DeniedUntilCache::deny(const LimitKey& key, std::int64_t until_us, std::int64_t now_us) {
  if (until_us <= now_us) return;
  table_.update(std::span<const LimitKey>(&key, 1), now_us,
                [&](std::span<KeyTable<DeniedState>::Slot> slots) {
                  if (slots[0].found && slots[0].value.until >= until_us) return;
                  slots[0].value.until = until_us;
                  slots[0].store = true;
                });
}

}  // namespace portcullis::limits
