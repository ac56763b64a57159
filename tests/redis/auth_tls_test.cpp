#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "portcullis/redis/connection.hpp"
#include "redis/redis_server.hpp"

namespace portcullis::redis {
namespace {

using namespace test;

class Fixture : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& connection : connections_)
      connection->stop();
    run_until(
        io_, [] { return false; }, 20ms);
  }
  std::shared_ptr<Connection> open(RedisOptions options) {
    auto connection = Connection::create(io_.get_executor(), std::move(options));
    connection->start();
    connections_.push_back(connection);
    return connection;
  }
  bool becomes_ready(Connection& connection, std::chrono::milliseconds limit = 5s) {
    return run_until(
        io_, [&] { return connection.ready(); }, limit);
  }
  // Gives a connection that should never get ready some attempts to try.
  bool stays_unready(Connection& connection) {
    return !run_until(
        io_, [&] { return connection.ready(); }, 800ms);
  }
  Reply execute(Connection& connection, Command command) {
    return run(io_, connection.execute(std::move(command)));
  }
  RedisOptions plain(std::uint16_t port) {
    RedisOptions options;
    options.port = port;
    options.command_timeout = 2s;
    options.backoff_max = 100ms;
    return options;
  }

  asio::io_context io_;
  std::vector<std::shared_ptr<Connection>> connections_;
};

using AuthTest = Fixture;

TEST_F(AuthTest, AnAclUserWithItsPasswordAndAWrongPasswordRefused) {
  RedisServer server;
  server.start();
  auto admin = open(plain(server.port()));
  ASSERT_TRUE(becomes_ready(*admin));
  ASSERT_TRUE(execute(*admin, make_command("ACL", "SETUSER", "gateway", "on", ">s3cret-pass",
                                           "~portcullis:*", "+@all"))
                  .ok());
  // The default user now needs a password too: anonymous connections are refused.
  ASSERT_TRUE(execute(*admin, make_command("CONFIG", "SET", "requirepass", "admin-pass")).ok());

  auto options = plain(server.port());
  options.user = "gateway";
  options.password = "s3cret-pass";
  auto gateway = open(options);
  ASSERT_TRUE(becomes_ready(*gateway)) << gateway->last_error();
  const auto who = execute(*gateway, make_command("ACL", "WHOAMI"));
  EXPECT_EQ(who.value.string, "gateway");
  EXPECT_TRUE(execute(*gateway, make_command("SET", "portcullis:k", "v")).ok());
  EXPECT_TRUE(execute(*gateway, make_command("SET", "elsewhere", "v")).is_error("NOPERM"));

  options.password = "wrong";
  auto refused = open(options);
  EXPECT_TRUE(stays_unready(*refused));
  EXPECT_NE(refused->last_error().find("WRONGPASS"), std::string::npos) << refused->last_error();
  EXPECT_EQ(refused->last_error().find("wrong"), std::string::npos);  // no secret in the text
  EXPECT_EQ(execute(*refused, make_command("PING")).status, Status::disconnected);

  // AUTH with the password alone authenticates the default user.
  auto password_only = plain(server.port());
  password_only.password = "admin-pass";
  auto fallback = open(password_only);
  ASSERT_TRUE(becomes_ready(*fallback)) << fallback->last_error();
  EXPECT_EQ(execute(*fallback, make_command("ACL", "WHOAMI")).value.string, "default");
  auto anonymous = open(plain(server.port()));
  EXPECT_TRUE(stays_unready(*anonymous));
}

// A CA and a server certificate for 127.0.0.1 and "redis.test", made with the openssl CLI.
struct Pki {
  explicit Pki(const std::string& dir) : dir(dir) {
    const std::string quiet = " >/dev/null 2>&1";
    auto make_ca = [&](const std::string& name) {
      return run_command(
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
          "-days 2 -subj /CN=" +
          name + " -keyout " + dir + "/" + name + ".key -out " + dir + "/" + name + ".crt" + quiet);
    };
    ok = make_ca("ca") == 0 && make_ca("other-ca") == 0 &&
         run_command("printf 'subjectAltName=IP:127.0.0.1,DNS:redis.test\\n' > " + dir +
                     "/san.ext") == 0 &&
         run_command(
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=redis.test -keyout " +
             dir + "/server.key -out " + dir + "/server.csr" + quiet) == 0 &&
         run_command("openssl x509 -req -in " + dir + "/server.csr -CA " + dir + "/ca.crt -CAkey " +
                     dir + "/ca.key -CAcreateserial -days 2 -extfile " + dir + "/san.ext -out " +
                     dir + "/server.crt" + quiet) == 0;
  }
  std::string dir;
  bool ok = false;
};

using TlsTest = Fixture;

TEST_F(TlsTest, RedissVerifiesTheServerAndRefusesAnotherCaOrName) {
  RedisServer server;
  Pki pki(server.dir());
  ASSERT_TRUE(pki.ok) << "openssl could not make the test certificates";
  const auto tls_port = free_port();
  server.set_extra({"--tls-port", std::to_string(tls_port), "--tls-cert-file",
                    server.dir() + "/server.crt", "--tls-key-file", server.dir() + "/server.key",
                    "--tls-ca-cert-file", server.dir() + "/ca.crt", "--tls-auth-clients", "no"});
  server.start();

  auto options = plain(tls_port);
  options.tls = true;
  options.ca_file = server.dir() + "/ca.crt";
  auto secure = open(options);
  ASSERT_TRUE(becomes_ready(*secure)) << secure->last_error();
  // Pipelined over TLS: the reader and the writer share the TLS session.
  int finished = 0;
  std::vector<std::int64_t> got(300, -1);
  for (int i = 0; i < 300; ++i) {
    asio::co_spawn(
        io_,
        [&, i]() -> asio::awaitable<void> {
          const auto reply = co_await secure->execute(make_command("INCR", "tls-counter"));
          got[i] = reply.ok() ? reply.value.integer : -2;
          ++finished;
        },
        asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] { return finished == 300; }));
  for (int i = 0; i < 300; ++i)
    ASSERT_EQ(got[i], i + 1);
  const auto big = std::string(200 * 1024, 'y');  // many TLS records each way
  ASSERT_TRUE(execute(*secure, make_command("SET", "big", big)).ok());
  EXPECT_EQ(execute(*secure, make_command("GET", "big")).value.string, big);

  // The name verified may be given apart from the address connected to.
  auto by_name = options;
  by_name.server_name = "redis.test";
  auto named = open(by_name);
  EXPECT_TRUE(becomes_ready(*named)) << named->last_error();

  auto wrong_ca = options;
  wrong_ca.ca_file = server.dir() + "/other-ca.crt";
  auto refused = open(wrong_ca);
  EXPECT_TRUE(stays_unready(*refused));
  EXPECT_NE(refused->last_error().find("TLS"), std::string::npos) << refused->last_error();

  auto wrong_name = options;
  wrong_name.server_name = "other.test";
  auto misnamed = open(wrong_name);
  EXPECT_TRUE(stays_unready(*misnamed));

  auto plaintext = plain(tls_port);  // plain TCP to the TLS port never gets ready
  auto confused = open(plaintext);
  EXPECT_TRUE(stays_unready(*confused));
}

TEST(TlsOptions, AMissingCaFileIsAConfigurationError) {
  asio::io_context io;
  RedisOptions options;
  options.tls = true;
  options.ca_file = "/nonexistent/ca.crt";
  EXPECT_THROW(Connection::create(io.get_executor(), options), std::exception);
}

}  // namespace
}  // namespace portcullis::redis
