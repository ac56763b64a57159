#pragma once
// Test-only JWT signing: keys generated in-process, their public JWKs, and a signer for every
// algorithm the verifier accepts (plus the raw pieces needed to forge malformed tokens).

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>

#include <chrono>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/auth/algorithm.hpp"
#include "portcullis/auth/jwks.hpp"
#include "portcullis/core/reason.hpp"

namespace portcullis::core {
// Readable reason names in test failure messages.
inline void PrintTo(Reason reason, std::ostream* os) {
  *os << to_string(reason);
}
}  // namespace portcullis::core

namespace portcullis::auth::testing {

namespace json = boost::json;

// Concatenation by append (GCC 12 warns spuriously about `"literal" + std::string`).
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

inline std::string b64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

inline std::string b64url(const json::object& object) {
  return b64url(json::serialize(object));
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

// A signing key: an asymmetric key pair, or an HMAC secret.
struct TestKey {
  std::shared_ptr<EVP_PKEY> pkey;  // null for a secret
  std::string secret;
  std::string kid;
  std::string curve;  // "P-256" ... for EC
};

inline TestKey adopt(EVP_PKEY* pkey, std::string kid, std::string curve = {}) {
  if (pkey == nullptr) throw std::runtime_error("key generation failed");
  return TestKey{
      std::shared_ptr<EVP_PKEY>(pkey, PkeyDeleter{}), {}, std::move(kid), std::move(curve)};
}

inline TestKey make_rsa(std::string kid, std::size_t bits = 2048) {
  return adopt(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits), std::move(kid));
}

inline TestKey make_ec(std::string kid, const std::string& curve) {
  return adopt(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve.c_str()), std::move(kid), curve);
}

inline TestKey make_ed25519(std::string kid) {
  return adopt(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), std::move(kid));
}

inline TestKey make_secret(std::string kid, std::size_t size = 64) {
  TestKey key;
  key.secret.resize(size);
  RAND_bytes(reinterpret_cast<unsigned char*>(key.secret.data()), static_cast<int>(size));
  key.kid = std::move(kid);
  return key;
}

inline std::string bn_bytes(EVP_PKEY* pkey, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) throw std::runtime_error(name);
  std::string out(pad > 0 ? static_cast<std::size_t>(pad) : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

inline int ec_field_bytes(const std::string& curve) {
  return curve == "P-256" ? 32 : curve == "P-384" ? 48 : 66;
}

// The public JWK of `key` (the JWK of a secret is an oct key with k).
inline json::object public_jwk(const TestKey& key, std::string_view alg = {}) {
  json::object jwk;
  if (!key.pkey) {
    jwk["kty"] = "oct";
    jwk["k"] = b64url(key.secret);
  } else if (EVP_PKEY_is_a(key.pkey.get(), "RSA")) {
    jwk["kty"] = "RSA";
    jwk["n"] = b64url(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N));
    jwk["e"] = b64url(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E));
  } else if (EVP_PKEY_is_a(key.pkey.get(), "EC")) {
    const int size = ec_field_bytes(key.curve);
    jwk["kty"] = "EC";
    jwk["crv"] = key.curve;
    jwk["x"] = b64url(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, size));
    jwk["y"] = b64url(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, size));
  } else {
    std::string raw(32, '\0');
    std::size_t size = raw.size();
    EVP_PKEY_get_raw_public_key(key.pkey.get(), reinterpret_cast<unsigned char*>(raw.data()),
                                &size);
    jwk["kty"] = "OKP";
    jwk["crv"] = "Ed25519";
    jwk["x"] = b64url(raw);
  }
  if (!key.kid.empty()) jwk["kid"] = key.kid;
  if (!alg.empty()) jwk["alg"] = alg;
  return jwk;
}

inline std::string jwks_text(const std::vector<json::object>& jwks) {
  json::array keys;
  for (const auto& jwk : jwks)
    keys.push_back(jwk);
  return json::serialize(json::object{{"keys", keys}});
}

inline std::shared_ptr<const KeySet> key_set(const std::vector<json::object>& jwks) {
  auto load = KeySet::from_jwks(jwks_text(jwks));
  if (!load.ok()) throw std::runtime_error(load.errors.front());
  return load.keys;
}

