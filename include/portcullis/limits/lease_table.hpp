#pragma once
// Budgets leased from a fleet's shared rate limit: for a high-rate key an instance takes k
// tokens from Redis in one script call and serves the next k - 1 requests for that key itself,
// without a round trip. Pure bookkeeping (no I/O, times passed in), shared by every thread.
//
// Terms, from the limit alone (T = emission interval, burst = its burst):
//   slice    = min(floor(kLeaseWindowMicros / T), floor(burst / 4))   tokens arriving in ~50 ms,
//              at most a quarter of the burst; below 2 the limit is not leased (one call each).
//   lifetime = slice * T (<= 50 ms): a lease ends when the time its slice represents has passed,
//              so it never lends budget from the future; tokens left unused are lost.
// So a limit is leased from about 40 requests per second (T <= 25 ms) with a burst of 8 or more.
//
// Safety: every request a lease serves was consumed in Redis first, so a fleet never passes more
// than the limit; a lost token only makes the fleet stricter.
//
// How much to ask (quantity()): a key this instance has not seen lately asks for 1; then each
// ask is sized by the demand seen during the previous lease: twice that lease when it ran out,
// else the requests it served plus a quarter, between 2 and the slice. A key that is already
// being asked for by another request of this instance asks for 1 meanwhile, so a burst of
// requests arriving together does not lease many slices at once. The script shrinks an ask that
// does not fit (near the limit) to 1 in the same round trip.
//
// Refills: a take() that leaves a lease low (a quarter of it or less left, or in the last
// quarter of its lifetime) asks for a refill without waiting for it (Taken::refill), sized by
// the rate the lease is being used at (projected over a lifetime, plus a quarter, at most the
// slice). The tokens it brings are added to what is left, and the lease lives one lifetime from
// the refill; so a busy key is never without tokens while its refill travels, and a request
// never waits for one.
//
// Memory: at most max_entries keys (in shards); a full shard drops keys whose lease and demand
// record are over before it adds one, and when none is, the key is simply not leased.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portcullis/limits/limit_key.hpp"

namespace portcullis::limits {

inline constexpr std::int64_t kLeaseWindowMicros = 50'000;

struct LeaseTerms {
  std::int64_t slice = 1;        // the most tokens one ask takes; 1 = not leased
  std::int64_t lifetime_us = 0;  // how long leased tokens stay usable
  bool leased() const { return slice > 1; }
};

LeaseTerms lease_terms(std::int64_t emission_us, std::int64_t burst);

struct LeaseTableOptions {
  std::size_t max_entries = 16384;
  std::size_t shards = 16;
};

class LeaseTable {
 public:
  explicit LeaseTable(const LeaseTableOptions& options = {});

  struct Taken {
    std::int64_t remaining = 0;  // the fleet's last answer minus the tokens used here since
    std::int64_t refill = 0;     // > 0: ask the fleet for this many now (then refilled/abandoned)
  };
  // Takes one request's token from a live lease of `key`.
  bool take(std::string_view key, std::int64_t now_us, Taken* taken = nullptr,
            const LeaseTerms* terms = nullptr);
  // Returns a token take() gave, when its lease is still live (a refused request used nothing).
  void give_back(std::string_view key, std::int64_t now_us);

  // The quantity to ask the fleet for, for a request no lease covered (see above). An answer
  // above 1 marks the key as being asked for: call granted() or abandoned() for it (and only
  // for it: an answer of 1 needs neither).
  std::int64_t quantity(std::string_view key, const LeaseTerms& terms, std::int64_t now_us);
  // The fleet took `granted` tokens (the asking request spent one) and has `remaining` left:
  // the rest are this instance's until now + lifetime.
  void granted(std::string_view key, std::int64_t granted, std::int64_t remaining,
               const LeaseTerms& terms, std::int64_t now_us);
  // A refill brought `granted` tokens (none spent yet) and the fleet has `remaining` left.
  void refilled(std::string_view key, std::int64_t granted, std::int64_t remaining,
                const LeaseTerms& terms, std::int64_t now_us);
  // An ask of quantity() > 1, or a refill, ended without a grant (refused or failed).
  void abandoned(std::string_view key);

  // Tokens of the key's live lease not used yet (0 when none).
  std::int64_t tokens(std::string_view key, std::int64_t now_us) const;
  std::size_t size() const;
  std::size_t capacity() const { return per_shard_ * shards_.size(); }

 private:
  struct Entry {
    std::int64_t tokens = 0;  // usable, until expires_us
    std::int64_t expires_us = 0;
    std::int64_t lease_size = 0;  // tokens the last grant took (the asking request's included)
    std::int64_t used = 0;        // of those, spent so far
    std::int64_t remaining = 0;   // the fleet's answer at the last grant
    std::int64_t asking = 0;      // an ask is in flight (1) or not (0)
    std::int64_t asked_us = 0;    // when it started (a lost ask is forgotten after 1 s)
    std::int64_t forget_after_us = 0;
  };
  // Seeded per process: the keys (a subject, an address) are chosen by clients.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const { return hash_text(key); }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries;
    std::int64_t next_sweep_us = 0;
  };

  Shard& shard_of(std::string_view key);
  // The key's entry, added when there is room (null when there is none).
  Entry* find_or_add(Shard& shard, std::string_view key, std::int64_t now_us);
  // The fleet answered an ask: a new lease from now on, holding `tokens`, of which `used`
  // more were spent already (the asking request's).
  static void renew(Entry& entry, std::int64_t tokens, std::int64_t used, std::int64_t remaining,
                    const LeaseTerms& terms, std::int64_t now_us);

  std::vector<std::unique_ptr<Shard>> shards_;
  std::size_t per_shard_ = 0;
};

}  // namespace portcullis::limits
