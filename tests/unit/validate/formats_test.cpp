#include "portcullis/validate/formats.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portcullis::validate {
namespace {

void expect_all(Format format, std::initializer_list<const char*> good,
                std::initializer_list<const char*> bad) {
  for (const char* s : good)
    EXPECT_TRUE(matches_format(format, s)) << format_name(format) << ": " << s;
  for (const char* s : bad)
    EXPECT_FALSE(matches_format(format, s)) << format_name(format) << ": " << s;
}

TEST(Formats, Names) {
  for (const char* name :
       {"date-time", "date", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}) {
    const auto format = format_from_name(name);
    ASSERT_TRUE(format) << name;
    EXPECT_EQ(format_name(*format), name);
  }
  EXPECT_FALSE(format_from_name("Date"));
  EXPECT_FALSE(format_from_name("uri-reference"));
  EXPECT_FALSE(format_from_name(""));
}

TEST(Formats, DateTime) {
  expect_all(Format::date_time,
             {"1963-06-19T08:30:06.283185Z", "1963-06-19T08:30:06Z", "1937-01-01T12:00:27.87+00:20",
              "1990-12-31T15:59:50.123-08:00", "1963-06-19t08:30:06.283185z",
              "1998-12-31T23:59:60Z", "1998-12-31T15:59:60.123-08:00", "2020-02-29T00:00:00Z",
              "0400-02-29T00:00:00Z", "1985-04-12T00:59:59.999999999999999Z"},
             {"1998-12-31T23:59:61Z",
              "1998-12-31T23:58:60Z",
              "1998-12-31T22:59:60Z",
              "1990-12-31T24:00:00Z",
              "1990-12-31T15:60:00Z",
              "1990-12-31T10:00:00+10:60",
              "1990-02-31T15:59:59.123-08:00",
              "1990-12-31T15:59:59-24:00",
              "1963-06-19T08:30:06.28123+01:00Z",
              "06/19/1963 08:30:06 PST",
              "2013-350T01:01:01",
              "1963-6-19T08:30:06.283185Z",
              "1963-06-1T08:30:06.283185Z",
              "1963-06-1\u09EAT00:00:00Z",
              "+11963-06-19T08:30:06.283185Z",
              "1985-04-12T23:20:50+01",
              "2016-12-31T24:59:60+01:00",
              "1985-04-12T23:20:50Z\n",
              "1985-04-12T23:20Z",
              "1985-04-12T23:20:50Ztail",
              "2021-02-29T00:00:00Z",
              "0100-02-29T00:00:00Z",
              "2100-02-29T00:00:00Z",
              "1985-04-12 23:20:50Z",
              "1985-04-12T23:20:50.Z",
              ""});
}

TEST(Formats, Date) {
  expect_all(Format::date, {"1963-06-19", "2020-02-29", "2000-02-29", "0001-01-01", "9999-12-31"},
             {"06/19/1963", "2013-350", "1998-1-20", "1998-01-1", "1998-13-01", "1998-04-31",
              "2021-02-29", "1900-02-29", "1963-06-19T00:00:00Z", "1963-06-00", "19630619", ""});
}

TEST(Formats, Time) {
  expect_all(Format::time,
             {"08:30:06.283185Z", "08:30:06Z", "08:30:06+01:00", "23:59:60Z", "15:59:60-08:00",
              "00:00:00z"},
             {"08:30:06 PST", "01:01:01,1111", "08:30:06", "24:00:00Z", "08:60:00Z", "22:59:60Z",
              "8:30:06Z", "08:30:06+1:00", "08:30:06+01:00Z", ""});
}

TEST(Formats, Email) {
  expect_all(Format::email,
             {"joe.bloggs@example.com", "joe.bloggs@123.24-7-examples.com", "a@b",
              "te~st@example.com", "~test@example.com", "test~@example.com",
              "\"joe bloggs\"@example.com", "\"joe..bloggs\"@example.com", "joe.bloggs@[127.0.0.1]",
              "joe.bloggs@[IPv6:::1]", "first.last+tag@bank.example"},
             {"2962", "@example.com", "joe@", ".test@example.com", "test.@example.com",
              "te..st@example.com", "joe.bloggs@invalid=domain.com", "joe.bloggs@[127.0.0.300]",
              "joe bloggs@example.com", "j\u00f6e@example.com", "joe@-example.com",
              "\"unterminated@example.com", ""});
}

TEST(Formats, Hostname) {
  expect_all(Format::hostname,
             {"www.example.com", "xn--4gbwdl.xn--wgbh1c", "123.24-7-examples.com", "localhost", "a",
              std::string(63, 'a').c_str()},
             {"-a-host-name-that-starts-with--", "not_a_valid_host_name",
              "a-vvvvvvvvvvvvvvvveeeeeeeeeeeeeeeerrrrrrrrrrrrrrrryyyyyyyyyyyyyyyy-long-host-name-"
              "component",
              "host-.example.com", "example..com", ".example.com", "example.com.", ".", "",
              "ex ample.com", std::string(64, 'a').c_str()});
  std::string long_name;
  for (int i = 0; i < 50; ++i)
    long_name += "abcd.";
  long_name += "abc";  // 253 bytes
  EXPECT_TRUE(matches_format(Format::hostname, long_name));
  EXPECT_FALSE(matches_format(Format::hostname, long_name + "d"));
}

TEST(Formats, Ipv4) {
  expect_all(Format::ipv4, {"192.168.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.10"},
             {"127.0.0.0.1", "256.256.256.256", "127.0", "0x7f000001", "087.10.0.1", "1.2.3.4 ",
              " 1.2.3.4", "1.2.3.", "1..2.3", "1.2.3.1000", "", "1.2.3.\u09E8"});
}

TEST(Formats, Ipv6) {
  expect_all(Format::ipv6,
             {"::1", "::", "::42:ff:1", "d6::", "1::d6:192.168.0.1", "1:2::192.168.0.1",
              "::ffff:192.168.0.1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "FE80::ABCD",
              "1:2:3:4:5:6:1.2.3.4"},
             {"12345::",
              "1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1",
              "::laptop",
              ":2:3:4:5:6:7:8",
              "1:2:3:4:5:6:7:",
              ":2:3:4::8",
              "1::d6::42",
              "1::2:192.168.256.1",
              "1::2:192.168.ff.1",
              "1:2:3:4:5:::8",
              "1:2:3:4:5:6:7",
              "1",
              "127.0.0.1",
              "1:2:3:4:1.2.3",
              "  ::1",
              "::1  ",
              "fe80::/64",
              "fe80::a%eth1",
              "1:2:3:4:5:6:7:1.2.3.4",
              ""});
}

TEST(Formats, Uri) {
  expect_all(
      Format::uri,
      {"http://foo.bar/?baz=qux#quux", "http://foo.com/blah_(wikipedia)_blah#cite-1",
       "http://foo.bar/?q=Test%20URL-encoded%20stuff", "http://xn--nw2a.xn--j6w193g/",
       "http://-.~_!$&'()*+,;=:%40:80%2f::::::@example.com", "http://223.255.255.254",
       "ftp://ftp.is.co.za/rfc/rfc1808.txt", "ldap://[2001:db8::7]/c=GB?objectClass?one",
       "mailto:John.Doe@example.com", "news:comp.infosystems.www.servers.unix",
       "tel:+1-816-555-1212", "urn:oasis:names:specification:docbook:dtd:xml:4.1.2",
       "https://bank.example:8443/pay?x=1", "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
       "http://[v1.fe80::a+en1]/"},
      {"//foo.bar/?baz=qux#quux", "/abc", "\\\\WINDOWS\\fileshare", "abc", "http:// shouldfail.com",
       ":// should fail", "http://a b/", "http://x/%zz", "http://x/%2", "1http://x", "http://[::1/",
       "http://x:80a/", "http://x/\u00e9", "http://x/#a#b", ""});
}

TEST(Formats, Uuid) {
  expect_all(Format::uuid,
             {"2eb8aa08-aa98-11ea-b4aa-73b441d16380", "2EB8AA08-AA98-11EA-B4AA-73B441D16380",
              "00000000-0000-0000-0000-000000000000"},
             {"2eb8aa08-aa98-11ea-b4aa-73b441d1638", "2eb8aa08aa9811eab4aa73b441d16380",
              "2eb8aa08-aa98-11ea-73b441d16380", "2eb8aa08-aa98-11ea-b4ga-73b441d16380",
              "{2eb8aa08-aa98-11ea-b4aa-73b441d16380}", ""});
}

}  // namespace
}  // namespace portcullis::validate
