#include "portcullis/state/mirror.hpp"

#include <algorithm>
#include <bit>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace portcullis::state {
namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept {
    return std::hash<std::string_view>{}(text);
  }
};

// One (issuer, time) under a key: a revocation of a jti (time = exp) or a cut-off for a subject
// (time = issued_before). A key rarely has more than one issuer, so a small vector beats a map.
struct IssuerEntry {
  std::string issuer;
  std::int64_t time = 0;
  std::int64_t keep_until = 0;
};

using KeyedMap =
    std::unordered_map<std::string, std::vector<IssuerEntry>, StringHash, std::equal_to<>>;
using BanMap = std::unordered_map<core::IpAddress, Ban, core::IpAddressHash>;

template <class Map>
struct alignas(64) Shard {
  mutable std::mutex mutex;
  Map map;
  std::size_t entries = 0;
};

// A sharded table with a global entry count used for the cap and for metrics. The count is
// changed only under the shard's lock of the entry concerned, so it never exceeds the cap.
template <class Map, class Hash>
struct Table {
  std::vector<std::unique_ptr<Shard<Map>>> shards;
  std::size_t mask = 0;
  std::size_t cap = 0;
  std::atomic<std::size_t> count{0};

  Table(std::size_t shard_count, std::size_t capacity) : mask(shard_count - 1), cap(capacity) {
    shards.reserve(shard_count);
    for (std::size_t i = 0; i < shard_count; ++i)
      shards.push_back(std::make_unique<Shard<Map>>());
  }

  template <class Key>
  Shard<Map>& shard_for(const Key& key) const {
    const std::size_t hash = Hash{}(key);
    return *shards[(hash ^ (hash >> 32)) & mask];
  }

