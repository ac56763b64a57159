#include "portcullis/io/tls_context.hpp"
#include "portcullis/core/text.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

namespace portcullis::io {
namespace {

// TLS 1.2: forward secrecy and authenticated encryption only.
constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kSessionIdContext[] = "portcullis";

int ticket_keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

[[noreturn]] void fail(const config::Location& location, const std::string& what) {
  throw TlsSetupError(location.file + ":" + std::to_string(location.line) + ":" +
                      std::to_string(location.column) + ": " + what + ": " + openssl_errors());
}

int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                  EVP_MAC_CTX* mac, int encrypt) {
  auto* keys =
      static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_keys_index()));
  if (!keys) return -1;
  TicketKeys::Key key;
  bool is_current = true;
  if (encrypt) {
    key = keys->current();
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  } else if (!keys->find(key_name, key, is_current)) {
    return 0;  // unknown key: full handshake
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key.data(),
                                        key.hmac_key.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  // Fetched once: EVP_aes_256_cbc() would look the implementation up by name on every ticket.
  static EVP_CIPHER* const kTicketCipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  const int ok = encrypt
                     ? EVP_EncryptInit_ex(cipher, kTicketCipher, nullptr, key.aes_key.data(), iv)
                     : EVP_DecryptInit_ex(cipher, kTicketCipher, nullptr, key.aes_key.data(), iv);
  if (ok != 1) return -1;
  // 2 = valid, and issue a fresh ticket. Always on decryption: with TLS 1.3, OpenSSL sends no
  // new ticket on a resumed connection otherwise, which leaves the client holding a used ticket
  // (every other connection then needs a full handshake), and RFC 8446 advises against reusing
  // tickets since reuse links a client's connections.
  (void)is_current;
  return encrypt ? 1 : 2;
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
            unsigned int in_length, void*) {
  static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (unsigned int i = 0; i < in_length;) {
    const unsigned length = in[i];
    if (i + 1 + length > in_length) break;
    if (length == sizeof kHttp11 && std::memcmp(in + i + 1, kHttp11, length) == 0) {
      *out = in + i + 1;
      *out_length = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + length;
  }
  return SSL_TLSEXT_ERR_NOACK;  // no ALPN agreed; the connection still speaks HTTP/1.1
}

std::vector<std::string> certificate_names(SSL_CTX* ctx) {
  std::vector<std::string> names;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (!cert) return names;
  auto* alt_names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (alt_names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names, i);
      if (name->type != GEN_DNS) continue;
      const auto* data = ASN1_STRING_get0_data(name->d.dNSName);
      names.push_back(core::ascii_lowercase(
          std::string(reinterpret_cast<const char*>(data), ASN1_STRING_length(name->d.dNSName))));
    }
    GENERAL_NAMES_free(alt_names);
  }
  if (names.empty()) {
    char common_name[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, common_name,
                                  sizeof common_name) > 0) {
      names.push_back(core::ascii_lowercase(common_name));
    }
  }
  return names;
}

bool name_matches(std::string_view pattern, std::string_view host) {
  if (pattern == host) return true;
  if (pattern.size() > 2 && pattern.starts_with("*.")) {
    const auto dot = host.find('.');
    return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
  }
  return false;
}

bool is_ip_literal(const std::string& host) {
  return host.find(':') != std::string::npos || std::all_of(host.begin(), host.end(), [](char c) {
           return (c >= '0' && c <= '9') || c == '.';
         });
}

}  // namespace

// ---- TicketKeys -----------------------------------------------------------------------------

TicketKeys::TicketKeys(std::chrono::seconds rotation) : rotation_(rotation) {
  rotate_locked(std::chrono::steady_clock::now());
  has_previous_ = false;
}

void TicketKeys::rotate_locked(std::chrono::steady_clock::time_point now) {
  previous_ = current_;
  has_previous_ = true;
  RAND_bytes(current_.name.data(), static_cast<int>(current_.name.size()));
  RAND_bytes(current_.aes_key.data(), static_cast<int>(current_.aes_key.size()));
  RAND_bytes(current_.hmac_key.data(), static_cast<int>(current_.hmac_key.size()));
  rotated_at_ = now;
}

TicketKeys::Key TicketKeys::current() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - rotated_at_ >= rotation_) rotate_locked(now);
  return current_;
}

bool TicketKeys::find(const unsigned char* name, Key& key, bool& is_current) {
  std::lock_guard lock(mutex_);
  if (std::memcmp(name, current_.name.data(), current_.name.size()) == 0) {
    key = current_;
    is_current = true;
    return true;
  }
  if (has_previous_ && std::memcmp(name, previous_.name.data(), previous_.name.size()) == 0) {
    key = previous_;
    is_current = false;
    return true;
  }
  return false;
}

