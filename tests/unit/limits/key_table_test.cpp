#include "portcullis/limits/key_table.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include "portcullis/limits/local_limiter.hpp"

namespace portcullis::limits {
namespace {

LimitKey v4_key(std::uint32_t limit, std::uint32_t address) {
  return LimitKey::ip(limit, core::IpAddress::from_v4(address));
}

// Resident memory of this process in bytes (Linux).
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

TEST(LimitKey, Ipv6ClientsAreKeyedByTheirSlash64) {
  const auto a = *core::IpAddress::parse("2001:db8:1:2::1");
  const auto b = *core::IpAddress::parse("2001:db8:1:2:ffff:ffff:ffff:ffff");
  const auto c = *core::IpAddress::parse("2001:db8:1:3::1");
  EXPECT_EQ(LimitKey::ip(0, a), LimitKey::ip(0, b));
  EXPECT_NE(LimitKey::ip(0, a), LimitKey::ip(0, c));
  EXPECT_NE(LimitKey::ip(0, a), LimitKey::ip(1, a));
  // IPv4 keeps the whole address, and v4-mapped IPv6 is the same client.
  EXPECT_NE(v4_key(0, 0x0a000001), v4_key(0, 0x0a000002));
  EXPECT_EQ(LimitKey::ip(0, *core::IpAddress::parse("::ffff:10.0.0.1")), v4_key(0, 0x0a000001));
}

TEST(LimitKey, SubjectsAreHashedAndCapped) {
  const auto alice = LimitKey::subject(3, "alice");
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice, LimitKey::subject(3, "alice"));
  EXPECT_NE(alice, LimitKey::subject(3, "alicf"));
  EXPECT_NE(alice, LimitKey::subject(4, "alice"));
  EXPECT_TRUE(LimitKey::subject(3, std::string(kMaxSubjectBytes, 'x')));
  EXPECT_FALSE(LimitKey::subject(3, std::string(kMaxSubjectBytes + 1, 'x')));
  // A subject never equals an IP key of the same limit number.
  LimitKey ip_like = *alice;
  ip_like.limit = 3;
  EXPECT_NE(alice, ip_like);
}

TEST(LimitKey, SipHashMatchesTheReferenceVectors) {
  // From the SipHash paper's test vectors: key 00 01 .. 0f, messages 00 01 .. (n-1).
  const std::uint64_t k0 = 0x0706050403020100ULL;
  const std::uint64_t k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string message;
  EXPECT_EQ(siphash24(k0, k1, message), 0x726fdb47dd0e0e31ULL);
  for (int i = 0; i < 15; ++i)
    message.push_back(static_cast<char>(i));
  EXPECT_EQ(siphash24(k0, k1, message), 0xa129ca6149be45e5ULL);
}

TEST(KeyTable, StoresFindsAndErasesLikeAMap) {
  // Large enough that nothing is evicted: the table must agree with a map exactly, through
  // many deletions (backward shifts and moved entries).
  KeyTable<RateState> table({std::size_t{4} << 20, 4});
  std::map<std::uint32_t, std::int64_t> model;
  std::mt19937 random(7);
  for (int step = 0; step < 200'000; ++step) {
    const std::uint32_t address = random() % 20'000;
    const LimitKey key = v4_key(1, address);
    switch (random() % 3) {
      case 0: {
        const std::int64_t value = random();
        table.store(key, RateState{value}, 0);
        model[address] = value;
        break;
      }
      case 1:
        EXPECT_EQ(table.erase(key), model.erase(address) == 1);
        break;
      default: {
        const auto found = table.find(key);
        const auto it = model.find(address);
        ASSERT_EQ(found.has_value(), it != model.end()) << step;
        if (found) {
          ASSERT_EQ(found->tat, it->second) << step;
        }
      }
    }
  }
  EXPECT_EQ(table.size(), model.size());
  EXPECT_EQ(table.stats().evictions_idle + table.stats().evictions_active, 0u);
}

TEST(KeyTable, EvictsIdleKeysFirstThenTheLeastRecentlyUsed) {
  KeyTable<RateState> table({0, 1});  // the smallest table: one shard of kMaxBatchKeys keys
  const auto stats = table.stats();
  ASSERT_EQ(stats.capacity, kMaxBatchKeys);
  const std::int64_t now = 1'000'000;
  table.store(v4_key(0, 0), RateState{now + 500}, now);  // active, least recently used
  for (std::uint32_t i = 1; i < kMaxBatchKeys; ++i)
    table.store(v4_key(0, i), RateState{now}, now);
  table.store(v4_key(0, 100), RateState{now + 500}, now);
  EXPECT_TRUE(table.find(v4_key(0, 0)));   // the active key survived
  EXPECT_FALSE(table.find(v4_key(0, 1)));  // the oldest idle key went
  EXPECT_EQ(table.stats().evictions_idle, 1u);

  // All active: the least recently used goes (and is counted as such).
  KeyTable<RateState> busy({0, 1});
  for (std::uint32_t i = 0; i < kMaxBatchKeys; ++i)
    busy.store(v4_key(0, i), RateState{now + 9}, now);
  busy.store(v4_key(0, 0), RateState{now + 10}, now);  // a use: 1 is now the oldest
  busy.store(v4_key(0, 200), RateState{now + 9}, now);
  EXPECT_TRUE(busy.find(v4_key(0, 0)));
  EXPECT_FALSE(busy.find(v4_key(0, 1)));
  EXPECT_EQ(busy.stats().evictions_active, 1u);
  EXPECT_EQ(busy.size(), kMaxBatchKeys);
}

TEST(KeyTable, EvictionFollowsTheDocumentedOrderAgainstAModel) {
  // One shard of kMaxBatchKeys keys against a list kept in use order: a store is a use, a find
  // is not; a full shard drops the first idle key among the kEvictScan least recently used,
  // else the least recently used.
  KeyTable<RateState> table({0, 1});
  std::vector<std::pair<std::uint32_t, std::int64_t>> model;  // front = most recently used
  std::mt19937 random(3);
  std::int64_t now = 1000;
  const auto position = [&](std::uint32_t address) {
    return std::find_if(model.begin(), model.end(),
                        [&](const auto& entry) { return entry.first == address; });
  };
  for (int step = 0; step < 100'000; ++step) {
    now += random() % 3;
    const std::uint32_t address = random() % 40;
    const LimitKey key = v4_key(0, address);
    const int op = random() % 10;
    if (op < 6) {
      const std::int64_t value = now + static_cast<std::int64_t>(random() % 40) - 20;
      auto it = position(address);
      if (it != model.end()) {
        model.erase(it);
      } else if (model.size() == kMaxBatchKeys) {
        auto victim = std::prev(model.end());
        auto scan = model.rbegin();
        for (std::size_t i = 0; i < kEvictScan; ++i, ++scan) {
          if (scan->second <= now) {
            victim = std::prev(scan.base());
            break;
          }
        }
        model.erase(victim);
      }
      model.insert(model.begin(), {address, value});
      if (op < 3) {
        table.store(key, RateState{value}, now);
      } else {
        // The same through a batch update.
        table.update(std::span<const LimitKey>(&key, 1), now,
                     [&](std::span<KeyTable<RateState>::Slot> slots) {
                       slots[0].value.tat = value;
                       slots[0].store = true;
                     });
      }
    } else if (op < 7) {
      const auto it = position(address);
      EXPECT_EQ(table.erase(key), it != model.end());
      if (it != model.end()) model.erase(it);
    } else {
      const auto found = table.find(key);
      const auto it = position(address);
      ASSERT_EQ(found.has_value(), it != model.end()) << step;
      if (found) {
        ASSERT_EQ(found->tat, it->second) << step;
      }
    }
  }
  EXPECT_EQ(table.size(), model.size());
}

TEST(KeyTable, AMillionDistinctClientsStayWithinTheMemoryBound) {
  constexpr std::size_t kBound = std::size_t{16} << 20;
  const std::size_t rss_before = resident_bytes();
  LocalLimiter limiter({kBound, 64});
  const GcraLimit limit = GcraLimit::make(10, std::chrono::seconds(1), 20);
  std::int64_t now = 3'600'000'000;
  std::size_t allowed = 0;
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    const LimitRequest request{v4_key(0, 0x01000000 + i), limit};
    allowed += limiter.decide(std::span(&request, 1), now).allowed;
    now += 10;  // 10 s in all: the earliest keys turn idle (their TAT is 100 ms ahead)
  }
  EXPECT_EQ(allowed, 1'000'000u);  // each a fresh client
  const KeyTableStats stats = limiter.stats();
  EXPECT_LE(stats.memory_bytes, kBound);
  EXPECT_GE(stats.memory_bytes, kBound * 9 / 10);
  EXPECT_LE(stats.size, stats.capacity);
  EXPECT_EQ(stats.size + stats.evictions_idle + stats.evictions_active, 1'000'000u);
  EXPECT_GT(stats.evictions_idle, 0u);
  const double per_key = static_cast<double>(stats.memory_bytes) / stats.capacity;
  EXPECT_LE(per_key, 56.0);
  const std::size_t rss_growth = resident_bytes() - rss_before;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr std::size_t kSlack = kBound / 2;  // shadow memory: an eighth or more on top
#else
  constexpr std::size_t kSlack = std::size_t{2} << 20;
#endif
  EXPECT_LE(rss_growth, kBound + kSlack);
  std::cout << "keys held " << stats.size << " of " << stats.capacity << ", " << per_key
            << " bytes per key reserved, resident growth " << (rss_growth >> 10) << " KiB for a "
            << (kBound >> 10) << " KiB bound, evicted idle " << stats.evictions_idle << " active "
            << stats.evictions_active << "\n";
}