  bool reserve_one() {
    if (count.fetch_add(1, std::memory_order_relaxed) < cap) return true;
    count.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  bool empty() const { return count.load(std::memory_order_relaxed) == 0; }
};

using KeyedTable = Table<KeyedMap, StringHash>;
using BanTable = Table<BanMap, core::IpAddressHash>;

bool issuer_matches(std::string_view entry_issuer, std::string_view token_issuer) {
  return entry_issuer.empty() || entry_issuer == token_issuer;
}

enum class AddResult { done, full };

AddResult add_keyed(KeyedTable& table, std::string_view key, std::string_view issuer,
                    std::int64_t time, std::int64_t keep_until) {
  auto& shard = table.shard_for(key);
  std::lock_guard lock(shard.mutex);
  auto found = shard.map.find(key);
  if (found != shard.map.end()) {
    for (auto& entry : found->second) {
      if (entry.issuer != issuer) continue;
      if (time > entry.time) {
        entry.time = time;
        entry.keep_until = keep_until;
      }
      return AddResult::done;
    }
  }
  if (!table.reserve_one()) return AddResult::full;
  if (found == shard.map.end()) found = shard.map.try_emplace(std::string(key)).first;
  found->second.push_back(IssuerEntry{std::string(issuer), time, keep_until});
  ++shard.entries;
  return AddResult::done;
}

bool remove_keyed(KeyedTable& table, std::string_view key, std::string_view issuer) {
  auto& shard = table.shard_for(key);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.map.find(key);
  if (found == shard.map.end()) return false;
  auto& entries = found->second;
  const auto entry = std::find_if(entries.begin(), entries.end(),
                                  [&](const IssuerEntry& e) { return e.issuer == issuer; });
  if (entry == entries.end()) return false;
  entries.erase(entry);
  if (entries.empty()) shard.map.erase(found);
  --shard.entries;
  table.count.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

bool contains_keyed(const KeyedTable& table, std::string_view key, std::string_view issuer) {
  const auto& shard = table.shard_for(key);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.map.find(key);
  if (found == shard.map.end()) return false;
  return std::any_of(found->second.begin(), found->second.end(),
                     [&](const IssuerEntry& e) { return e.issuer == issuer; });
}

std::size_t purge_keyed(KeyedTable& table, std::int64_t now) {
  std::size_t removed = 0;
  for (auto& shard : table.shards) {
    std::lock_guard lock(shard->mutex);
    for (auto it = shard->map.begin(); it != shard->map.end();) {
      auto& entries = it->second;
      const auto before = entries.size();
      std::erase_if(entries, [now](const IssuerEntry& e) { return e.keep_until <= now; });
      const auto gone = before - entries.size();
      shard->entries -= gone;
      removed += gone;
      table.count.fetch_sub(gone, std::memory_order_relaxed);
      it = entries.empty() ? shard->map.erase(it) : std::next(it);
    }
  }
  return removed;
}

std::size_t purge_bans(BanTable& table, std::int64_t now) {
  std::size_t removed = 0;
  for (auto& shard : table.shards) {
    std::lock_guard lock(shard->mutex);
    removed += std::erase_if(shard->map, [&](const auto& item) {
      if (item.second.until > now) return false;
      --shard->entries;
      table.count.fetch_sub(1, std::memory_order_relaxed);
      return true;
    });
  }
  return removed;
}

// Runs `add` and, when the table is full, purges expired records once and tries again.
template <class Add, class Purge>
std::error_code add_with_purge(Add add, Purge purge) {
  if (add() == AddResult::done) return {};
  purge();
  if (add() == AddResult::done) return {};
  return StateError::capacity_exceeded;
}

// New per-shard contents for replace_all, built before any lock is taken.
template <class Map>
struct Staged {
  std::vector<Map> maps;
  std::vector<std::size_t> entries;
  std::size_t total = 0;
  explicit Staged(std::size_t shards) : maps(shards), entries(shards, 0) {}
};

void stage_keyed(Staged<KeyedMap>& staged, const KeyedTable& table, const std::string& key,
                 const std::string& issuer, std::int64_t time, std::int64_t keep_until) {
  const std::size_t hash = StringHash{}(key);
  const std::size_t index = (hash ^ (hash >> 32)) & table.mask;
  auto& entries = staged.maps[index][key];
  for (auto& entry : entries) {
    if (entry.issuer != issuer) continue;
    if (time > entry.time) entry = IssuerEntry{issuer, time, keep_until};
    return;
  }
  entries.push_back(IssuerEntry{issuer, time, keep_until});
  ++staged.entries[index];
  ++staged.total;
}

template <class Map, class Hash>
void swap_in(Table<Map, Hash>& table, Staged<Map>& staged) {
  for (std::size_t i = 0; i < table.shards.size(); ++i) {
    auto& shard = *table.shards[i];
    Map old;
    {
      std::lock_guard lock(shard.mutex);
      old.swap(shard.map);
      shard.map.swap(staged.maps[i]);
      const std::size_t previous = shard.entries;
      shard.entries = staged.entries[i];
      if (shard.entries >= previous)
        table.count.fetch_add(shard.entries - previous, std::memory_order_relaxed);
      else
        table.count.fetch_sub(previous - shard.entries, std::memory_order_relaxed);
    }
    // `old` is freed here, outside the lock.
  }
}

}  // namespace

struct Mirror::Tables {
  KeyedTable revocations;
  KeyedTable cutoffs;
  BanTable bans;

  explicit Tables(const MirrorOptions& o)
      : revocations(shard_count(o), o.max_revocations),
        cutoffs(shard_count(o), o.max_cutoffs),
        bans(shard_count(o), o.max_bans) {}

