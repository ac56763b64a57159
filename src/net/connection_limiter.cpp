#include "portcullis/net/connection_limiter.hpp"

namespace portcullis::net {

ConnectionLimiter::Slot::~Slot() {
  if (owner_) owner_->release(key_);
}

ConnectionLimiter::Shard& ConnectionLimiter::shard_for(const core::IpAddress& key) {
  return shards_[core::IpAddressHash{}(key) % shards_.size()];
}

std::optional<ConnectionLimiter::Slot> ConnectionLimiter::try_acquire(const core::IpAddress& client,
                                                                      std::uint64_t max_total,
                                                                      std::uint64_t max_per_ip,
                                                                      core::Reason& refused) {
  if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    refused = core::Reason::connection_limit;
    return std::nullopt;
  }
  const core::IpAddress key = client.client_key();
  Shard& shard = shard_for(key);
  {
    std::lock_guard lock(shard.mutex);
    auto& count = shard.counts[key];
    if (count >= max_per_ip) {
      if (count == 0) shard.counts.erase(key);
      total_.fetch_sub(1, std::memory_order_relaxed);
      refused = core::Reason::connection_limit_per_ip;
      return std::nullopt;
    }
    ++count;
  }
  return Slot(this, key);
}

void ConnectionLimiter::release(const core::IpAddress& key) {
  Shard& shard = shard_for(key);
  {
    std::lock_guard lock(shard.mutex);
    const auto found = shard.counts.find(key);
    if (found != shard.counts.end() && --found->second == 0) shard.counts.erase(found);
  }
  total_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace portcullis::net
