#pragma once
// The current policy snapshot. A reload swaps it atomically; each request pins the snapshot it
// started with (a shared_ptr), so a reload never changes a request in flight. Workers cache the
// pointer and compare generation() per request, which is one relaxed atomic load.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "portcullis/config/policy.hpp"

namespace portcullis::config {

class PolicyStore {
 public:
  explicit PolicyStore(std::shared_ptr<const Policy> initial);

  std::shared_ptr<const Policy> current() const;
  void replace(std::shared_ptr<const Policy> next);
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Policy> current_;
  std::atomic<std::uint64_t> generation_{1};
};

}  // namespace portcullis::config