  static std::size_t shard_count(const MirrorOptions& o) {
    return std::bit_ceil(std::clamp<std::size_t>(o.shards, 1, 4096));
  }
};

Mirror::Mirror(const MirrorOptions& options) : options_(options) {
  const auto in_range = [](std::chrono::seconds s) {
    return s.count() >= 0 && s <= kMaxRetentionSetting;
  };
  if (!in_range(options.retention.max_token_lifetime) || !in_range(options.retention.after_exp))
    throw std::invalid_argument("state: retention settings must be within 0..366 days");
  tables_ = std::make_unique<Tables>(options_);
}

Mirror::~Mirror() = default;

bool Mirror::is_revoked(std::string_view issuer, std::string_view jti, std::string_view subject,
                        std::int64_t issued_at, std::int64_t now) const {
  if (!jti.empty() && !tables_->revocations.empty()) {
    const auto& shard = tables_->revocations.shard_for(jti);
    std::lock_guard lock(shard.mutex);
    if (const auto found = shard.map.find(jti); found != shard.map.end()) {
      for (const auto& entry : found->second)
        if (now < entry.keep_until && issuer_matches(entry.issuer, issuer)) return true;
    }
  }
  if (!subject.empty() && !tables_->cutoffs.empty()) {
    const auto& shard = tables_->cutoffs.shard_for(subject);
    std::lock_guard lock(shard.mutex);
    if (const auto found = shard.map.find(subject); found != shard.map.end()) {
      for (const auto& entry : found->second)
        if (now < entry.keep_until && issued_at < entry.time &&
            issuer_matches(entry.issuer, issuer))
          return true;
    }
  }
  return false;
}

std::optional<Ban> Mirror::ban_of(const core::IpAddress& ip, std::int64_t now) const {
  if (tables_->bans.empty()) return std::nullopt;
  const auto key = ip.client_key();
  const auto& shard = tables_->bans.shard_for(key);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.map.find(key);
  if (found == shard.map.end() || found->second.until <= now) return std::nullopt;
  return found->second;
}

std::vector<Ban> Mirror::active_bans(std::int64_t now) const {
  std::vector<Ban> bans;
  for (const auto& shard : tables_->bans.shards) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [key, ban] : shard->map)
      if (ban.until > now) bans.push_back(ban);
  }
  return bans;
}

std::error_code Mirror::apply(const Revocation& revocation, std::int64_t now) {
  if (!is_valid(revocation)) return StateError::invalid_record;
  const auto keep_until = options_.retention.keep_until(revocation);
  if (keep_until <= now) return {};
  return add_with_purge(
      [&] {
        return add_keyed(tables_->revocations, revocation.jti, revocation.issuer, revocation.exp,
                         keep_until);
      },
      [&] { purge_keyed(tables_->revocations, now); });
}

std::error_code Mirror::apply(const SubjectCutoff& cutoff, std::int64_t now) {
  if (!is_valid(cutoff)) return StateError::invalid_record;
  const auto keep_until = options_.retention.keep_until(cutoff);
  if (keep_until <= now) return {};
  return add_with_purge(
      [&] {
        return add_keyed(tables_->cutoffs, cutoff.subject, cutoff.issuer, cutoff.issued_before,
                         keep_until);
      },
      [&] { purge_keyed(tables_->cutoffs, now); });
}

std::error_code Mirror::apply(const Ban& ban, std::int64_t now) {
  if (!is_valid(ban)) return StateError::invalid_record;
  if (ban.until <= now) return {};
  Ban stored = ban;
  stored.ip = ban.ip.client_key();
  auto& table = tables_->bans;
  return add_with_purge(
      [&] {
        auto& shard = table.shard_for(stored.ip);
        std::lock_guard lock(shard.mutex);
        if (const auto found = shard.map.find(stored.ip); found != shard.map.end()) {
          if (stored.until > found->second.until) found->second = stored;
          return AddResult::done;
        }
        if (!table.reserve_one()) return AddResult::full;
        shard.map.emplace(stored.ip, stored);
        ++shard.entries;
        return AddResult::done;
      },
      [&] { purge_bans(table, now); });
}

bool Mirror::remove_revocation(std::string_view issuer, std::string_view jti) {
  return remove_keyed(tables_->revocations, jti, issuer);
}

bool Mirror::remove_cutoff(std::string_view issuer, std::string_view subject) {
  return remove_keyed(tables_->cutoffs, subject, issuer);
}

