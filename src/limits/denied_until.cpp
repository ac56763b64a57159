#include "portcullis/limits/denied_until.hpp"

namespace portcullis::limits {

std::optional<DeniedHit> DeniedUntilCache::check(std::span<const LimitKey> keys,
                                                 std::int64_t now_us) const {
  std::optional<DeniedHit> latest;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto state = table_.find(keys[i]);
    if (state && state->until > now_us && (!latest || state->until > latest->until))
      latest = DeniedHit{state->until, i};
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
