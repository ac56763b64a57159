#include "file_checks.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

#include "syntax.hpp"

namespace portcullis::config::files {
namespace {

namespace fs = std::filesystem;
using syntax::quote;

constexpr std::size_t kMaxFileBytes = 16 * 1024 * 1024;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// Never prompt on the terminal for a passphrase: a key must be usable unattended.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

BioPtr memory_bio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

bool is_end_of_pem(unsigned long error) {
  return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
}

// Every certificate of a PEM bundle, in order; empty with `error` set when there is none or one
// is damaged.
std::vector<X509Ptr> read_certificates(const std::string& pem, std::string& error) {
  std::vector<X509Ptr> certs;
  const BioPtr bio = memory_bio(pem);
  ERR_clear_error();
  while (true) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
    if (cert == nullptr) {
      const unsigned long reason = ERR_peek_last_error();
      ERR_clear_error();
      if (!certs.empty() && is_end_of_pem(reason)) break;
      error = certs.empty() ? "no PEM certificate found"
                            : "certificate " + std::to_string(certs.size() + 1) +
                                  " of the bundle is not a valid PEM certificate";
      certs.clear();
      return certs;
    }
    certs.emplace_back(cert);
  }
  return certs;
}

std::string openssl_reason() {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const char* reason = ERR_reason_error_string(error);
  return reason ? reason : "unknown reason";
}

}  // namespace

std::optional<std::string> read(const fs::path& path, std::string& error) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec) {
    error = "cannot read " + quote(path.string()) + ": " + ec.message();
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    error = quote(path.string()) + " is not a regular file";
    return std::nullopt;
  }
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    error = "cannot read " + quote(path.string()) + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string content;
  char buffer[8192];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    content.append(buffer, got);
    if (content.size() > kMaxFileBytes) {
      error = quote(path.string()) + " is too large";
      return std::nullopt;
    }
  }
  if (std::ferror(file.get())) {
    error = "cannot read " + quote(path.string()) + ": " + std::strerror(errno);
    return std::nullopt;
  }
  return content;
}

void check_certificate_pair(Reader& reader, const CertificateFiles& files, const Entry& cert_entry,
                            const Entry& key_entry) {
  std::string problem;
  X509Ptr leaf;
  if (const auto pem = read(files.cert_file, problem)) {
    auto chain = read_certificates(*pem, problem);
    if (chain.empty()) {
      reader.error(cert_entry, cert_entry.path + ": " + problem + " in " + quote(files.cert_file));
    } else {
      leaf = std::move(chain.front());
    }
  } else {
    reader.error(cert_entry, cert_entry.path + ": " + problem);
  }

  KeyPtr key;
  if (const auto pem = read(files.key_file, problem)) {
    const BioPtr bio = memory_bio(*pem);
    ERR_clear_error();
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    ERR_clear_error();
    if (!key) {
      const bool encrypted = pem->find("ENCRYPTED") != std::string::npos;
      reader.error(key_entry,
                   key_entry.path + ": " +
                       (encrypted ? "private key in " + quote(files.key_file) +
                                        " is encrypted; the gateway needs it without a "
                                        "passphrase"
                                  : "no PEM private key found in " + quote(files.key_file)));
    }
  } else {
    reader.error(key_entry, key_entry.path + ": " + problem);
  }
  if (!leaf || !key) return;

  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    reader.error(key_entry, key_entry.path + ": private key does not match the certificate in " +
                                quote(files.cert_file));
    return;
  }
  // Fail now, not when the listener starts, on certificates OpenSSL's security level refuses
  // (small keys, weak signature digests).
  const SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  ERR_clear_error();
  if (ctx && SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    reader.error(cert_entry,
                 cert_entry.path + ": certificate refused by OpenSSL: " + openssl_reason());
  }
}

void check_ca_bundle(Reader& reader, const std::string& path, const Entry& at) {
  std::string problem;
  const auto pem = read(path, problem);
  if (!pem) {
    reader.error(at, at.path + ": " + problem);
    return;
  }
  if (read_certificates(*pem, problem).empty()) {
    reader.error(at, at.path + ": " + problem + " in " + quote(path));
  }
}

void check_secret_file(Reader& reader, const std::string& path, const Entry& at) {
  std::string problem;
  const auto secret = read(path, problem);
  if (!secret) {
    reader.error(at, at.path + ": " + problem);
    return;
  }
  const bool blank = std::all_of(secret->begin(), secret->end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
  if (blank) reader.error(at, at.path + ": " + quote(path) + " is empty");
}

void check_nonempty_file(Reader& reader, const std::string& path, const Entry& at) {
  std::string problem;
  const auto content = read(path, problem);
  if (!content) {
    reader.error(at, at.path + ": " + problem);
  } else if (content->empty()) {
    reader.error(at, at.path + ": " + quote(path) + " is empty");
  }
}

void check_readable_file(Reader& reader, const std::string& path, const Entry& at) {
  std::string problem;
  if (!read(path, problem)) reader.error(at, at.path + ": " + problem);
}

void check_writable_target(Reader& reader, const std::string& target, const Entry& at) {
  const fs::path path(target);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    reader.error(at, at.path + ": " + quote(target) + " is a folder, not a file");
    return;
  }
  const auto folder = path.parent_path();
  if (!fs::is_directory(folder, ec)) {
    reader.error(at, at.path + ": folder " + quote(folder.string()) + " does not exist");
  }
}

bool cipher_list_known(const std::string& ciphers) {
  const SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  ERR_clear_error();
  const bool known = !ctx || SSL_CTX_set_cipher_list(ctx.get(), ciphers.c_str()) == 1;
  ERR_clear_error();
  return known;
}

}  // namespace portcullis::config::files
