#pragma once
// Request ids: 32 lower-case hex characters (128 bits) from a per-worker generator seeded by the
// OpenSSL CSPRNG, or the client's own id when request_id.trust_incoming is set and it is sane.

#include <cstdint>
#include <string>
#include <string_view>

namespace portcullis::filters {

// Not thread-safe: one per worker thread.
class RequestIdGenerator {
 public:
  RequestIdGenerator();
  // Writes a new id into `out` (replacing its content).
  void next(std::string& out);

 private:
  std::uint64_t state_[4];
};

// An incoming id is kept only if it is 1..128 characters of [A-Za-z0-9._:-].
bool is_acceptable_request_id(std::string_view id);

}  // namespace portcullis::filters
