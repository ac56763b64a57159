#pragma once
// The in-memory copy of the shared security state that every instance keeps, so that the request
// path checks revocations and bans without any I/O: a denylist by (issuer, jti), subject
// cut-offs and IP bans. Backends write into it; request filters only read.
//
// Threads: every table is sharded by key hash, each shard with its own small mutex, so no read or
// write takes a process-wide lock. A read for a token that is not revoked allocates nothing (the
// tables are looked up with string_view keys) and skips a table that is empty.
//
// Expiry: each record is kept until Retention::keep_until (records.hpp): a revocation until its
// token's exp (+ clock skew), a cut-off until issued_before + max_token_lifetime (+ skew), a ban
// until its end. Reads ignore expired records; purge_expired() frees them (call it now and then).
//
// Size: each table has a cap (MirrorOptions). A write that would add a key beyond the cap first
// purges expired records and is then refused with StateError::capacity_exceeded: a revocation is
// never evicted to make room. Rough cost: ~150 bytes plus the key strings per record.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "portcullis/state/records.hpp"

namespace portcullis::state {

struct MirrorOptions {
  Retention retention;
  std::size_t max_revocations = 1'000'000;
  std::size_t max_cutoffs = 100'000;
  std::size_t max_bans = 100'000;
  std::size_t shards = 64;  // rounded up to a power of two
};

// The longest max_token_lifetime and after_exp accepted (the Mirror refuses larger settings).
inline constexpr std::chrono::seconds kMaxRetentionSetting{std::chrono::hours(24 * 366)};

// Pass as `issued_at` for a token without iat: any cut-off for its subject then applies (a token
// that cannot show when it was issued is treated as issued before the cut-off).
inline constexpr std::int64_t kNoIssuedAt = std::numeric_limits<std::int64_t>::min();

// Records held (expired ones included until purged); for metrics.
struct MirrorSizes {
  std::size_t revocations = 0;
  std::size_t cutoffs = 0;
  std::size_t bans = 0;
};

// A whole state, for a full resync and for loading a store.
struct MirrorContents {
  std::vector<Revocation> revocations;
  std::vector<SubjectCutoff> cutoffs;
  std::vector<Ban> bans;
};

class Mirror {
 public:
  // Throws std::invalid_argument for a retention setting outside 0..kMaxRetentionSetting.
  explicit Mirror(const MirrorOptions& options = {});
  ~Mirror();
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  // ---- request path --------------------------------------------------------------------------
  // True when the token is denied at `now`: a revocation of (issuer, jti) or of (any issuer, jti),
  // or a cut-off for (issuer, subject) or (any issuer, subject) with issued_at < issued_before.
  // A token without jti (empty) is checked against cut-offs only, one without sub (empty) against
  // revocations only; one without iat passes kNoIssuedAt.
  bool is_revoked(std::string_view issuer, std::string_view jti, std::string_view subject,
                  std::int64_t issued_at, std::int64_t now) const;

  // The ban in force at `now` for this client (matched by client_key(): IPv6 by its /64).
  std::optional<Ban> ban_of(const core::IpAddress& ip, std::int64_t now) const;

  // Every ban in force at `now` (GET /bans), in no particular order.
  std::vector<Ban> active_bans(std::int64_t now) const;

  // ---- writes ---------------------------------------------------------------------------------
  // Adding a record whose key is present merges the two: the later exp, the later issued_before,
  // the later ban end (with that ban's reason) wins, so a write never shortens a denial (lift a ban
  // with remove_ban). A record already past its retention at `now` is accepted and not stored.
  // Errors: invalid_record, capacity_exceeded. Bans are stored under ip.client_key().
  std::error_code apply(const Revocation& revocation, std::int64_t now);
  std::error_code apply(const SubjectCutoff& cutoff, std::int64_t now);
  std::error_code apply(const Ban& ban, std::int64_t now);

  // Removal by key; true when something was removed.
  bool remove_revocation(std::string_view issuer, std::string_view jti);
  bool remove_cutoff(std::string_view issuer, std::string_view subject);
  bool remove_ban(const core::IpAddress& ip);

  // Whether a record with this key is held (expired or not): a write to it needs no new room.
  bool contains(const Revocation& revocation) const;
  bool contains(const SubjectCutoff& cutoff) const;
  bool contains(const Ban& ban) const;

  // Replaces everything with `contents` (a full resync), skipping records expired at `now`.
  // All-or-nothing as to validity and caps: on invalid_record or capacity_exceeded nothing
  // changes. Each shard is swapped under its lock, so a concurrent reader sees every key either
  // as before or as after.
  std::error_code replace_all(const MirrorContents& contents, std::int64_t now);

  // Drops records past their retention; returns how many.
  std::size_t purge_expired(std::int64_t now);

  // Everything held and not expired at `now`.
  MirrorContents snapshot(std::int64_t now) const;

  MirrorSizes sizes() const;
  const MirrorOptions& options() const { return options_; }

 private:
  struct Tables;
  MirrorOptions options_;
  std::unique_ptr<Tables> tables_;
};

}  // namespace portcullis::state