inline const EVP_MD* md_for(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::rs256:
    case Algorithm::ps256:
    case Algorithm::es256:
    case Algorithm::hs256:
      return EVP_sha256();
    case Algorithm::rs384:
    case Algorithm::ps384:
    case Algorithm::es384:
    case Algorithm::hs384:
      return EVP_sha384();
    case Algorithm::eddsa:
      return nullptr;
    default:
      return EVP_sha512();
  }
}

// The JOSE signature of `input`: raw R || S for ECDSA, salt = hash length for PSS.
inline std::string sign(Algorithm algorithm, const TestKey& key, std::string_view input) {
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (is_symmetric(algorithm)) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(md_for(algorithm), key.secret.data(), static_cast<int>(key.secret.size()), data,
         input.size(), mac, &size);
    return std::string(reinterpret_cast<char*>(mac), size);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx, &pctx, md_for(algorithm), nullptr, key.pkey.get()) != 1)
    throw std::runtime_error("sign init");
  if (algorithm == Algorithm::ps256 || algorithm == Algorithm::ps384 ||
      algorithm == Algorithm::ps512) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  std::size_t size = 0;
  EVP_DigestSign(ctx, nullptr, &size, data, input.size());
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size, data,
                     input.size()) != 1)
    throw std::runtime_error("sign");
  EVP_MD_CTX_free(ctx);
  signature.resize(size);
  if (algorithm != Algorithm::es256 && algorithm != Algorithm::es384 &&
      algorithm != Algorithm::es512)
    return signature;
  // DER -> JOSE R || S
  const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
  const int n = ec_field_bytes(key.curve);
  std::string raw(2 * static_cast<std::size_t>(n), '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), n);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + n, n);
  ECDSA_SIG_free(sig);
  return raw;
}

// header.payload.signature with the header's alg (and kid, unless the header has one or the key
// has none) filled in.
inline std::string make_token(Algorithm algorithm, const TestKey& key, json::object payload,
                              json::object header = {}) {
  if (!header.contains("alg")) header["alg"] = to_string(algorithm);
  if (!header.contains("kid") && !key.kid.empty()) header["kid"] = key.kid;
  const std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(algorithm, key, input));
}

// A token assembled from raw JSON text (for duplicate members, odd spacing and the like).
inline std::string make_raw_token(Algorithm algorithm, const TestKey& key,
                                  std::string_view header_json, std::string_view payload_json) {
  const std::string input = b64url(header_json) + "." + b64url(payload_json);
  return input + "." + b64url(sign(algorithm, key, input));
}

inline constexpr std::int64_t kNow = 1'700'000'000;
inline std::chrono::system_clock::time_point at(std::int64_t seconds) {
  return std::chrono::system_clock::time_point{std::chrono::seconds{seconds}};
}
inline const auto kNowTime = at(kNow);

inline constexpr std::string_view kIssuer = "https://idp.bank.example";
inline constexpr std::string_view kAudience = "core-banking";

// Claims that pass the default test provider at kNow.
inline json::object good_claims() {
  return json::object{{"iss", kIssuer},   {"aud", kAudience},
                      {"sub", "alice"},   {"exp", kNow + 600},
                      {"iat", kNow - 10}, {"nbf", kNow - 10},
                      {"jti", "token-1"}, {"scope", "accounts:read payments:write"}};
}

// Keys shared by all tests of the binary (RSA generation is slow, so once).
struct SharedKeys {
  TestKey rsa = make_rsa("rsa-1");
  TestKey rsa_same_kid = make_rsa("rsa-1");  // a different key claiming the same kid
  TestKey ec256 = make_ec("ec-256", "P-256");
  TestKey ec384 = make_ec("ec-384", "P-384");
  TestKey ec521 = make_ec("ec-521", "P-521");
  TestKey ed = make_ed25519("ed-1");
  TestKey attacker_ec = make_ec("attacker", "P-256");
  TestKey secret = make_secret("hmac-1", 64);
};

inline const SharedKeys& keys() {
  static const SharedKeys shared;
  return shared;
}

// The configured JWKS of the asymmetric test provider.
inline std::shared_ptr<const KeySet> provider_keys() {
  static const auto set =
      key_set({public_jwk(keys().rsa), public_jwk(keys().ec256), public_jwk(keys().ec384),
               public_jwk(keys().ec521), public_jwk(keys().ed)});
  return set;
}

}  // namespace portcullis::auth::testing
