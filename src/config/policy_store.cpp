#include "portcullis/config/policy_store.hpp"

namespace portcullis::config {

PolicyStore::PolicyStore(std::shared_ptr<const Policy> initial) : current_(std::move(initial)) {}

std::shared_ptr<const Policy> PolicyStore::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void PolicyStore::replace(std::shared_ptr<const Policy> next) {
  {
    std::lock_guard lock(mutex_);
    current_ = std::move(next);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace portcullis::config
