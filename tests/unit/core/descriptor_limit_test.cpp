#include "portcullis/core/descriptor_limit.hpp"

#include <gtest/gtest.h>

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

TEST(DescriptorLimit, RaisingNeverLowersTheSoftLimit) {
  const DescriptorLimit limit = raise_descriptor_limit();
  EXPECT_GT(limit.soft, 0u);
  EXPECT_LE(limit.soft, limit.hard);
  EXPECT_EQ(raise_descriptor_limit().soft, limit.soft);  // already at the ceiling
}

}  // namespace
}  // namespace portcullis::core
