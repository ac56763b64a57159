#include "portcullis/upstream/pool.hpp"

namespace portcullis::upstream {

std::unique_ptr<io::Stream> ConnectionPool::take(Clock::time_point now, bool retryable) {
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());  // most recently used first: warmest connection
    idle_.pop_back();
    const auto age = now - idle.since;
    if (retryable && age < kFreshFor) return std::move(idle.stream);
    if (age > kMaxIdleAge || idle.stream->peer_closed_or_dirty()) {
      idle.stream->close();
      continue;
    }
    return std::move(idle.stream);
  }
  return nullptr;
}

void ConnectionPool::give_back(std::unique_ptr<io::Stream> stream, std::size_t max_idle,
                               Clock::time_point now) {
  if (idle_.size() >= max_idle) {
    stream->close();
    return;
  }
  idle_.push_back({std::move(stream), now});
}

void ConnectionPool::clear() {
  for (auto& idle : idle_)
    idle.stream->close();
  idle_.clear();
}

}  // namespace portcullis::upstream
