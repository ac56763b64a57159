#pragma once
// A bounded table of per-client state shared by all worker threads: rate-limit TATs, login
// failure counts, "denied until" times. Sharded by key hash with one small mutex per shard; no
// operation takes a process-wide lock.
//
// Memory: the bound given at construction is divided among the shards, and each shard allocates
// its arrays for exactly the number of keys that fit (entries plus an open-addressing index at
// most half full), so the table never holds more bytes than memory_bytes() whatever the traffic.
// The arrays come from calloc/malloc untouched, so resident memory grows with the keys tracked.
// The index in use is a prefix of its array that starts at kInitialIndexSlots and doubles as keys
// arrive (never more than half full), so a table holding few keys touches few cache lines and
// pages per lookup however large its bound.
// A shard that is full evicts before it inserts: among its kEvictScan least recently used keys
// the first idle one (Value::idle_after() <= now: GCRA treats such a key as fresh, so dropping it
// changes no decision), else the least recently used key (counted as an active eviction: a sign
// that the bound is too small for the traffic).
//
// Value: a trivially copyable type with `std::int64_t idle_after() const` (microseconds).

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "portcullis/limits/limit_key.hpp"

namespace portcullis::limits {

struct KeyTableOptions {
  std::size_t memory_bytes = std::size_t{64} << 20;  // state.local_memory
  std::size_t shards = 64;  // rounded down to a power of two; fewer if each would be tiny
};

// At most this many keys per batch update (one request's limits).
inline constexpr std::size_t kMaxBatchKeys = 16;
// A full shard looks this far from its least recently used end for an idle key to evict.
inline constexpr std::size_t kEvictScan = 8;
// Index slots a shard starts with (its whole index if that is smaller).
inline constexpr std::uint32_t kInitialIndexSlots = 64;

struct KeyTableStats {
  std::size_t size = 0;              // keys held
  std::size_t capacity = 0;          // keys that fit
  std::size_t memory_bytes = 0;      // bytes allocated (the bound, rounded down)
  std::uint64_t evictions_idle = 0;  // idle keys dropped to make room
  std::uint64_t evictions_active = 0;
};

namespace detail {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Entries per shard and the number of shards for a memory bound and an entry size.
struct TableShape {
  std::size_t shards;
  std::uint32_t entries_per_shard;
  std::uint32_t index_per_shard;
};
TableShape table_shape(const KeyTableOptions& options, std::size_t entry_bytes,
                       std::size_t shard_bytes);

}  // namespace detail

template <typename Value>
class KeyTable {
  static_assert(std::is_trivially_copyable_v<Value>);

 public:
  // One key of a batch update: what is stored (found, value) and what to store back.
  struct Slot {
    bool found = false;  // false: never seen or evicted; `value` is then Value{}
    bool store = false;  // set by the caller's decision to write `value` back
    Value value{};
  };

  explicit KeyTable(const KeyTableOptions& options = {}) {
    const auto shape = detail::table_shape(options, sizeof(Entry), sizeof(Shard));
    shard_mask_ = shape.shards - 1;
    shards_ = std::make_unique<Shard[]>(shape.shards);
    shard_count_ = shape.shards;
    for (std::size_t i = 0; i < shape.shards; ++i) {
      shards_[i].init(shape.entries_per_shard, shape.index_per_shard);
    }
  }
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  // The stored value, if any (idle or not). Does not count as a use for eviction order.
  std::optional<Value> find(const LimitKey& key) const {
    const std::uint64_t hash = hash_key(key);
    const Shard& shard = shard_for(hash);
    std::lock_guard lock(shard.mutex);
    const std::uint32_t at = shard.find(key, upper(hash));
    if (at == kNil) return std::nullopt;
    return shard.entries[at].value;
  }

