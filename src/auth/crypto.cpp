#include "crypto.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace portcullis::auth::detail {
namespace {

const EVP_MD* fetch_md(const char* name) {
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) throw std::runtime_error("OpenSSL has no digest " + std::string(name));
  return md;  // kept for the life of the process
}

EVP_MAC* hmac() {
  static EVP_MAC* const mac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (fetched == nullptr) throw std::runtime_error("OpenSSL has no HMAC");
    return fetched;
  }();
  return mac;
}

struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// The group order of each JOSE curve, for the r, s range check.
const BIGNUM* curve_order(Curve curve) {
  static const auto orders = [] {
    std::array<const BIGNUM*, 3> result{};
    const int nids[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
    for (std::size_t i = 0; i < 3; ++i) {
      EC_GROUP* group = EC_GROUP_new_by_curve_name(nids[i]);
      if (group == nullptr) throw std::runtime_error("OpenSSL lacks a NIST curve");
      result[i] = BN_dup(EC_GROUP_get0_order(group));  // kept for the life of the process
      EC_GROUP_free(group);
      if (result[i] == nullptr) throw std::runtime_error("out of memory");
    }
    return result;
  }();
  switch (curve) {
    case Curve::p256:
      return orders[0];
    case Curve::p384:
      return orders[1];
    case Curve::p521:
      return orders[2];
    default:
      return nullptr;
  }
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool verify_hmac(const EVP_MD* md, const Key& key, std::string_view input,
                 std::string_view signature) {
  const auto expected_size = static_cast<std::size_t>(EVP_MD_get_size(md));
  if (signature.size() != expected_size) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac());
  if (ctx == nullptr) return false;
  const char* digest_name = EVP_MD_get0_name(md);
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end()};
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  std::size_t mac_size = 0;
  const auto secret = key.secret();
  const bool computed = EVP_MAC_init(ctx, secret.data(), secret.size(), params) == 1 &&
                        EVP_MAC_update(ctx, bytes(input), input.size()) == 1 &&
                        EVP_MAC_final(ctx, mac.data(), &mac_size, mac.size()) == 1;
  EVP_MAC_CTX_free(ctx);
  // Constant time: the comparison must not tell an attacker how many leading bytes matched.
  const bool equal = computed && mac_size == expected_size &&
                     CRYPTO_memcmp(mac.data(), signature.data(), expected_size) == 0;
  OPENSSL_cleanse(mac.data(), mac.size());
  return equal;
}

// JOSE ECDSA signatures are R || S, each exactly the field length; OpenSSL wants DER. Values
// outside 1..order-1 are refused here rather than trusted to the DER path.
bool ecdsa_jose_to_der(Curve curve, std::string_view signature, unsigned char* out,
                       std::size_t out_size, std::size_t& der_size) {
  const std::size_t n = curve == Curve::ed25519 ? 0 : curve_field_bytes(curve);
  const BIGNUM* order = curve_order(curve);
  if (n == 0 || order == nullptr || signature.size() != 2 * n) return false;
  BnPtr r(BN_bin2bn(bytes(signature), static_cast<int>(n), nullptr));
  BnPtr s(BN_bin2bn(bytes(signature) + n, static_cast<int>(n), nullptr));
  if (!r || !s) return false;
  if (BN_is_zero(r.get()) || BN_is_zero(s.get()) || BN_cmp(r.get(), order) >= 0 ||
      BN_cmp(s.get(), order) >= 0)
    return false;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) return false;
  if (ECDSA_SIG_set0(sig, r.get(), s.get()) != 1) {
    ECDSA_SIG_free(sig);
    return false;
  }
  r.release();  // now owned by sig
  s.release();
  const int size = i2d_ECDSA_SIG(sig, nullptr);
  bool ok = size > 0 && static_cast<std::size_t>(size) <= out_size;
  if (ok) {
    unsigned char* cursor = out;
    ok = i2d_ECDSA_SIG(sig, &cursor) == size;
    der_size = static_cast<std::size_t>(size);
  }
  ECDSA_SIG_free(sig);
  return ok;
}

