#include "portcullis/core/allocation_budget.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <new>
#include <thread>

namespace portcullis::core {
namespace {

// Allocates `bytes` with operator new and frees them; the pointer escapes, so the compiler cannot
// elide the pair.
void allocate(std::size_t bytes) {
  auto memory = std::make_unique<char[]>(bytes);
  asm volatile("" : : "r"(memory.get()) : "memory");
}

TEST(AllocationBudget, RefusesWhatTheScopeCannotPay) {
  if (!AllocationBudget::enforced()) GTEST_SKIP() << "the sanitizer owns operator new";
  AllocationBudget budget(4096);
  allocate(1000);
  EXPECT_FALSE(budget.exceeded());
  EXPECT_LE(budget.remaining(), 4096u - 1000u);
  EXPECT_THROW(allocate(8192), std::bad_alloc);
  EXPECT_TRUE(budget.exceeded());
  // The nothrow form is charged too, and answers null.
  char* refused = new (std::nothrow) char[8192];
  asm volatile("" : : "r"(refused) : "memory");
  EXPECT_EQ(refused, nullptr);
  delete[] refused;
}

TEST(AllocationBudget, FreesGiveNothingBack) {
  if (!AllocationBudget::enforced()) GTEST_SKIP() << "the sanitizer owns operator new";
  AllocationBudget budget(10000);
  for (int i = 0; i < 4; ++i)
    allocate(2000);  // allocated and freed: 8000 charged in all
  EXPECT_FALSE(budget.exceeded());
  EXPECT_THROW(allocate(4000), std::bad_alloc);
}

TEST(AllocationBudget, OnlyTheOpeningThreadIsCharged) {
  if (!AllocationBudget::enforced()) GTEST_SKIP() << "the sanitizer owns operator new";
  AllocationBudget budget(64);
  bool other_allocated = false;
  std::thread other([&] {
    allocate(1 << 20);
    other_allocated = true;
  });
  other.join();
  EXPECT_TRUE(other_allocated);
  EXPECT_FALSE(budget.exceeded());
}

TEST(AllocationBudget, ClosingRestoresTheEnclosingScopeAndThenNone) {
  if (!AllocationBudget::enforced()) GTEST_SKIP() << "the sanitizer owns operator new";
  {
    AllocationBudget outer(1 << 20);
    {
      AllocationBudget inner(16);
      EXPECT_THROW(allocate(100), std::bad_alloc);
    }
    allocate(100);  // the outer scope pays
    EXPECT_FALSE(outer.exceeded());
    EXPECT_THROW(allocate(2 << 20), std::bad_alloc);
  }
  EXPECT_NO_THROW(allocate(4 << 20));  // no scope open: no cap
}

}  // namespace
}  // namespace portcullis::core
