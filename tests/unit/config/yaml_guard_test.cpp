#include "../../../src/config/yaml_guard.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

namespace portcullis::config::detail {
namespace {

TEST(YamlGuard, AcceptsAnOrdinaryPolicy) {
  EXPECT_EQ(check_yaml("version: 1\nroutes:\n  - name: a\n    match: { path_prefix: / }\n"),
            std::nullopt);
  EXPECT_EQ(check_yaml(""), std::nullopt);
  EXPECT_EQ(check_yaml("# only a comment\n"), std::nullopt);
}

TEST(YamlGuard, ALoneCommaIsASyntaxErrorWithItsPlace) {
  for (const std::string_view text : {",", "# comment\n,", ",\nversion: 1\n", "  ,"}) {
    const auto problem = check_yaml(text);
    ASSERT_TRUE(problem) << text;
    EXPECT_NE(problem->message.find("YAML syntax"), std::string::npos);
    EXPECT_GE(problem->line, 1);
    EXPECT_GE(problem->column, 1);
  }
  const auto problem = check_yaml("# comment\n,");
  EXPECT_EQ(problem->line, 2);
  EXPECT_EQ(problem->column, 1);
}

TEST(YamlGuard, RefusesTagsWhereverTheyStand) {
  // Texts libyaml accepts on which yaml-cpp 0.7 allocated without bound (the fuzzer's finds),
  // and tags on every kind of node.
  for (const std::string_view text :
       {"!!4;certificates: 8}\n.38}\n,.38}\n:tip", "!e rq\n\n\n?\n=-\n", "version: !!int 1\n",
        "server: !x { workers: 1 }\n", "routes: !!seq []\n",
        "%TAG !e! tag:e.com,2000:\n---\na: 1\n", "a: !<tag:yaml.org,2002:str> b\n"}) {
    const auto problem = check_yaml(text);
    ASSERT_TRUE(problem) << text;
    EXPECT_NE(problem->message.find("tags"), std::string::npos) << problem->message;
  }
  const auto problem = check_yaml("version: 1\nlogging:\n  level: !!str info\n");
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->line, 3);
  EXPECT_EQ(problem->column, 10);
  // An exclamation mark inside a value is no tag.
  EXPECT_EQ(check_yaml("a: 'b!c'\nd: e!f\n"), std::nullopt);
}

TEST(YamlGuard, RefusesASecondDocument) {
  const auto problem = check_yaml("version: 1\n---\nversion: 2\n");
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->line, 2);
  EXPECT_NE(problem->message.find("single YAML document"), std::string::npos);
}

TEST(YamlGuard, RefusesDeepNesting) {
  std::string text(100, '[');
  text += std::string(100, ']');
  const auto problem = check_yaml(text);
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->line, 1);
  EXPECT_EQ(problem->column, 65);
  EXPECT_NE(problem->message.find("64 levels"), std::string::npos);
}

TEST(YamlGuard, RefusesAnAliasBomb) {
  // Ten levels of 30 references each: 30^10 nodes once expanded.
  std::string text = "l0: &l0 [x, x, x]\n";
  for (int level = 1; level <= 10; ++level) {
    std::string name = "l";
    name += std::to_string(level);
    std::string below = "*l";
    below += std::to_string(level - 1);
    text.append(name).append(": &").append(name).append(" [");
    for (int j = 0; j < 30; ++j)
      text.append(j ? ", " : "").append(below);
    text.append("]\n");
  }
  const auto problem = check_yaml(text);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->message.find("alias references"), std::string::npos);
}

TEST(YamlGuard, RefusesTooManyNodes) {
  std::string text = "[";
  for (int i = 0; i < 2000; ++i)
    text += "1,";
  text += "1]";
  EXPECT_TRUE(check_yaml(
      text, {.max_depth = 64, .max_nodes = 1000, .max_aliases = 1, .max_mapping_keys = 10}));
  EXPECT_FALSE(check_yaml(text));
}

TEST(YamlGuard, RefusesAMappingWithMoreKeysThanAPolicyNeeds) {
  std::string text;
  for (int i = 0; i < 10'001; ++i)
    text.append("k").append(std::to_string(i)).append(": 1\n");
  const auto problem = check_yaml(text);
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->line, 10'001);
  EXPECT_NE(problem->message.find("more than 10000 keys"), std::string::npos);
  // A long list is fine (ip_rules may hold thousands of CIDRs).
  std::string list = "deny:\n";
  for (int i = 0; i < 20'000; ++i)
    list.append("  - 10.0.0.1/32\n");
  EXPECT_FALSE(check_yaml(list));
}

TEST(YamlGuard, RandomBytesAreAnsweredQuickly) {
  std::mt19937 random(7);
  for (int round = 0; round < 200; ++round) {
    std::string text(static_cast<std::size_t>(random() % 4096), '\0');
    for (auto& c : text)
      c = "{}[],:-?&*!|>'\"%@` \n\tab1#"[random() % 27];
    (void)check_yaml(text);  // must return; sanitizers and the test timeout watch the rest
  }
}

}  // namespace
}  // namespace portcullis::config::detail
