#include "portcullis/core/descriptor_limit.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace portcullis::core {
namespace {

TEST(DescriptorLimit, TwoPerConnectionPlusWorkersAndAMargin) {
  EXPECT_EQ(descriptors_needed(10000, 2, 3), 20000u + 2 * (3 + 4) + kDescriptorMargin);
  EXPECT_EQ(descriptors_needed(1, 1, 1), 2u + 5 + kDescriptorMargin);
}

TEST(DescriptorLimit, WarnsOnlyBelowWhatIsNeeded) {
  EXPECT_EQ(descriptor_limit_warning(100, 278, {278, 278}), "");
  EXPECT_EQ(descriptor_limit_warning(100, 278, {65536, 65536}), "");
  const std::string warning = descriptor_limit_warning(10000, 20078, {256, 256});
  EXPECT_NE(warning.find("is 256,"), std::string::npos) << warning;
  EXPECT_NE(warning.find("20078"), std::string::npos) << warning;
  EXPECT_NE(warning.find("max_connections 10000"), std::string::npos) << warning;
  EXPECT_EQ(warning.find("hard limit"), std::string::npos) << warning;
}

TEST(DescriptorLimit, NamesTheHardLimitWhenItIsHigher) {
  const std::string warning = descriptor_limit_warning(10000, 20078, {1024, 4096});
  EXPECT_NE(warning.find("is 1024 (hard limit 4096)"), std::string::npos) << warning;
}

TEST(DescriptorLimit, RaisesALowSoftLimitToTheHardLimit) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max <= 64)
    GTEST_SKIP() << "no finite hard limit";
  rlimit low = saved;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  // Asking for no more than the hard limit: the soft limit goes up to it, the hard one stays.
  const DescriptorLimit raised = raise_descriptor_limit(saved.rlim_max / 2);
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(raised.soft, static_cast<std::uint64_t>(saved.rlim_max));
  EXPECT_EQ(raised.hard, static_cast<std::uint64_t>(saved.rlim_max));
  EXPECT_EQ(now.rlim_cur, saved.rlim_max);
  EXPECT_EQ(raise_descriptor_limit().soft, raised.soft);  // already at the ceiling: unchanged
  setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
}  // namespace portcullis::core
