#pragma once
// Connection caps shared by every worker: max_connections for the process and
// max_connections_per_ip per client (IPv6 clients by their /64). Checked at accept, before TLS,
// so a flood costs no handshakes. Per-IP counters exist only while that IP holds connections,
// so memory is bounded by max_connections.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "portcullis/core/ip.hpp"
#include "portcullis/core/reason.hpp"

namespace portcullis::net {

class ConnectionLimiter {
 public:
  // Releases its place when destroyed.
  class Slot {
   public:
    Slot(ConnectionLimiter* owner, const core::IpAddress& key) : owner_(owner), key_(key) {}
    Slot(Slot&& other) noexcept : owner_(other.owner_), key_(other.key_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept {
      std::swap(owner_, other.owner_);
      std::swap(key_, other.key_);
      return *this;
    }
    ~Slot();

   private:
    ConnectionLimiter* owner_;
    core::IpAddress key_;
  };

  // A slot for a new connection from `client`, or nullopt with `refused` set to
  // connection_limit or connection_limit_per_ip.
  std::optional<Slot> try_acquire(const core::IpAddress& client, std::uint64_t max_total,
                                  std::uint64_t max_per_ip, core::Reason& refused);

  std::uint64_t active() const { return total_.load(std::memory_order_relaxed); }

 private:
  void release(const core::IpAddress& key);

  struct Shard {
    std::mutex mutex;
    std::unordered_map<core::IpAddress, std::uint32_t, core::IpAddressHash> counts;
  };
  Shard& shard_for(const core::IpAddress& key);

  std::atomic<std::uint64_t> total_{0};
  std::array<Shard, 32> shards_;
};

}  // namespace portcullis::net