  // Stores `value` under `key` (inserting, and evicting first if the shard is full).
  void store(const LimitKey& key, const Value& value, std::int64_t now_us) {
    const std::uint64_t hash = hash_key(key);
    Shard& shard = shard_for(hash);
    std::lock_guard lock(shard.mutex);
    insert_or_assign(shard, key, upper(hash), value, now_us);
  }

  bool erase(const LimitKey& key) {
    const std::uint64_t hash = hash_key(key);
    Shard& shard = shard_for(hash);
    std::lock_guard lock(shard.mutex);
    const std::uint32_t at = shard.find(key, upper(hash));
    if (at == kNil) return false;
    shard.remove(at);
    return true;
  }

  // Reads the values of `keys` (at most kMaxBatchKeys) under their shards' locks, calls
  // `decide(std::span<Slot>)`, and writes back every slot the decision marked `store`, all
  // before any lock is released: an all-or-nothing decision over several keys is atomic.
  // Shards are locked in index order, so concurrent batches never deadlock. A key that is not
  // stored back commits no memory. Keys should be distinct (a repeated key is read twice and
  // written by its last slot).
  // `keys` is any indexable sequence of LimitKey with size() (a std::span, or a view over the
  // caller's own records).
  template <typename Keys, typename Decide>
  void update(const Keys& keys, std::int64_t now_us, Decide&& decide) {
    assert(keys.size() <= kMaxBatchKeys);
    const std::size_t n = std::min(keys.size(), kMaxBatchKeys);
    // Scratch for n keys; only the first n elements are written or read.
    std::array<Slot, kMaxBatchKeys> slots;
    std::array<std::uint32_t, kMaxBatchKeys> hashes;
    std::array<std::uint32_t, kMaxBatchKeys> found_at;
    std::array<std::size_t, kMaxBatchKeys> shard_of;
    std::array<std::size_t, kMaxBatchKeys> locked;
    std::size_t locked_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t hash = hash_key(keys[i]);
      hashes[i] = upper(hash);
      const std::size_t shard = hash & shard_mask_;
      shard_of[i] = shard;
      if (std::find(locked.begin(), locked.begin() + locked_count, shard) ==
          locked.begin() + locked_count) {
        locked[locked_count++] = shard;
      }
    }
    std::sort(locked.begin(), locked.begin() + locked_count);
    for (std::size_t i = 0; i < locked_count; ++i)
      shards_[locked[i]].mutex.lock();
    // Released in reverse order on every way out, a throwing `decide` included.
    struct Unlock {
      Shard* shards;
      const std::size_t* order;
      std::size_t count;
      ~Unlock() {
        for (std::size_t i = count; i-- > 0;)
          shards[order[i]].mutex.unlock();
      }
    } const unlock{shards_.get(), locked.data(), locked_count};
    for (std::size_t i = 0; i < n; ++i) {
      const Shard& shard = shards_[shard_of[i]];
      found_at[i] = shard.find(keys[i], hashes[i]);
      if (found_at[i] != kNil) {
        slots[i].found = true;
        slots[i].value = shard.entries[found_at[i]].value;
      }
    }
    decide(std::span<Slot>(slots.data(), n));
    // Found entries first (their positions are still valid), then inserts, which may evict and
    // move entries.
    for (std::size_t i = 0; i < n; ++i) {
      if (!slots[i].store || found_at[i] == kNil) continue;
      Shard& shard = shards_[shard_of[i]];
      shard.entries[found_at[i]].value = slots[i].value;
      shard.touch(found_at[i]);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!slots[i].store || found_at[i] != kNil) continue;
      insert_or_assign(shards_[shard_of[i]], keys[i], hashes[i], slots[i].value, now_us);
    }
  }

  KeyTableStats stats() const {
    KeyTableStats stats;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mutex);
      stats.size += shards_[i].size;
      stats.capacity += shards_[i].capacity;
      stats.memory_bytes += shards_[i].bytes();
    }
    stats.evictions_idle = evictions_idle_.load(std::memory_order_relaxed);
    stats.evictions_active = evictions_active_.load(std::memory_order_relaxed);
    return stats;
  }
  std::size_t size() const { return stats().size; }
  std::size_t shard_count() const { return shard_count_; }
  // Bytes the table reserves per key it can hold (entry, index slots, shard overhead).
  double bytes_per_key() const {
    const auto s = stats();
    return s.capacity == 0 ? 0.0 : static_cast<double>(s.memory_bytes) / s.capacity;
  }

 private:
  static constexpr std::uint32_t kNil = 0xffff'ffff;

  struct Entry {
    LimitKey key;
    std::uint32_t hash;  // upper 32 bits of hash_key: the index position, kept for moves
    std::uint32_t prev;  // towards the most recently used
    std::uint32_t next;  // towards the least recently used
    Value value;
  };

  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::unique_ptr<Entry[], detail::FreeDeleter> entries;
    // Open addressing with linear probing: 0 = empty, otherwise an entry position + 1.
    std::unique_ptr<std::uint32_t[], detail::FreeDeleter> index;
    std::uint32_t capacity = 0;
    std::uint32_t index_size = 0;  // slots allocated
    std::uint32_t active = 0;      // slots in use: index[0, active), doubled as keys arrive
    std::uint32_t size = 0;
    std::uint32_t head = kNil;  // most recently used
    std::uint32_t tail = kNil;  // least recently used

    void init(std::uint32_t entry_count, std::uint32_t index_count) {
      // malloc/calloc rather than new[]: no constructor writes, so pages become resident only
      // when a key lands on them.
      entries.reset(static_cast<Entry*>(std::malloc(sizeof(Entry) * entry_count)));
      index.reset(static_cast<std::uint32_t*>(std::calloc(index_count, sizeof(std::uint32_t))));
      if (!entries || !index) throw std::bad_alloc();
      capacity = entry_count;
      index_size = index_count;
      active = std::min(index_count, kInitialIndexSlots);
    }
    std::size_t bytes() const {
      return sizeof(Shard) + sizeof(Entry) * capacity + sizeof(std::uint32_t) * index_size;
    }
    std::uint32_t home(std::uint32_t hash) const {
      return static_cast<std::uint32_t>((std::uint64_t{hash} * active) >> 32);
    }
    std::uint32_t step(std::uint32_t pos) const { return pos + 1 == active ? 0 : pos + 1; }

    // Before an insert: keeps the index in use at most half full by doubling it (up to the
    // whole array) and placing every entry again. Returns whether it grew (positions moved).
    // At the whole array it is at most half full by construction (two slots per entry).
    bool grow_for_one_more() {
      if (std::uint64_t{size + 1} * 2 <= active || active == index_size) return false;
      active = static_cast<std::uint32_t>(
          std::min<std::uint64_t>(std::uint64_t{active} * 2, index_size));
      std::fill(index.get(), index.get() + active, 0u);
      for (std::uint32_t at = 0; at < size; ++at) {
        std::uint32_t pos = home(entries[at].hash);
        while (index[pos] != 0)
          pos = step(pos);
        index[pos] = at + 1;
      }
      return true;
    }

    // The index position holding `key`, or the empty position where it would go.
    std::uint32_t probe(const LimitKey& key, std::uint32_t hash, bool& found) const {
      for (std::uint32_t pos = home(hash);; pos = step(pos)) {
        const std::uint32_t slot = index[pos];
        if (slot == 0) {
          found = false;
          return pos;
        }
        const Entry& entry = entries[slot - 1];
        if (entry.hash == hash && entry.key == key) {
          found = true;
          return pos;
        }
      }
    }
    std::uint32_t find(const LimitKey& key, std::uint32_t hash) const {
      bool found = false;
      const std::uint32_t pos = probe(key, hash, found);
      return found ? index[pos] - 1 : kNil;
    }

    void unlink(std::uint32_t at) {
      Entry& e = entries[at];
      if (e.prev != kNil)
        entries[e.prev].next = e.next;
      else
        head = e.next;
      if (e.next != kNil)
        entries[e.next].prev = e.prev;
      else
        tail = e.prev;
    }
    void push_front(std::uint32_t at) {
      Entry& e = entries[at];
      e.prev = kNil;
      e.next = head;
      if (head != kNil)
        entries[head].prev = at;
      else
        tail = at;
      head = at;
    }
    void touch(std::uint32_t at) {
      if (head == at) return;
      unlink(at);
      push_front(at);
    }

    // Removes entry `at`: LRU unlink, backward-shift deletion in the index (no tombstones), and
    // the last entry moved into the hole so the entries stay dense.
    void remove(std::uint32_t at) {
      unlink(at);
      bool found = false;
      std::uint32_t hole = probe(entries[at].key, entries[at].hash, found);
      assert(found);
      for (std::uint32_t pos = step(hole);; pos = step(pos)) {
        const std::uint32_t slot = index[pos];
        if (slot == 0) break;
        const std::uint32_t want = home(entries[slot - 1].hash);
        // The entry at pos may fill the hole unless its home lies cyclically in (hole, pos].
        const bool stays =
            hole <= pos ? (hole < want && want <= pos) : (hole < want || want <= pos);
        if (stays) continue;
        index[hole] = slot;
        hole = pos;
      }
      index[hole] = 0;
      const std::uint32_t last = size - 1;
      if (at != last) {
        const Entry& moved = entries[last];
        bool moved_found = false;
        const std::uint32_t pos = probe(moved.key, moved.hash, moved_found);
        assert(moved_found);
        index[pos] = at + 1;
        entries[at] = moved;
        if (moved.prev != kNil)
          entries[moved.prev].next = at;
        else
          head = at;
        if (moved.next != kNil)
          entries[moved.next].prev = at;
        else
          tail = at;
      }
      --size;
    }
  };

  static std::uint32_t upper(std::uint64_t hash) { return static_cast<std::uint32_t>(hash >> 32); }
  Shard& shard_for(std::uint64_t hash) { return shards_[hash & shard_mask_]; }
  const Shard& shard_for(std::uint64_t hash) const { return shards_[hash & shard_mask_]; }

  void insert_or_assign(Shard& shard, const LimitKey& key, std::uint32_t hash, const Value& value,
                        std::int64_t now_us) {
    bool found = false;
    std::uint32_t pos = shard.probe(key, hash, found);
    if (found) {
      const std::uint32_t at = shard.index[pos] - 1;
      shard.entries[at].value = value;
      shard.touch(at);
      return;
    }
    if (shard.size == shard.capacity) {
      evict_one(shard, now_us);
      pos = shard.probe(key, hash, found);  // the deletion may have shifted the probe chain
    } else if (shard.grow_for_one_more()) {
      pos = shard.probe(key, hash, found);  // every entry was placed again
    }
    const std::uint32_t at = shard.size++;
    Entry& entry = shard.entries[at];
    entry.key = key;
    entry.hash = hash;
    entry.value = value;
    shard.index[pos] = at + 1;
    shard.push_front(at);
  }

  void evict_one(Shard& shard, std::int64_t now_us) {
    std::uint32_t victim = shard.tail;
    std::uint32_t at = shard.tail;
    bool idle = false;
    for (std::size_t i = 0; i < kEvictScan && at != kNil; ++i, at = shard.entries[at].prev) {
      if (shard.entries[at].value.idle_after() <= now_us) {
        victim = at;
        idle = true;
        break;
      }
    }
    (idle ? evictions_idle_ : evictions_active_).fetch_add(1, std::memory_order_relaxed);
    shard.remove(victim);
  }

  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_ = 0;
  std::uint64_t shard_mask_ = 0;
  std::atomic<std::uint64_t> evictions_idle_{0};
  std::atomic<std::uint64_t> evictions_active_{0};
};

}  // namespace portcullis::limits
