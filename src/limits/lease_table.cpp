#include "portcullis/limits/lease_table.hpp"

#include <algorithm>

namespace portcullis::limits {
namespace {

// An ask whose answer never came (the backend stopped mid-call) stops blocking leases after this.
constexpr std::int64_t kAskTimeoutMicros = 1'000'000;
// A key's demand record outlives its lease by a few lifetimes, so a steady client ramps once.
constexpr std::int64_t kForgetLifetimes = 4;

}  // namespace

LeaseTerms lease_terms(std::int64_t emission_us, std::int64_t burst) {
  if (emission_us <= 0) return {};
  const std::int64_t slice = std::min(kLeaseWindowMicros / emission_us, burst / 4);
  if (slice < 2) return {};
  return {slice, slice * emission_us};
}

LeaseTable::LeaseTable(const LeaseTableOptions& options) {
  const std::size_t shards = std::max<std::size_t>(1, options.shards);
  per_shard_ = std::max<std::size_t>(1, options.max_entries / shards);
  for (std::size_t i = 0; i < shards; ++i)
    shards_.push_back(std::make_unique<Shard>());
}

LeaseTable::Shard& LeaseTable::shard_of(std::string_view key) {
  return *shards_[Hash{}(key) % shards_.size()];
}

LeaseTable::Entry* LeaseTable::find_or_add(Shard& shard, std::string_view key,
                                           std::int64_t now_us) {
  if (const auto found = shard.entries.find(key); found != shard.entries.end())
    return &found->second;
  if (shard.entries.size() >= per_shard_) {
    // At most one sweep per lease window: a shard full of live keys is not scanned per request.
    if (now_us < shard.next_sweep_us) return nullptr;
    shard.next_sweep_us = now_us + kLeaseWindowMicros;
    std::erase_if(shard.entries, [now_us](const auto& item) {
      const Entry& entry = item.second;
      return entry.forget_after_us <= now_us &&
             !(entry.asking && now_us - entry.asked_us < kAskTimeoutMicros);
    });
    if (shard.entries.size() >= per_shard_) return nullptr;
  }
  return &shard.entries.emplace(std::string(key), Entry{}).first->second;
}

bool LeaseTable::take(std::string_view key, std::int64_t now_us, Taken* taken,
                      const LeaseTerms* terms) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.entries.find(key);
  if (found == shard.entries.end()) return false;
  Entry& entry = found->second;
  if (entry.tokens <= 0 || now_us >= entry.expires_us) return false;
  --entry.tokens;
  ++entry.used;
  if (!taken) return true;
  taken->remaining = entry.remaining + entry.tokens;
  taken->refill = 0;
  if (!terms || !terms->leased()) return true;
  const bool asking = entry.asking && now_us - entry.asked_us < kAskTimeoutMicros;
  const std::int64_t started = entry.expires_us - terms->lifetime_us;
  const bool low =
      entry.tokens * 4 <= entry.lease_size || (entry.expires_us - now_us) * 4 <= terms->lifetime_us;
  if (asking || !low) return true;
  // The rate this lease is used at, projected over a lifetime.
  const std::int64_t elapsed = std::max<std::int64_t>(1, now_us - started);
  const std::int64_t projected = elapsed * terms->slice <= entry.used * terms->lifetime_us
                                     ? terms->slice
                                     : entry.used * terms->lifetime_us / elapsed;
  taken->refill = std::clamp<std::int64_t>(projected + projected / 4 + 1, 2, terms->slice);
  entry.asking = 1;
  entry.asked_us = now_us;
  return true;
}

void LeaseTable::renew(Entry& entry, std::int64_t tokens, std::int64_t used, std::int64_t remaining,
                       const LeaseTerms& terms, std::int64_t now_us) {
  entry.asking = 0;
  entry.tokens = tokens;
  entry.expires_us = now_us + terms.lifetime_us;
  entry.lease_size = std::max<std::int64_t>(1, tokens + used);
  entry.used = used;
  entry.remaining = remaining;
  entry.forget_after_us = now_us + kForgetLifetimes * terms.lifetime_us;
}

void LeaseTable::refilled(std::string_view key, std::int64_t granted, std::int64_t remaining,
                          const LeaseTerms& terms, std::int64_t now_us) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  Entry* entry = find_or_add(shard, key, now_us);
  if (!entry) return;
  // What was left joins the refill, unless it has expired meanwhile.
  const std::int64_t left = now_us >= entry->expires_us ? 0 : entry->tokens;
  renew(*entry, left + std::max<std::int64_t>(0, granted), 0, remaining, terms, now_us);
}

void LeaseTable::give_back(std::string_view key, std::int64_t now_us) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.entries.find(key);
  if (found == shard.entries.end()) return;
  Entry& entry = found->second;
  if (now_us >= entry.expires_us || entry.used <= 0) return;  // expired: lost
  ++entry.tokens;
  --entry.used;
}

std::int64_t LeaseTable::quantity(std::string_view key, const LeaseTerms& terms,
                                  std::int64_t now_us) {
  if (!terms.leased()) return 1;
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  Entry* entry = find_or_add(shard, key, now_us);
  if (!entry) return 1;
  if (entry->asking && now_us - entry->asked_us < kAskTimeoutMicros) return 1;
  std::int64_t want = 1;
  if (entry->forget_after_us > now_us && entry->lease_size > 0) {
    // Demand over the last lease: it ran out (more wanted) or it ended with tokens to spare.
    want = entry->used >= entry->lease_size ? 2 * entry->lease_size
                                            : entry->used + entry->used / 4 + 1;
    want = std::clamp<std::int64_t>(want, 2, terms.slice);
  } else {
    // Not seen lately: a single request must not take a slice it will not use. Recorded as a
    // lease of one, spent, so the next ask within the record's life asks for two.
    *entry = Entry{};
    entry->lease_size = 1;
    entry->used = 1;
    entry->forget_after_us = now_us + kForgetLifetimes * terms.lifetime_us;
    return 1;
  }
  entry->asking = 1;
  entry->asked_us = now_us;
  return want;
}

void LeaseTable::granted(std::string_view key, std::int64_t granted, std::int64_t remaining,
                         const LeaseTerms& terms, std::int64_t now_us) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  Entry* entry = find_or_add(shard, key, now_us);
  if (!entry) return;  // no room: the tokens are lost, which is only stricter
  renew(*entry, std::max<std::int64_t>(0, granted - 1), 1, remaining, terms, now_us);
}

void LeaseTable::abandoned(std::string_view key) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  if (const auto found = shard.entries.find(key); found != shard.entries.end())
    found->second.asking = 0;
}

std::int64_t LeaseTable::tokens(std::string_view key, std::int64_t now_us) const {
  const Shard& shard = *shards_[Hash{}(key) % shards_.size()];
  std::lock_guard lock(shard.mutex);
  const auto found = shard.entries.find(key);
  if (found == shard.entries.end() || now_us >= found->second.expires_us) return 0;
  return found->second.tokens;
}

std::size_t LeaseTable::size() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    total += shard->entries.size();
  }
  return total;
}

}  // namespace portcullis::limits
