#pragma once
// The redis module: an Asio-native Redis client for the shared security state (denylist, bans,
// rate limits of a fleet). hiredis is used only for RESP (encoding and parsing); the transport is
// the gateway's own io::Stream, plain TCP or TLS through the same OpenSSL as the upstreams.
// This header: how to reach one Redis server.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace portcullis::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";  // an IP literal, or a name resolved asynchronously
  std::uint16_t port = 6379;

  bool tls = false;         // rediss://
  std::string ca_file;      // CA bundle verifying the server; empty = the system trust store
  std::string server_name;  // name verified in the certificate (and SNI); empty = host

  std::string user;      // empty = AUTH with the password only (the "default" user)
  std::string password;  // read by the owner from password_file; empty = no AUTH
  int database = 0;      // SELECT on every (re)connect

  // No caller waits longer than this for a reply; a command that misses it marks the connection
  // broken (it is closed and reconnected).
  std::chrono::milliseconds command_timeout{50};
  // TCP connect, TLS handshake, AUTH and SELECT together.
  std::chrono::milliseconds connect_timeout{2000};
  // Commands queued or awaiting a reply on one connection; a command over it fails at once with
  // Status::overloaded.
  std::size_t max_in_flight = 4096;
  // Prepended to every key the gateway writes (see Connection::key).
  std::string key_prefix = "portcullis:";

  // Reconnect waits: full jitter, uniform in [0, min(backoff_max, backoff_min * 2^attempt)].
  std::chrono::milliseconds backoff_min{50};
  std::chrono::milliseconds backoff_max{2000};
  // An idle connection sends PING this often (a missed reply breaks it like any command).
  std::chrono::milliseconds health_interval{1000};
  // The largest reply accepted (bytes of strings plus per-element overhead); more is a protocol
  // error and the connection is reset, before the memory is committed.
  std::size_t max_reply_bytes = 64 * 1024 * 1024;
};

}  // namespace portcullis::redis
