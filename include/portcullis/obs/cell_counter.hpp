#pragma once
// A counter for the request path. Each thread adds to a cell of its own (an atomic add on a cache
// line no other worker writes: no lock, no line bouncing between cores), and carry_over() adds
// what the cells gathered to the Prometheus counter that exposes it, when /metrics is read.
// Exact: nothing is lost between carries; threads beyond kCells share cells round-robin.

#include <prometheus/counter.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace portcullis::obs {

// The calling thread's cell number (dealt round-robin as threads first count something).
std::size_t thread_cell();

class CellCounter {
 public:
  static constexpr std::size_t kCells = 8;

  explicit CellCounter(prometheus::Counter& exposed) : exposed_(exposed) {}
  CellCounter(const CellCounter&) = delete;
  CellCounter& operator=(const CellCounter&) = delete;

  void increment() const {
    cells_[thread_cell() % kCells].value.fetch_add(1, std::memory_order_relaxed);
  }
  // Adds the cells' news to the exposed counter. One caller at a time.
  void carry_over() const;

 private:
  struct alignas(64) Cell {
    std::atomic<std::uint64_t> value{0};
  };
  mutable std::array<Cell, kCells> cells_;
  mutable std::uint64_t carried_ = 0;
  prometheus::Counter& exposed_;
};

}  // namespace portcullis::obs
