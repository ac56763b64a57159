// JWT verification cost per algorithm: cold (a full verification: parse, key selection, signature,
// claims) and cached (SHA-256 of the token plus a sharded cache lookup), as the gateway pays them
// for a first and a repeated token.

#include <benchmark/benchmark.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "portcullis/auth/token_cache.hpp"
#include "portcullis/auth/verifier.hpp"

namespace {

using namespace portcullis::auth;
namespace json = boost::json;

std::string b64url(std::string_view bytes) {
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

std::string bn_param(EVP_PKEY* key, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key, name, &bn);
  std::string out(pad > 0 ? static_cast<std::size_t>(pad) : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

// One signing key with its JWK, and a token it signed.
struct Fixture {
  Algorithm algorithm;
  std::shared_ptr<const KeySet> keys;
  std::string token;
};

std::string sign(Algorithm algorithm, EVP_PKEY* key, const std::string& secret,
                 const std::string& input) {
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (algorithm == Algorithm::hs256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), data, input.size(), mac,
         &size);
    return std::string(reinterpret_cast<char*>(mac), size);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestSignInit(ctx, &pctx, algorithm == Algorithm::eddsa ? nullptr : EVP_sha256(), nullptr,
                     key);
  if (algorithm == Algorithm::ps256) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  std::size_t size = 0;
  EVP_DigestSign(ctx, nullptr, &size, data, input.size());
  std::string sig(size, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &size, data, input.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(size);
  if (algorithm != Algorithm::es256) return sig;
  const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(ecdsa);
  return raw;
}

constexpr std::int64_t kNow = 1'700'000'000;

Fixture make_fixture(Algorithm algorithm) {
  EVP_PKEY* key = nullptr;
  std::string secret;
  json::object jwk{{"kid", "k1"}};
  switch (algorithm) {
    case Algorithm::rs256:
    case Algorithm::ps256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
      jwk["kty"] = "RSA";
      jwk["n"] = b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N));
      jwk["e"] = b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E));
      break;
    case Algorithm::es256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] = b64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32));
      jwk["y"] = b64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
      break;
    case Algorithm::eddsa: {
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      std::string raw(32, '\0');
      std::size_t size = raw.size();
      EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &size);
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = b64url(raw);
      break;
    }
    default:
      secret.resize(32);
      RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), 32);
      jwk["kty"] = "oct";
      jwk["k"] = b64url(secret);
      break;
  }
  const json::object header{{"alg", to_string(algorithm)}, {"typ", "JWT"}, {"kid", "k1"}};
  // A typical access token: standard claims, scopes, a couple of custom claims.
  const json::object claims{{"iss", "https://idp.bank.example"},
                            {"aud", json::array{"core-banking"}},
                            {"sub", "2f1c7a0e-5b7d-4a8e-9c61-0d4f3e2b1a99"},
                            {"exp", kNow + 900},
                            {"iat", kNow - 60},
                            {"nbf", kNow - 60},
                            {"jti", "9b2d4c1e-7f3a-4e5b-8d6c-1a2b3c4d5e6f"},
                            {"scope", "accounts:read payments:write profile"},
                            {"amr", json::array{"pwd", "mfa"}},
                            {"client_id", "mobile-banking"}};
  const std::string input = b64url(json::serialize(header)) + "." + b64url(json::serialize(claims));
  Fixture fixture{algorithm, nullptr, input + "." + b64url(sign(algorithm, key, secret, input))};
  fixture.keys = KeySet::from_jwks(json::serialize(json::object{{"keys", json::array{jwk}}})).keys;
  EVP_PKEY_free(key);
  if (!fixture.keys) throw std::runtime_error("benchmark key set refused");
  return fixture;
}

ProviderSettings settings_for(Algorithm algorithm) {
  ProviderSettings settings;
  settings.name = "bench";
  settings.issuer = "https://idp.bank.example";
  settings.audiences = {"core-banking"};
  settings.algorithms = {algorithm};
  settings.required_claims = {"jti"};
  return settings;
}

const auto kNowTime = std::chrono::system_clock::time_point{std::chrono::seconds{kNow}};

void BM_VerifyCold(benchmark::State& state, Algorithm algorithm) {
  const Fixture fixture = make_fixture(algorithm);
  const Verifier verifier(settings_for(algorithm));
  if (!verifier.verify(fixture.token, kNowTime, *fixture.keys).ok())
    state.SkipWithError("fixture token does not verify");
  for (auto _ : state) {
    auto result = verifier.verify(fixture.token, kNowTime, *fixture.keys);
    benchmark::DoNotOptimize(result);
  }
  state.SetLabel(std::to_string(fixture.token.size()) + " B token");
}

void BM_VerifyCached(benchmark::State& state, Algorithm algorithm) {
  const Fixture fixture = make_fixture(algorithm);
  const Verifier verifier(settings_for(algorithm));
  VerifiedTokenCache cache;
  if (!verify_cached(verifier, cache, fixture.token, kNowTime, *fixture.keys).ok())
    state.SkipWithError("fixture token does not verify");
  for (auto _ : state) {
    auto result = verify_cached(verifier, cache, fixture.token, kNowTime, *fixture.keys);
    benchmark::DoNotOptimize(result);
  }
}

BENCHMARK_CAPTURE(BM_VerifyCold, RS256, Algorithm::rs256);
BENCHMARK_CAPTURE(BM_VerifyCold, PS256, Algorithm::ps256);
BENCHMARK_CAPTURE(BM_VerifyCold, ES256, Algorithm::es256);
BENCHMARK_CAPTURE(BM_VerifyCold, EdDSA, Algorithm::eddsa);
BENCHMARK_CAPTURE(BM_VerifyCold, HS256, Algorithm::hs256);
BENCHMARK_CAPTURE(BM_VerifyCached, RS256, Algorithm::rs256);
BENCHMARK_CAPTURE(BM_VerifyCached, PS256, Algorithm::ps256);
BENCHMARK_CAPTURE(BM_VerifyCached, ES256, Algorithm::es256);
BENCHMARK_CAPTURE(BM_VerifyCached, EdDSA, Algorithm::eddsa);
BENCHMARK_CAPTURE(BM_VerifyCached, HS256, Algorithm::hs256);

}  // namespace
