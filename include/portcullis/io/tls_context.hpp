#pragma once
// TLS configuration turned into OpenSSL contexts, once per policy. Servers offer TLS 1.2 and 1.3
// only, ECDHE with AEAD ciphers for 1.2 unless the policy lists others, ALPN http/1.1, SNI among
// several certificates (first is the default), stateless session resumption with ticket keys
// that rotate, and optional or required client certificates. Upstream contexts verify the
// upstream's certificate and name unless the policy says verify: false.

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "portcullis/config/policy.hpp"

namespace portcullis::io {

// Session-ticket encryption keys shared by every TLS listener of the process. A new key is made
// every rotation period; the previous one still decrypts (and its tickets are renewed), so a
// ticket lives at most two periods and a stolen key exposes a bounded window.
class TicketKeys {
 public:
  explicit TicketKeys(std::chrono::seconds rotation = std::chrono::hours(1));

  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes_key{};
    std::array<unsigned char, 32> hmac_key{};
  };
  // The key to encrypt new tickets with (rotating first if due).
  Key current();
  // The key for a ticket's key name, and whether it is the current one; false when unknown.
  bool find(const unsigned char* name, Key& key, bool& is_current);

 private:
  void rotate_locked(std::chrono::steady_clock::time_point now);

  std::mutex mutex_;
  std::chrono::seconds rotation_;
  std::chrono::steady_clock::time_point rotated_at_;
  Key current_;
  Key previous_;
  bool has_previous_ = false;
};

// Thrown when OpenSSL refuses a TLS setting; the message names the policy location.
class TlsSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ServerTlsContext {
 public:
  ServerTlsContext(const config::ListenerTls& settings, const config::Location& location,
                   std::shared_ptr<TicketKeys> ticket_keys);
  ~ServerTlsContext();
  ServerTlsContext(const ServerTlsContext&) = delete;
  ServerTlsContext& operator=(const ServerTlsContext&) = delete;

  // A new server-side SSL for one connection; the caller owns it.
  SSL* new_ssl() const;

 private:
  struct Certificate {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> names;  // lower-case DNS names from SAN (or CN), "*.x" wildcards
  };
  static int on_server_name(SSL* ssl, int* alert, void* self);
  SSL_CTX* make_ctx(const config::CertificateFiles& files, const config::ListenerTls& settings,
                    const config::Location& location);

  std::vector<Certificate> certificates_;
  std::shared_ptr<TicketKeys> ticket_keys_;
};

class ClientTlsContext {
 public:
  explicit ClientTlsContext(const config::UpstreamTls& settings, const config::Location& location);
  ~ClientTlsContext();
  ClientTlsContext(const ClientTlsContext&) = delete;
  ClientTlsContext& operator=(const ClientTlsContext&) = delete;

  // A new client-side SSL towards `host` (SNI and name verification use server_name when set).
  SSL* new_ssl(const std::string& host) const;

 private:
  SSL_CTX* ctx_ = nullptr;
  std::string server_name_;
  bool verify_ = true;
};

// The subject of the client certificate when one was presented and verified, else empty.
std::string verified_peer_subject(SSL* ssl);

// "TLSv1.3", "TLSv1.2", ...
std::string_view tls_version_name(SSL* ssl);

// The OpenSSL version this process runs on.
std::string openssl_version();

}  // namespace portcullis::io
