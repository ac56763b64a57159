// `state`: backends, the memory file, the Redis URL and its companions, and the warning when
// revocations and bans would live in this process only.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using ::testing::AllOf;
using testing::diagnostics_of;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::kMinimal;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr const char* kInProcessOnly =
    "state.memory.path is empty: revocations and bans live in this process only";

class StateTest : public ::testing::Test {
 protected:
  Policy load(const std::string& text, std::vector<Diagnostic>* warnings = nullptr) {
    return load_policy_text(text, dir_ / "policy.yaml", warnings);
  }
  std::vector<std::string> errors(const std::string& text) {
    return diagnostics_of(text, dir_.path());
  }
  std::string error(const std::string& text) {
    const auto found = errors(text);
    EXPECT_THAT(found, SizeIs(1)) << text;
    return found.empty() ? std::string() : found.front();
  }
  // The policy with `body` under `state:` (line 6); body lines start at line 7.
  static std::string state(const std::string& body) {
    return std::string(kMinimal) + "state:\n" + body;
  }
  // A redis backend with `url` on line 9, column 10, then `extra` lines.
  static std::string redis(const std::string& url, const std::string& extra = "") {
    return state("  backend: redis\n  redis:\n    url: \"" + url + "\"\n" + extra);
  }

  testing::TempDir dir_;
};

