#pragma once
// The verified-token cache: a repeated token costs a SHA-256 and a hash lookup instead of a
// signature verification.
//
// Keyed by the SHA-256 of the whole token (never by claims: two different tokens with the same
// claims are two entries). An entry also records the verification context - the verifier's and the
// key set's fingerprints - and only matches the same context, so a policy reload that changes the
// audience or a JWKS refresh that drops a key makes its entries misses.
// An entry lives until min(token exp, insertion time + ttl) and never past exp (clock skew is not
// granted to cached entries). Revocation is not the cache's business: check the denylist after
// every lookup, hit or miss.
//
// Sharded by digest with one mutex per shard; each shard is an LRU list bounded at
// capacity / shards entries (at least one), so the whole never holds more than
// max(capacity, shards) entries. Time is passed in, never read.

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portcullis/auth/jwks.hpp"
#include "portcullis/auth/principal.hpp"
#include "portcullis/auth/token_hash.hpp"
#include "portcullis/auth/verifier.hpp"

namespace portcullis::auth {

struct TokenCacheOptions {
  std::size_t capacity = 100'000;
  std::size_t shards = 16;
  std::chrono::seconds ttl{300};  // upper bound on an entry's life, whatever the token's exp
};

class VerifiedTokenCache {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  explicit VerifiedTokenCache(const TokenCacheOptions& options = {});

  // The principal cached for `token` under `context`, or null. An expired entry, or one from
  // another context, is removed and reported as a miss. A hit becomes most recently used.
  std::shared_ptr<const Principal> find(const TokenDigest& token, const Sha256Digest& context,
                                        TimePoint now);

  // Remembers a successful verification; evicts the shard's least recently used entry when full.
  // A principal already expired at `now` is not stored.
  void insert(const TokenDigest& token, const Sha256Digest& context,
              std::shared_ptr<const Principal> principal, TimePoint now);

  void clear();
  std::size_t size() const;  // entries held, expired or not, across all shards
  std::size_t capacity() const { return per_shard_ * shards_.size(); }
  // How long a verification is reused at most (never past the token's exp).
  std::chrono::seconds ttl() const { return ttl_; }

 private:
  struct Entry {
    TokenDigest token;
    Sha256Digest context;
    TimePoint expires;
    std::shared_ptr<const Principal> principal;
  };
  struct DigestHash {
    std::size_t operator()(const TokenDigest& digest) const;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::list<Entry> lru;  // front = most recently used
    std::unordered_map<TokenDigest, std::list<Entry>::iterator, DigestHash> index;
  };

  Shard& shard_for(const TokenDigest& token);

  std::chrono::seconds ttl_;
  std::size_t per_shard_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// The context a cache entry is valid for: SHA-256 of the verifier's and the key set's fingerprints.
Sha256Digest cache_context(const Verifier& verifier, const KeySet& keys);

// Verification through the cache: a hit returns the cached principal (reason none, same token
// hash); a miss verifies and caches a success. Failures are never cached.
VerifyResult verify_cached(const Verifier& verifier, VerifiedTokenCache& cache,
                           std::string_view token, std::chrono::system_clock::time_point now,
                           const KeySet& keys);

}  // namespace portcullis::auth
