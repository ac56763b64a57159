#pragma once
// A cap on the bytes one thread may allocate with operator new while a scope is open.
//
// The policy loader opens one around the YAML library's tree building: a parser that allocates
// without bound on some input then gets std::bad_alloc at the cap instead of taking the serving
// process's memory on a reload. Only this thread is charged; other threads never see the cap.
// Bytes are counted as they are allocated (frees give nothing back), so the cap is on the
// scope's total allocation. In builds whose sanitizer owns operator new (ASan, libFuzzer) the
// scope is inert: `enforced()` says so, and the fuzzer's own malloc limit takes its place.

#include <cstddef>

namespace portcullis::core {

class AllocationBudget {
 public:
  // Opens the scope on this thread with `bytes` to spend; an enclosing scope is restored when
  // this one closes (and is not charged for what this one spends).
  explicit AllocationBudget(std::size_t bytes);
  ~AllocationBudget();
  AllocationBudget(const AllocationBudget&) = delete;
  AllocationBudget& operator=(const AllocationBudget&) = delete;

  // True once an allocation was refused for want of budget.
  bool exceeded() const { return exceeded_; }
  std::size_t remaining() const { return remaining_; }

  // False in builds where the cap is not applied (see above).
  static bool enforced();

  // For operator new: charges `bytes` to this thread's open scope, if any; false when the scope
  // cannot pay (the allocation must then fail).
  static bool charge(std::size_t bytes);

 private:
  std::size_t remaining_;
  bool exceeded_ = false;
  AllocationBudget* enclosing_;
};

}  // namespace portcullis::core