// ---- ServerTlsContext -------------------------------------------------------------------------

ServerTlsContext::ServerTlsContext(const config::ListenerTls& settings,
                                   const config::Location& location,
                                   std::shared_ptr<TicketKeys> ticket_keys)
    : ticket_keys_(std::move(ticket_keys)) {
  try {
    for (const auto& files : settings.certificates) {
      SSL_CTX* ctx = make_ctx(files, settings, location);
      certificates_.push_back({ctx, certificate_names(ctx)});
    }
  } catch (...) {
    for (auto& certificate : certificates_)
      SSL_CTX_free(certificate.ctx);
    throw;
  }
  if (certificates_.size() > 1) {
    SSL_CTX_set_tlsext_servername_callback(certificates_.front().ctx, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(certificates_.front().ctx, this);
  }
}

ServerTlsContext::~ServerTlsContext() {
  for (auto& certificate : certificates_)
    SSL_CTX_free(certificate.ctx);
}

SSL_CTX* ServerTlsContext::make_ctx(const config::CertificateFiles& files,
                                    const config::ListenerTls& settings,
                                    const config::Location& location) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) fail(location, "cannot create a TLS context");
  struct Guard {
    SSL_CTX*& ctx;
    ~Guard() {
      if (ctx) SSL_CTX_free(ctx);
    }
  } guard{ctx};

  const int min_version =
      settings.min_version == config::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One read() per TLS record instead of two (header, then body).
  SSL_CTX_set_read_ahead(ctx, 1);
  const std::string& ciphers = settings.ciphers.empty() ? kDefaultTls12Ciphers : settings.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) fail(location, "invalid ciphers");
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) fail(location, "cannot set key groups");
  const config::Location& cert_location = files.location.line ? files.location : location;
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1)
    fail(cert_location, "cannot load certificate " + files.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    fail(cert_location, "cannot load key " + files.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail(cert_location, "key does not match certificate " + files.cert_file);

  // Stateless resumption only: no per-session memory on the server.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_timeout(ctx, 2 * 3600);
  SSL_CTX_set_ex_data(ctx, ticket_keys_index(), ticket_keys_.get());
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);

  if (settings.client_auth != config::ClientAuth::none) {
    if (SSL_CTX_load_verify_locations(ctx, settings.client_ca.c_str(), nullptr) != 1)
      fail(location, "cannot load client_ca " + settings.client_ca);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca.c_str());
    if (!names) fail(location, "cannot read client_ca names from " + settings.client_ca);
    SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (settings.client_auth == config::ClientAuth::required)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    SSL_CTX_set_verify_depth(ctx, 8);
  }
  SSL_CTX* result = ctx;
  ctx = nullptr;
  return result;
}

int ServerTlsContext::on_server_name(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerTlsContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  const std::string host = core::ascii_lowercase(name);
  for (const auto& certificate : self->certificates_) {
    for (const auto& pattern : certificate.names) {
      if (name_matches(pattern, host)) {
        if (certificate.ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, certificate.ctx);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_OK;  // unknown name: the default certificate
}

SSL* ServerTlsContext::new_ssl() const {
  SSL* ssl = SSL_new(certificates_.front().ctx);
  if (ssl) SSL_set_accept_state(ssl);
  return ssl;
}

// ---- ClientTlsContext -------------------------------------------------------------------------

ClientTlsContext::ClientTlsContext(const config::UpstreamTls& settings,
                                   const config::Location& location)
    : server_name_(settings.server_name), verify_(settings.verify) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) fail(location, "cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_read_ahead(ctx_, 1);
  if (verify_) {
    const int loaded = settings.ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(ctx_)
                           : SSL_CTX_load_verify_locations(ctx_, settings.ca_file.c_str(), nullptr);
    if (loaded != 1) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
      fail(location, "cannot load upstream CA " + settings.ca_file);
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  }
}

ClientTlsContext::~ClientTlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

SSL* ClientTlsContext::new_ssl(const std::string& host) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  SSL_set_connect_state(ssl);
  const std::string& name = server_name_.empty() ? host : server_name_;
  if (!is_ip_literal(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (verify_) {
    if (is_ip_literal(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set1_host(ssl, name.c_str());
    }
  }
  return ssl;
}

std::string verified_peer_subject(SSL* ssl) {
  if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return {};
  char buffer[512] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof buffer);
  return buffer;
}

std::string_view tls_version_name(SSL* ssl) {
  return ssl ? SSL_get_version(ssl) : "";
}

std::string openssl_version() {
  return OpenSSL_version(OPENSSL_VERSION);
}

}  // namespace portcullis::io
