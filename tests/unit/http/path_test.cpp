#include "portcullis/http/path.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace portcullis::http {
namespace {

using core::Reason;
using namespace std::literals;

struct Accepted {
  std::string_view raw;
  std::string_view normalized;
};

class PathAccepted : public testing::TestWithParam<Accepted> {};

TEST_P(PathAccepted, Normalizes) {
  const auto& [raw, expected] = GetParam();
  std::string out = "stale";
  ASSERT_EQ(core::to_string(normalize_path(raw, out)), "none") << raw;
  EXPECT_EQ(out, expected) << raw;
  // normalising again changes nothing
  std::string twice;
  ASSERT_EQ(normalize_path(out, twice), Reason::none) << out;
  EXPECT_EQ(twice, out);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PathAccepted,
    testing::Values(
        Accepted{"/", "/"}, Accepted{"/a", "/a"}, Accepted{"/a/b", "/a/b"},
        Accepted{"/a/b/", "/a/b/"},
        // repeated slashes
        Accepted{"//", "/"}, Accepted{"//a//b", "/a/b"}, Accepted{"/a///b//", "/a/b/"},
        // dot segments
        Accepted{"/.", "/"}, Accepted{"/./", "/"}, Accepted{"/a/.", "/a/"},
        Accepted{"/a/./b", "/a/b"}, Accepted{"/a/..", "/"}, Accepted{"/a/../", "/"},
        Accepted{"/a/b/..", "/a/"}, Accepted{"/a/b/../c", "/a/c"}, Accepted{"/a/b/../../c/", "/c/"},
        Accepted{"/a/./../b/./c/..", "/b/"}, Accepted{"/a//..", "/"}, Accepted{"/a/.b", "/a/.b"},
        Accepted{"/a/..b", "/a/..b"}, Accepted{"/a/...", "/a/..."}, Accepted{"/a/b..", "/a/b.."},
        // encoded dots are dots
        Accepted{"/a/%2e", "/a/"}, Accepted{"/a/%2E%2E", "/"}, Accepted{"/a/.%2e/b", "/b"},
        Accepted{"/a/%2e./b", "/b"}, Accepted{"/a/%2e%2e/", "/"},
        Accepted{"/a/%2e%2e%2e", "/a/..."},
        // unreserved escapes are decoded, others kept in upper case
        Accepted{"/%41%62%7e%2D%5f%30", "/Ab~-_0"}, Accepted{"/a%20b", "/a%20b"},
        Accepted{"/a%2cb", "/a%2Cb"}, Accepted{"/caf%c3%a9", "/caf%C3%A9"},
        Accepted{"/%3f%23", "/%3F%23"}, Accepted{"/%25", "/%25"}, Accepted{"/%25zz", "/%25zz"},
        Accepted{"/%25%25", "/%25%25"}, Accepted{"/%25a", "/%25a"},
        // every pchar
        Accepted{"/azAZ09-._~!$&'()*+,;=:@", "/azAZ09-._~!$&'()*+,;=:@"},
        Accepted{"/a;b/c", "/a;b/c"}, Accepted{"/a/.x;y", "/a/.x;y"}));

struct Refused {
  std::string_view raw;
  Reason reason;
};

class PathRefused : public testing::TestWithParam<Refused> {};

TEST_P(PathRefused, Refuses) {
  const auto& [raw, reason] = GetParam();
  std::string out;
  EXPECT_EQ(core::to_string(normalize_path(raw, out)), core::to_string(reason))
      << testing::PrintToString(std::string(raw));
}

INSTANTIATE_TEST_SUITE_P(
    Table, PathRefused,
    testing::Values(
        Refused{"", Reason::bad_path}, Refused{"a/b", Reason::bad_path},
        // encoded separators
        Refused{"/a%2fb", Reason::encoded_slash}, Refused{"/a%2Fb", Reason::encoded_slash},
        Refused{"/a%5cb", Reason::encoded_slash}, Refused{"/a%5C..%5Cb", Reason::encoded_slash},
        Refused{"/..%2f", Reason::encoded_slash},
        // NUL
        Refused{"/a%00", Reason::encoded_nul}, Refused{"/a%00.html", Reason::encoded_nul},
        // other encoded controls (header and log injection in back ends that decode)
        Refused{"/a%0d%0aSet-Cookie:x", Reason::bad_path}, Refused{"/a%0A", Reason::bad_path},
        Refused{"/a%09", Reason::bad_path}, Refused{"/a%1f", Reason::bad_path},
        Refused{"/a%7F", Reason::bad_path},
        // double encoding
        Refused{"/%252e%252e/", Reason::double_encoding},
        Refused{"/%252F", Reason::double_encoding}, Refused{"/a%2541", Reason::double_encoding},
        Refused{"/a%2561b", Reason::double_encoding},
        Refused{"/%25%34%31", Reason::double_encoding},  // "%25" then decoded "41"
        // malformed escapes
        Refused{"/%", Reason::bad_path}, Refused{"/%4", Reason::bad_path},
        Refused{"/%g1", Reason::bad_path}, Refused{"/%1g", Reason::bad_path},
        Refused{"/a%", Reason::bad_path}, Refused{"/%%41", Reason::bad_path},
        // raw bytes outside pchar
        Refused{"/a\\b", Reason::bad_path}, Refused{"/..\\x", Reason::bad_path},
        Refused{"/a b", Reason::bad_path}, Refused{"/a?b", Reason::bad_path},
        Refused{"/a#b", Reason::bad_path}, Refused{"/a\"b", Reason::bad_path},
        Refused{"/a<b", Reason::bad_path}, Refused{"/a[b]", Reason::bad_path},
        Refused{"/a\x01", Reason::bad_path}, Refused{"/a\x7f", Reason::bad_path},
        Refused{"/caf\xC3\xA9", Reason::bad_path}, Refused{"/a\0b"sv, Reason::bad_path},
        Refused{"/a|b", Reason::bad_path}, Refused{"/a^b", Reason::bad_path},
        // climbing above the root
        Refused{"/..", Reason::path_traversal}, Refused{"/../", Reason::path_traversal},
        Refused{"/../a", Reason::path_traversal}, Refused{"/a/../..", Reason::path_traversal},
        Refused{"/a/b/../../../etc/passwd", Reason::path_traversal},
        Refused{"/%2e%2e/a", Reason::path_traversal}, Refused{"/.%2E/", Reason::path_traversal},
        Refused{"/./..", Reason::path_traversal}, Refused{"//..//", Reason::path_traversal},
        // servlet path parameters on dot segments
        Refused{"/..;/admin", Reason::path_traversal},
        Refused{"/..;x=1/admin", Reason::path_traversal}));

TEST(Path, ServletDotSegmentsResolve) {
  std::string out;
  ASSERT_EQ(normalize_path("/public/..;/admin", out), Reason::none);
  EXPECT_EQ(out, "/admin");
  ASSERT_EQ(normalize_path("/a/.;x/b", out), Reason::none);
  EXPECT_EQ(out, "/a/b");
  ASSERT_EQ(normalize_path("/a/%2e%2e;/b", out), Reason::none);
  EXPECT_EQ(out, "/b");
}

TEST(Path, ReusesTheOutputString) {
  std::string out;
  out.reserve(256);
  const auto capacity = out.capacity();
  ASSERT_EQ(normalize_path("/a/b/c", out), Reason::none);
  EXPECT_EQ(out.capacity(), capacity);
  ASSERT_EQ(normalize_path("/x", out), Reason::none);
  EXPECT_EQ(out, "/x");
}

}  // namespace
}  // namespace portcullis::http