bool verify_evp(Algorithm algorithm, const Key& key, std::string_view input,
                std::string_view signature) {
  EVP_PKEY* pkey = key.public_key();
  if (pkey == nullptr) return false;
  const EVP_MD* md = digest_for(algorithm);

  std::array<unsigned char, 160> der{};
  const unsigned char* sig_bytes = bytes(signature);
  std::size_t sig_size = signature.size();
  switch (algorithm) {
    case Algorithm::rs256:
    case Algorithm::rs384:
    case Algorithm::rs512:
    case Algorithm::ps256:
    case Algorithm::ps384:
    case Algorithm::ps512:
      if (sig_size != static_cast<std::size_t>(EVP_PKEY_get_size(pkey))) return false;
      break;
    case Algorithm::es256:
    case Algorithm::es384:
    case Algorithm::es512:
      if (!ecdsa_jose_to_der(key.curve(), signature, der.data(), der.size(), sig_size))
        return false;
      sig_bytes = der.data();
      break;
    case Algorithm::eddsa:
      if (sig_size != 64) return false;
      break;
    default:
      return false;
  }

  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) return false;
  if (algorithm == Algorithm::ps256 || algorithm == Algorithm::ps384 ||
      algorithm == Algorithm::ps512) {
    // RFC 7518 3.5: MGF1 with the same hash, salt exactly as long as the hash.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
      return false;
  } else if (key.type() == KeyType::rsa) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) return false;
  }
  return EVP_DigestVerify(ctx.get(), sig_bytes, sig_size, bytes(input), input.size()) == 1;
}

}  // namespace

const EVP_MD* sha256() {
  static const EVP_MD* const md = fetch_md("SHA256");
  return md;
}
const EVP_MD* sha384() {
  static const EVP_MD* const md = fetch_md("SHA384");
  return md;
}
const EVP_MD* sha512() {
  static const EVP_MD* const md = fetch_md("SHA512");
  return md;
}

const EVP_MD* digest_for(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::rs256:
    case Algorithm::ps256:
    case Algorithm::es256:
    case Algorithm::hs256:
      return sha256();
    case Algorithm::rs384:
    case Algorithm::ps384:
    case Algorithm::es384:
    case Algorithm::hs384:
      return sha384();
    case Algorithm::rs512:
    case Algorithm::ps512:
    case Algorithm::es512:
    case Algorithm::hs512:
      return sha512();
    case Algorithm::eddsa:
      return nullptr;
  }
  return nullptr;
}

Sha256Builder::Sha256Builder() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 unavailable");
}

void Sha256Builder::add(const std::uint8_t* data, std::size_t size) {
  std::array<std::uint8_t, 8> length{};
  for (std::size_t i = 0; i < 8; ++i)
    length[i] = static_cast<std::uint8_t>(size >> (56 - 8 * i));
  EVP_DigestUpdate(ctx_.get(), length.data(), length.size());
  if (size > 0) EVP_DigestUpdate(ctx_.get(), data, size);
}

void Sha256Builder::add(std::string_view field) {
  add(reinterpret_cast<const std::uint8_t*>(field.data()), field.size());
}

Sha256Digest Sha256Builder::finish() {
  Sha256Digest digest{};
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest.data(), &size);
  return digest;
}

bool verify_signature(Algorithm algorithm, const Key& key, std::string_view signing_input,
                      std::string_view signature) {
  bool ok = false;
  if (!key.can_verify(algorithm)) {
    ok = false;  // the caller checked; checked again because this is the last line of defence
  } else if (is_symmetric(algorithm)) {
    ok = key.type() == KeyType::oct &&
         verify_hmac(digest_for(algorithm), key, signing_input, signature);
  } else {
    ok = key.type() != KeyType::oct && verify_evp(algorithm, key, signing_input, signature);
  }
  if (!ok) ERR_clear_error();
  return ok;
}

}  // namespace portcullis::auth::detail
