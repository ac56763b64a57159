#include "portcullis/auth/token_cache.hpp"

#include <algorithm>
#include <cstring>

#include "crypto.hpp"

namespace portcullis::auth {

std::size_t VerifiedTokenCache::DigestHash::operator()(const TokenDigest& digest) const {
  // SHA-256 output is uniform already; any 8 bytes make a good hash.
  std::size_t value = 0;
  std::memcpy(&value, digest.data() + 8, sizeof(value));
  return value;
}

VerifiedTokenCache::VerifiedTokenCache(const TokenCacheOptions& options)
    : ttl_(options.ttl),
      per_shard_(
          std::max<std::size_t>(1, options.capacity / std::max<std::size_t>(1, options.shards))) {
  const std::size_t shards = std::max<std::size_t>(1, options.shards);
  shards_.reserve(shards);
  for (std::size_t i = 0; i < shards; ++i)
    shards_.push_back(std::make_unique<Shard>());
}

VerifiedTokenCache::Shard& VerifiedTokenCache::shard_for(const TokenDigest& token) {
  std::uint64_t value = 0;
  std::memcpy(&value, token.data(), sizeof(value));
  return *shards_[value % shards_.size()];
}

std::shared_ptr<const Principal> VerifiedTokenCache::find(const TokenDigest& token,
                                                          const Sha256Digest& context,
                                                          TimePoint now) {
  Shard& shard = shard_for(token);
  std::lock_guard lock(shard.mutex);
  const auto found = shard.index.find(token);
  if (found == shard.index.end()) return nullptr;
  const auto entry = found->second;
  if (now >= entry->expires || entry->context != context) {
    shard.lru.erase(entry);
    shard.index.erase(found);
    return nullptr;
  }
  shard.lru.splice(shard.lru.begin(), shard.lru, entry);
  return entry->principal;
}

void VerifiedTokenCache::insert(const TokenDigest& token, const Sha256Digest& context,
                                std::shared_ptr<const Principal> principal, TimePoint now) {
  if (!principal) return;
  TimePoint expires = now + ttl_;
  if (principal->expires_at) {
    // Never past the token's own exp (no clock skew for cached entries). Compared in seconds so
    // that an absurd exp cannot overflow the clock's finer duration.
    const auto exp = *principal->expires_at;
    if (exp <= std::chrono::floor<std::chrono::seconds>(now)) return;
    if (exp < std::chrono::floor<std::chrono::seconds>(expires)) expires = TimePoint{exp};
  }
  if (expires <= now) return;

  Shard& shard = shard_for(token);
  std::lock_guard lock(shard.mutex);
  if (const auto found = shard.index.find(token); found != shard.index.end()) {
    shard.lru.erase(found->second);
    shard.index.erase(found);
  }
  while (shard.index.size() >= per_shard_) {
    shard.index.erase(shard.lru.back().token);
    shard.lru.pop_back();
  }
  shard.lru.push_front(Entry{token, context, expires, std::move(principal)});
  shard.index.emplace(token, shard.lru.begin());
}

void VerifiedTokenCache::clear() {
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    shard->index.clear();
    shard->lru.clear();
  }
}

std::size_t VerifiedTokenCache::size() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    total += shard->index.size();
  }
  return total;
}

Sha256Digest cache_context(const Verifier& verifier, const KeySet& keys) {
  detail::Sha256Builder builder;
  builder.add(verifier.fingerprint().data(), verifier.fingerprint().size());
  builder.add(keys.fingerprint().data(), keys.fingerprint().size());
  return builder.finish();
}

VerifyResult verify_cached(const Verifier& verifier, VerifiedTokenCache& cache,
                           std::string_view token, std::chrono::system_clock::time_point now,
                           const KeySet& keys) {
  // The size cap comes first: an oversized token is never looked up or stored.
  if (token.size() > verifier.settings().max_token_bytes) return verifier.verify(token, now, keys);
  const TokenDigest digest = token_digest(token);
  const Sha256Digest context = cache_context(verifier, keys);
  if (auto principal = cache.find(digest, context, now)) {
    VerifyResult hit;
    hit.subject = principal->subject;
    hit.token_hash = principal->token_hash;
    hit.principal = std::move(principal);
    return hit;
  }
  VerifyResult result = verifier.verify(token, digest, now, keys);
  if (result.ok()) cache.insert(digest, context, result.principal, now);
  return result;
}

}  // namespace portcullis::auth
