#include "portcullis/limits/local_limiter.hpp"

#include <array>

namespace portcullis::limits {
namespace {

// The keys of a request list, as KeyTable::update reads them (no copy).
struct KeysOf {
  std::span<const LimitRequest> requests;
  std::size_t size() const { return requests.size(); }
  const LimitKey& operator[](std::size_t i) const { return requests[i].key; }
};

}  // namespace

Decision LocalLimiter::decide(std::span<const LimitRequest> requests, std::int64_t now_us) {
  Decision decision;
  if (requests.empty()) return decision;
  if (requests.size() > kMaxBatchKeys) {
    decision.allowed = false;
    decision.retry_after = 1;
    return decision;
  }
  const std::size_t n = requests.size();
  std::array<GcraLimit, kMaxBatchKeys> limits;
  std::array<std::int64_t, kMaxBatchKeys> tats;
  for (std::size_t i = 0; i < n; ++i)
    limits[i] = requests[i].limit;
  table_.update(KeysOf{requests}, now_us, [&](std::span<KeyTable<RateState>::Slot> slots) {
    for (std::size_t i = 0; i < n; ++i)
      tats[i] = slots[i].value.tat;
    const GcraMultiResult result = gcra_decide_all(std::span<const GcraLimit>(limits.data(), n),
                                                   now_us, std::span<std::int64_t>(tats.data(), n));
    decision.allowed = result.allowed;
    decision.deciding = result.deciding;
    decision.limit = result.headline.limit;
    decision.remaining = result.headline.remaining;
    decision.reset = result.headline.reset;
    decision.retry_after = result.headline.retry_after;
    if (!result.allowed) return;  // nothing consumed, nothing inserted
    for (std::size_t i = 0; i < n; ++i) {
      slots[i].value.tat = tats[i];
      slots[i].store = true;
    }
  });
  return decision;
}

}  // namespace portcullis::limits
