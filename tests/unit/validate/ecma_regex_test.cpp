#include "portcullis/validate/ecma_regex.hpp"

#include <gtest/gtest.h>

#include <re2/re2.h>

#include <string>

namespace portcullis::validate {
namespace {

// Translates and compiles; fails the test when either step refuses.
bool search(std::string_view pattern, std::string_view text) {
  std::string error;
  const auto translated = ecma_to_re2(pattern, error);
  EXPECT_TRUE(translated) << pattern << ": " << error;
  if (!translated) return false;
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 re(*translated, options);
  EXPECT_TRUE(re.ok()) << pattern << " -> " << *translated << ": " << re.error();
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), re);
}

std::string refusal(std::string_view pattern) {
  std::string error;
  const auto translated = ecma_to_re2(pattern, error);
  EXPECT_FALSE(translated) << pattern << " -> " << translated.value_or("");
  return error;
}

TEST(EcmaRegex, PlainPatternsPassThrough) {
  std::string error;
  EXPECT_EQ(ecma_to_re2("^[A-Z]{2}[0-9]{2}$", error), "^[A-Z]{2}[0-9]{2}$");
  EXPECT_EQ(ecma_to_re2("a|b*?c+(?:d)", error), "a|b*?c+(?:d)");
  EXPECT_TRUE(search("^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$", "GB82WEST12345698765432"));
  EXPECT_FALSE(search("^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$", "GB82 WEST12345698765432"));
}

TEST(EcmaRegex, DotExcludesLineTerminators) {
  EXPECT_TRUE(search("^.$", "a"));
  EXPECT_TRUE(search("^.$", "\u00e9"));  // one code point, two bytes
  EXPECT_FALSE(search("^.$", "\n"));
  EXPECT_FALSE(search("^.$", "\r"));
  EXPECT_FALSE(search("^.$", "\u2028"));
  EXPECT_FALSE(search("^.$", "\u2029"));
}

TEST(EcmaRegex, WhiteSpaceIsEcmas) {
  for (const char* space :
       {" ", "\t", "\n", "\v", "\f", "\r", "\u00a0", "\u2003", "\u2028", "\u3000", "\ufeff"}) {
    EXPECT_TRUE(search("^\\s$", space)) << static_cast<int>(space[0]);
    EXPECT_FALSE(search("^\\S$", space)) << static_cast<int>(space[0]);
    EXPECT_TRUE(search("^[\\s]$", space));
    EXPECT_FALSE(search("^[\\S]$", space));
  }
  EXPECT_TRUE(search("^\\S$", "x"));
  EXPECT_TRUE(search("^[\\S]$", "\u00e9"));
  EXPECT_TRUE(search("^[\\s\\S]+$", "a \n\u2028b"));  // the "anything" idiom
}

TEST(EcmaRegex, DigitsAndWordsAreAscii) {
  EXPECT_TRUE(search("^\\d+$", "0123456789"));
  EXPECT_FALSE(search("^\\d$", "\u09EA"));  // Bengali four
  EXPECT_TRUE(search("^\\w+$", "abc_XYZ_09"));
  EXPECT_FALSE(search("^\\w$", "\u00e9"));
  EXPECT_TRUE(search("\\bword\\b", "a word here"));
}

TEST(EcmaRegex, Escapes) {
  EXPECT_TRUE(search("^\\u00e9$", "\u00e9"));
  EXPECT_TRUE(search("^\\ud83d\\udca9$", "\U0001F4A9"));  // a surrogate pair is one code point
  EXPECT_TRUE(search("^\\u{1F4A9}$", "\U0001F4A9"));
  EXPECT_TRUE(search("^\\x41$", "A"));
  EXPECT_TRUE(search("^\\cJ$", "\n"));
  EXPECT_TRUE(search("^a\\0b$", std::string_view("a\0b", 3)));
  EXPECT_TRUE(search("^[\\b]$", "\b"));
  EXPECT_TRUE(search("^\\/\\.\\-\\ $", "/.- "));
  EXPECT_TRUE(search("^[\\]\\-]+$", "]-"));
  EXPECT_TRUE(search("^\\t\\v\\f$", "\t\v\f"));
}

TEST(EcmaRegex, ClassesThatRe2ReadsDifferently) {
  EXPECT_TRUE(search("^[[]$", "["));       // '[' in a class is literal
  EXPECT_TRUE(search("^[[:a]+$", "[:a"));  // not a POSIX class
  EXPECT_FALSE(search("[]", "anything"));  // the empty class matches nothing
  EXPECT_TRUE(search("^[^]$", "\n"));      // and its negation anything
  EXPECT_TRUE(search("^a{$", "a{"));       // a brace that is no quantifier is literal
  EXPECT_TRUE(search("^a{1,x}$", "a{1,x}"));
  EXPECT_TRUE(search("^}]$", "}]"));
}

TEST(EcmaRegex, UnicodeProperties) {
  EXPECT_TRUE(search("^\\p{L}+$", "\u00e9t\u00e9"));
  EXPECT_TRUE(search("^\\p{Letter}+$", "\u00e9t\u00e9"));
  EXPECT_TRUE(search("^\\p{Lu}$", "\u00c9"));
  EXPECT_TRUE(search("^\\p{Script=Greek}+$", "\u03b1\u03b2"));
  EXPECT_TRUE(search("^\\P{Decimal_Number}$", "x"));
  EXPECT_TRUE(search("^[\\p{gc=Lu}0-9]+$", "A1"));
  refusal("\\p{Not_A_Property_X=1}");
  refusal("\\p");
}

TEST(EcmaRegex, NamedGroups) {
  EXPECT_TRUE(search("^(?<year>[0-9]{4})-(?<month>[0-9]{2})$", "2024-06"));
}

TEST(EcmaRegex, WhatRe2CannotExpressIsRefused) {
  EXPECT_NE(refusal("(a)\\1").find("backreference"), std::string::npos);
  EXPECT_NE(refusal("(?<n>a)\\k<n>").find("backreference"), std::string::npos);
  EXPECT_NE(refusal("a(?=b)").find("lookahead"), std::string::npos);
  EXPECT_NE(refusal("a(?!b)").find("lookahead"), std::string::npos);
  EXPECT_NE(refusal("(?<=a)b").find("lookbehind"), std::string::npos);
  EXPECT_NE(refusal("(?<!a)b").find("lookbehind"), std::string::npos);
  EXPECT_NE(refusal("\\ud83d").find("surrogate"), std::string::npos);
  EXPECT_NE(refusal("\\a").find("unknown escape"), std::string::npos);
  refusal("(?i)abc");  // inline flags are not ECMA
  refusal("[abc");
  refusal("abc\\");
  refusal("\\x4");
  refusal("\\u12");
  refusal("\\c1");
  refusal("\\01");
}

}  // namespace
}  // namespace portcullis::validate
