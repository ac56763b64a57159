#pragma once
// Helpers for the config tests: a scratch folder, PEM keys and certificates made with OpenSSL,
// and shortcuts that load a policy text and return its diagnostics.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"

namespace portcullis::config::testing {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "portcullis-config-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  fs::path operator/(const fs::path& relative) const { return path_ / relative; }

  // Writes `content` to `relative` (folders created as needed) and returns the absolute path.
  fs::path write(const fs::path& relative, const std::string& content) const {
    const fs::path target = path_ / relative;
    fs::create_directories(target.parent_path());
    std::ofstream out(target, std::ios::binary);
    out << content;
    return target;
  }

 private:
  fs::path path_;
};

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

inline Key make_ec_key() {
  return Key(EVP_EC_gen("P-256"));
}
inline Key make_rsa_key(unsigned bits) {
  return Key(EVP_RSA_gen(bits));
}

inline std::string key_pem(EVP_PKEY* key, const char* passphrase = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (passphrase) {
    PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), passphrase,
                                  static_cast<int>(std::strlen(passphrase)), nullptr, nullptr);
  } else {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  return pem;
}

// A self-signed certificate for `key`, valid for a day, as PEM.
inline std::string self_signed_pem(EVP_PKEY* key, const char* common_name = "localhost") {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 60 * 60);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  X509_free(cert);
  return pem;
}

// Writes a matching key and certificate to `cert` and `key` under `dir`.
inline void write_key_pair(const TempDir& dir, const fs::path& cert, const fs::path& key) {
  const Key pair = make_ec_key();
  dir.write(cert, self_signed_pem(pair.get()));
  dir.write(key, key_pem(pair.get()));
}

// The smallest policy that loads without any file: one plain listener that only redirects.
inline const char* const kMinimal = R"(version: 1
server:
  listen:
    - address: "127.0.0.1:0"
      redirect_https: true
)";

// Loads `text` as if it were `dir/policy.yaml`; returns every diagnostic as "FILE:L:C: message"
// with FILE shortened to "policy.yaml", or an empty list when the policy loaded.
inline std::vector<std::string> diagnostics_of(const std::string& text, const fs::path& folder) {
  try {
    (void)load_policy_text(text, folder / "policy.yaml");
  } catch (const PolicyError& error) {
    std::vector<std::string> lines;
    for (auto diagnostic : error.diagnostics()) {
      diagnostic.file = fs::path(diagnostic.file).filename().string();
      lines.push_back(diagnostic.to_string());
    }
    return lines;
  }
  return {};
}

}  // namespace portcullis::config::testing
