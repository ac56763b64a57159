#include "portcullis/obs/cell_counter.hpp"

namespace portcullis::obs {

std::size_t thread_cell() {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t cell = next.fetch_add(1, std::memory_order_relaxed);
  return cell;
}

void CellCounter::carry_over() const {
  std::uint64_t total = 0;
  for (const Cell& cell : cells_)
    total += cell.value.load(std::memory_order_relaxed);
  if (total > carried_) exposed_.Increment(static_cast<double>(total - carried_));
  carried_ = total;
}

}  // namespace portcullis::obs
