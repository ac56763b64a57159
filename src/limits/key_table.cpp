#include "portcullis/limits/key_table.hpp"

namespace portcullis::limits::detail {
namespace {

// Below this many keys a shard is not worth its mutex: fewer shards are used instead.
constexpr std::size_t kMinEntriesPerShard = 256;
// Index slots per entry: the index is never more than half full, so a probe for a missing key
// expects about 2.5 slots and a hit about 1.5.
constexpr std::size_t kIndexSlotsPerEntry = 2;

}  // namespace

TableShape table_shape(const KeyTableOptions& options, std::size_t entry_bytes,
                       std::size_t shard_bytes) {
  const std::size_t per_key = entry_bytes + kIndexSlotsPerEntry * sizeof(std::uint32_t);
  std::size_t shards = 1;
  while (shards * 2 <= std::max<std::size_t>(options.shards, 1))
    shards *= 2;
  while (shards > 1 &&
         options.memory_bytes / shards < shard_bytes + kMinEntriesPerShard * per_key) {
    shards /= 2;
  }
  const std::size_t budget = options.memory_bytes / shards;
  std::size_t entries = budget > shard_bytes ? (budget - shard_bytes) / per_key : 0;
  // A shard always holds a whole batch, whatever the bound (a few KiB over a tiny bound).
  entries = std::clamp<std::size_t>(entries, kMaxBatchKeys, 0x7fff'ffff / kIndexSlotsPerEntry);
  return TableShape{shards, static_cast<std::uint32_t>(entries),
                    static_cast<std::uint32_t>(entries * kIndexSlotsPerEntry)};
}

}  // namespace portcullis::limits::detail