TEST_F(StateTest, LeftOutTakesTheDefaultsAndWarns) {
  std::vector<Diagnostic> warnings;
  const Policy policy = load(kMinimal, &warnings);
  const StateSettings& state = policy.state;
  EXPECT_EQ(state.backend, StateBackendKind::memory);
  EXPECT_EQ(state.memory_path, "");
  EXPECT_EQ(state.on_unavailable, OnUnavailable::fail_closed);
  EXPECT_EQ(state.local_memory, 64u * 1024 * 1024);
  EXPECT_EQ(state.max_token_lifetime, std::chrono::hours(24));
  EXPECT_EQ(state.redis.url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(state.redis.host, "127.0.0.1");
  EXPECT_EQ(state.redis.port, 6379);
  EXPECT_EQ(state.redis.database, 0u);
  EXPECT_FALSE(state.redis.tls);
  EXPECT_EQ(state.redis.key_prefix, "portcullis:");
  EXPECT_EQ(state.redis.command_timeout, std::chrono::milliseconds(50));
  EXPECT_EQ(state.location.line, 0);
  // Nothing in the file is the warning's place.
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_EQ(warnings[0].to_string(), (dir_ / "policy.yaml").string() + ": " + kInProcessOnly);
}

TEST_F(StateTest, EmptyMemoryPathWarnsAtIt) {
  std::vector<Diagnostic> warnings;
  load(state("  backend: memory\n  memory:\n    path: \"\"\n"), &warnings);
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_EQ(warnings[0].line, 9);
  EXPECT_EQ(warnings[0].column, 11);
  EXPECT_EQ(warnings[0].message, kInProcessOnly);
  // Warnings never refuse a policy, and a policy that loads without a list still loads.
  EXPECT_NO_THROW(load(state("  memory: { path: \"\" }\n")));
}

TEST_F(StateTest, MemoryPathResolvesAgainstThePolicyFolder) {
  std::filesystem::create_directories(dir_ / "state");
  std::vector<Diagnostic> warnings;
  const Policy policy = load(state("  memory:\n    path: state/portcullis.db\n"), &warnings);
  EXPECT_EQ(policy.state.memory_path, (dir_ / "state/portcullis.db").string());
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(policy.state.location.line, 6);
  EXPECT_EQ(
      load(state("  memory: { path: " + (dir_ / "abs.db").string() + " }\n")).state.memory_path,
      (dir_ / "abs.db").string());
}

TEST_F(StateTest, MemoryPathNeedsAnExistingFolderAndIsNotAFolder) {
  EXPECT_EQ(error(state("  memory:\n    path: missing/portcullis.db\n")),
            "policy.yaml:8:11: state.memory.path: folder '" + (dir_ / "missing").string() +
                "' does not exist");
  std::filesystem::create_directories(dir_ / "data");
  EXPECT_THAT(error(state("  memory:\n    path: data\n")),
              StartsWith("policy.yaml:8:11: state.memory.path: '"));
  EXPECT_THAT(error(state("  memory:\n    path: data\n")), HasSubstr("is a folder, not a file"));
  EXPECT_EQ(error(state("  memory:\n    path:\n")),
            "policy.yaml:8:5: state.memory.path: expected a string, got nothing (write \"\" for an "
            "empty value)");
  EXPECT_EQ(error(state("  memory:\n    file: x.db\n")),
            "policy.yaml:8:5: unknown key 'file' in state.memory");
}

TEST_F(StateTest, EnumsAndUnknownKeys) {
  EXPECT_EQ(error(state("  backend: disk\n")),
            "policy.yaml:7:12: state.backend: expected one of memory | redis, got 'disk'");
  EXPECT_EQ(error(state("  on_unavailable: open\n")),
            "policy.yaml:7:19: state.on_unavailable: expected one of fail_closed | fail_open, got "
            "'open'");
  EXPECT_EQ(load(state("  on_unavailable: fail_open\n")).state.on_unavailable,
            OnUnavailable::fail_open);
  EXPECT_EQ(error(state("  backnd: redis\n")),
            "policy.yaml:7:3: unknown key 'backnd' in state; did you mean 'backend'?");
  EXPECT_EQ(error(state("  redis: { uri: \"redis://h\" }\n")),
            "policy.yaml:7:12: unknown key 'uri' in state.redis; did you mean 'url'?");
  EXPECT_EQ(error(state("  memory: /var/lib/x.db\n")),
            "policy.yaml:7:11: state.memory: expected a mapping (key: value), got '/var/lib/x.db'");
}

TEST_F(StateTest, LocalMemoryAndTokenLifetime) {
  const Policy policy = load(state("  local_memory: 256MiB\n  max_token_lifetime: 12h\n"));
  EXPECT_EQ(policy.state.local_memory, 256u * 1024 * 1024);
  EXPECT_EQ(policy.state.max_token_lifetime, std::chrono::hours(12));
  EXPECT_EQ(error(state("  local_memory: 64KiB\n")),
            "policy.yaml:7:17: state.local_memory: at least 1MiB");
  EXPECT_EQ(error(state("  max_token_lifetime: 0s\n")),
            "policy.yaml:7:23: state.max_token_lifetime: must be greater than 0");
}

TEST_F(StateTest, RedisUrlIsSplit) {
  std::vector<Diagnostic> warnings;
  Policy policy = load(redis("redis://10.0.0.5:6380/3"), &warnings);
  const RedisSettings* settings = &policy.state.redis;
  EXPECT_EQ(policy.state.backend, StateBackendKind::redis);
  EXPECT_THAT(warnings, IsEmpty());  // redis keeps state outside the process
  EXPECT_EQ(settings->url, "redis://10.0.0.5:6380/3");
  EXPECT_FALSE(settings->tls);
  EXPECT_EQ(settings->host, "10.0.0.5");
  EXPECT_EQ(settings->port, 6380);
  EXPECT_EQ(settings->database, 3u);
  EXPECT_EQ(settings->user, "");
  EXPECT_EQ(settings->location.line, 9);
  EXPECT_EQ(settings->location.column, 10);

  policy = load(redis("rediss://cache.bank.internal"));
  settings = &policy.state.redis;
  EXPECT_TRUE(settings->tls);
  EXPECT_EQ(settings->host, "cache.bank.internal");
  EXPECT_EQ(settings->port, 6379);
  EXPECT_EQ(settings->database, 0u);

  policy = load(redis("redis://gateway@[::1]/2"));
  settings = &policy.state.redis;
  EXPECT_EQ(settings->user, "gateway");
  EXPECT_EQ(settings->host, "::1");
  EXPECT_EQ(settings->port, 6379);
  EXPECT_EQ(settings->database, 2u);

  EXPECT_EQ(load(redis("redis://h.example:7000/")).state.redis.port, 7000);
}

TEST_F(StateTest, BadRedisUrlsAreRefusedAtTheUrl) {
  const auto at_url = [](const std::string& rest) {
    return "policy.yaml:9:10: state.redis.url: " + rest;
  };
  // The password never appears in the message.
  EXPECT_EQ(error(redis("redis://gateway:s3cret@h/0")),
            at_url("'redis://gateway:***@h/0' holds a password; put it in password_file instead "
                   "(a URL ends up in logs)"));
  EXPECT_EQ(error(redis("rediss://:s3cret@h")),
            at_url("'rediss://:***@h' holds a password; put it in password_file instead (a URL "
                   "ends up in logs)"));
  EXPECT_EQ(error(redis("redis://u:p@ss@h")),
            at_url("'redis://u:***@h' holds a password; put it in password_file instead (a URL "
                   "ends up in logs)"));
  EXPECT_EQ(error(redis("http://h:6379")),
            at_url("'http://h:6379' must start with redis:// or rediss:// (TLS)"));
  EXPECT_EQ(error(redis("redis://")), at_url("'redis://' has no host"));
  EXPECT_THAT(error(redis("redis://h:0")), HasSubstr("has a bad host or port: 'h:0'"));
  EXPECT_THAT(error(redis("redis://h:99999")), HasSubstr("has a bad host or port"));
  EXPECT_THAT(error(redis("redis://::1")), HasSubstr("write IPv6 addresses in brackets"));
  EXPECT_EQ(error(redis("redis://h/x")),
            at_url("'redis://h/x' has a bad database number after '/': 'x'"));
  EXPECT_THAT(error(redis("redis://h/-1")), HasSubstr("bad database number"));
  EXPECT_THAT(error(redis("redis://h?db=1")), HasSubstr("has a query or fragment"));
  EXPECT_THAT(error(redis("redis://we ird@h")), HasSubstr("has a bad user name"));
}

TEST_F(StateTest, PasswordFileIsCheckedLikeTheAdminToken) {
  dir_.write("secrets/redis.password", "correct horse\n");
  dir_.write("secrets/blank", " \n");
  EXPECT_EQ(load(redis("redis://gateway@h", "    password_file: secrets/redis.password\n"))
                .state.redis.password_file,
            (dir_ / "secrets/redis.password").string());
  EXPECT_EQ(error(redis("redis://h", "    password_file: secrets/blank\n")),
            "policy.yaml:10:20: state.redis.password_file: '" + (dir_ / "secrets/blank").string() +
                "' is empty");
  EXPECT_THAT(error(redis("redis://h", "    password_file: secrets/absent\n")),
              AllOf(StartsWith("policy.yaml:10:20: state.redis.password_file: cannot read"),
                    HasSubstr("absent")));
}

TEST_F(StateTest, CaFileOnlyWithRediss) {
  const testing::Key key = testing::make_ec_key();
  dir_.write("redis-ca.pem", testing::self_signed_pem(key.get()));
  dir_.write("junk.pem", "junk");
  EXPECT_EQ(load(redis("rediss://h", "    ca_file: redis-ca.pem\n")).state.redis.ca_file,
            (dir_ / "redis-ca.pem").string());
  // The conflict points at ca_file and names the url's line.
  EXPECT_EQ(error(redis("redis://h", "    ca_file: redis-ca.pem\n")),
            "policy.yaml:10:14: state.redis.ca_file: only used with a rediss:// url (TLS); url is "
            "at line 9");
  EXPECT_EQ(error(state("  redis:\n    ca_file: redis-ca.pem\n")),
            "policy.yaml:8:14: state.redis.ca_file: only used with a rediss:// url (TLS); the "
            "default url is redis://");
  EXPECT_THAT(error(redis("rediss://h", "    ca_file: junk.pem\n")),
              HasSubstr("policy.yaml:10:14: state.redis.ca_file: no PEM certificate found"));
}

TEST_F(StateTest, KeyPrefixAndCommandTimeout) {
  const Policy policy =
      load(redis("redis://h", "    key_prefix: \"bank:gw:\"\n    command_timeout: 250ms\n"));
  EXPECT_EQ(policy.state.redis.key_prefix, "bank:gw:");
  EXPECT_EQ(policy.state.redis.command_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(error(redis("redis://h", "    key_prefix: \"\"\n")),
            "policy.yaml:10:17: state.redis.key_prefix: '' must be 1 to 64 visible ASCII "
            "characters without spaces");
  EXPECT_THAT(error(redis("redis://h", "    key_prefix: \"a b\"\n")),
              HasSubstr("must be 1 to 64 visible ASCII"));
  EXPECT_EQ(error(redis("redis://h", "    command_timeout: 0ms\n")),
            "policy.yaml:10:22: state.redis.command_timeout: must be greater than 0");
  EXPECT_EQ(error(redis("redis://h", "    command_timeout: 11s\n")),
            "policy.yaml:10:22: state.redis.command_timeout: at most 10s (a request may wait this "
            "long on Redis)");
}

}  // namespace
}  // namespace portcullis::config
