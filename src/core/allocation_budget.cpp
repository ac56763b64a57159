#include "portcullis/core/allocation_budget.hpp"

#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define PORTCULLIS_SANITIZER_OWNS_NEW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define PORTCULLIS_SANITIZER_OWNS_NEW 1
#endif
#endif

namespace portcullis::core {
namespace {

thread_local AllocationBudget* open_budget = nullptr;

}  // namespace

AllocationBudget::AllocationBudget(std::size_t bytes) : remaining_(bytes), enclosing_(open_budget) {
  open_budget = this;
}

AllocationBudget::~AllocationBudget() {
  open_budget = enclosing_;
}

bool AllocationBudget::charge(std::size_t bytes) {
  AllocationBudget* budget = open_budget;
  if (!budget) return true;
  if (bytes > budget->remaining_) {
    budget->exceeded_ = true;
    return false;
  }
  budget->remaining_ -= bytes;
  return true;
}

bool AllocationBudget::enforced() {
#ifdef PORTCULLIS_SANITIZER_OWNS_NEW
  return false;
#else
  return true;
#endif
}

}  // namespace portcullis::core

#ifndef PORTCULLIS_SANITIZER_OWNS_NEW
// The replaceable global operator new, charged to the thread's open budget. libstdc++'s array
// and nothrow forms call this one, and its operator delete frees what malloc returned.
void* operator new(std::size_t size) {
  if (!portcullis::core::AllocationBudget::charge(size)) throw std::bad_alloc();
  if (size == 0) size = 1;
  for (;;) {
    if (void* memory = std::malloc(size)) return memory;
    const std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
  }
}
#endif
