#include "portcullis/io/buffer_pool.hpp"

namespace portcullis::io {

std::unique_ptr<char[]> BufferPool::take(std::size_t size) {
  for (auto& size_class : free_) {
    if (size_class.size == size && !size_class.buffers.empty()) {
      auto buffer = std::move(size_class.buffers.back());
      size_class.buffers.pop_back();
      return buffer;
    }
  }
  return std::make_unique_for_overwrite<char[]>(size);
}

void BufferPool::give(std::unique_ptr<char[]> buffer, std::size_t size) {
  constexpr std::size_t kMaxFreeBuffersPerSize = 64;
  constexpr std::size_t kMaxSizeClasses = 4;
  for (auto& size_class : free_) {
    if (size_class.size == size) {
      if (size_class.buffers.size() < kMaxFreeBuffersPerSize)
        size_class.buffers.push_back(std::move(buffer));
      return;
    }
  }
  if (free_.size() >= kMaxSizeClasses) free_.erase(free_.begin());
  free_.push_back({size, {}});
  free_.back().buffers.push_back(std::move(buffer));
}

}  // namespace portcullis::io