TEST(KeyTable, AFewKeysInALargeTableTouchAFewPages) {
  // The index in use grows with the keys: 2,000 keys in a 64 MiB table stay on the first pages
  // of each shard's arrays instead of one page of the index per key. The arrays must come
  // untouched from mmap, as at start-up: earlier tests' large frees raise glibc's threshold.
  mallopt(M_MMAP_THRESHOLD, 128 << 10);
  const std::size_t rss_before = resident_bytes();
  KeyTable<RateState> table({std::size_t{64} << 20, 64});
  for (std::uint32_t i = 0; i < 2'000; ++i)
    table.store(v4_key(0, 0x0a000000 + i), RateState{i}, 0);
  for (std::uint32_t i = 0; i < 2'000; ++i) {
    const auto found = table.find(v4_key(0, 0x0a000000 + i));
    ASSERT_TRUE(found.has_value());
    ASSERT_EQ(found->tat, i);
  }
  const std::size_t rss_growth = resident_bytes() - rss_before;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LE(rss_growth, std::size_t{2} << 20);
#endif
  std::cout << "2,000 keys in a 64 MiB table: resident growth " << (rss_growth >> 10) << " KiB\n";
}

TEST(KeyTable, ShardCountShrinksForSmallBounds) {
  KeyTable<RateState> small({64 << 10, 64});
  EXPECT_LT(small.shard_count(), 64u);
  EXPECT_LE(small.stats().memory_bytes, std::size_t{64} << 10);
  KeyTable<RateState> large({std::size_t{64} << 20, 64});
  EXPECT_EQ(large.shard_count(), 64u);
  KeyTable<RateState> odd({std::size_t{64} << 20, 48});
  EXPECT_EQ(odd.shard_count(), 32u);
}

}  // namespace
}  // namespace portcullis::limits