bool Mirror::remove_ban(const core::IpAddress& ip) {
  const auto key = ip.client_key();
  auto& shard = tables_->bans.shard_for(key);
  std::lock_guard lock(shard.mutex);
  if (shard.map.erase(key) == 0) return false;
  --shard.entries;
  tables_->bans.count.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

bool Mirror::contains(const Revocation& revocation) const {
  return contains_keyed(tables_->revocations, revocation.jti, revocation.issuer);
}

bool Mirror::contains(const SubjectCutoff& cutoff) const {
  return contains_keyed(tables_->cutoffs, cutoff.subject, cutoff.issuer);
}

bool Mirror::contains(const Ban& ban) const {
  const auto key = ban.ip.client_key();
  const auto& shard = tables_->bans.shard_for(key);
  std::lock_guard lock(shard.mutex);
  return shard.map.contains(key);
}

std::error_code Mirror::replace_all(const MirrorContents& contents, std::int64_t now) {
  const auto& retention = options_.retention;
  const auto shards = tables_->revocations.shards.size();
  Staged<KeyedMap> revocations(shards);
  Staged<KeyedMap> cutoffs(shards);
  Staged<BanMap> bans(shards);

  for (const auto& r : contents.revocations) {
    if (!is_valid(r)) return StateError::invalid_record;
    const auto keep_until = retention.keep_until(r);
    if (keep_until <= now) continue;
    stage_keyed(revocations, tables_->revocations, r.jti, r.issuer, r.exp, keep_until);
    if (revocations.total > tables_->revocations.cap) return StateError::capacity_exceeded;
  }
  for (const auto& c : contents.cutoffs) {
    if (!is_valid(c)) return StateError::invalid_record;
    const auto keep_until = retention.keep_until(c);
    if (keep_until <= now) continue;
    stage_keyed(cutoffs, tables_->cutoffs, c.subject, c.issuer, c.issued_before, keep_until);
    if (cutoffs.total > tables_->cutoffs.cap) return StateError::capacity_exceeded;
  }
  for (const auto& b : contents.bans) {
    if (!is_valid(b)) return StateError::invalid_record;
    if (b.until <= now) continue;
    Ban stored = b;
    stored.ip = b.ip.client_key();
    const std::size_t hash = core::IpAddressHash{}(stored.ip);
    const std::size_t index = (hash ^ (hash >> 32)) & tables_->bans.mask;
    auto [it, inserted] = bans.maps[index].try_emplace(stored.ip, stored);
    if (!inserted) {
      if (stored.until > it->second.until) it->second = stored;
      continue;
    }
    ++bans.entries[index];
    if (++bans.total > tables_->bans.cap) return StateError::capacity_exceeded;
  }

  swap_in(tables_->revocations, revocations);
  swap_in(tables_->cutoffs, cutoffs);
  swap_in(tables_->bans, bans);
  return {};
}

std::size_t Mirror::purge_expired(std::int64_t now) {
  return purge_keyed(tables_->revocations, now) + purge_keyed(tables_->cutoffs, now) +
         purge_bans(tables_->bans, now);
}

MirrorContents Mirror::snapshot(std::int64_t now) const {
  MirrorContents contents;
  for (const auto& shard : tables_->revocations.shards) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [jti, entries] : shard->map)
      for (const auto& e : entries)
        if (now < e.keep_until) contents.revocations.push_back(Revocation{e.issuer, jti, e.time});
  }
  for (const auto& shard : tables_->cutoffs.shards) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [subject, entries] : shard->map)
      for (const auto& e : entries)
        if (now < e.keep_until)
          contents.cutoffs.push_back(SubjectCutoff{e.issuer, subject, e.time});
  }
  contents.bans = active_bans(now);
  return contents;
}

MirrorSizes Mirror::sizes() const {
  return MirrorSizes{tables_->revocations.count.load(std::memory_order_relaxed),
                     tables_->cutoffs.count.load(std::memory_order_relaxed),
                     tables_->bans.count.load(std::memory_order_relaxed)};
}

}  // namespace portcullis::state
