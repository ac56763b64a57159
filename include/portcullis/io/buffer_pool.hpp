#pragma once
// Request buffers reused within one thread: a request takes one and gives it back when its
// connection goes idle, so an idle connection holds none and a busy worker allocates none. Not
// thread-safe: each worker thread owns one pool.

#include <cstddef>
#include <memory>
#include <vector>

namespace portcullis::io {

class BufferPool {
 public:
  // A buffer of `size` bytes (uninitialized), reused when one of that size is free.
  std::unique_ptr<char[]> take(std::size_t size);
  // Keeps `buffer` (of `size` bytes) for reuse, within a few sizes and a few dozen per size.
  void give(std::unique_ptr<char[]> buffer, std::size_t size);

 private:
  struct FreeBuffers {
    std::size_t size;
    std::vector<std::unique_ptr<char[]>> buffers;
  };
  std::vector<FreeBuffers> free_;
};

}  // namespace portcullis::io
