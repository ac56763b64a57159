// Fuzz target for JWT verification against a fixed key set. The first byte picks the mode:
//   0  the rest is a token, checked by an HS256/384/512 provider with one shared secret
//   1  the rest is a token, checked by an ES256/EdDSA/RS256/PS256 provider with a fixed JWKS
//   2  the rest is "<header JSON>\n<payload JSON>", signed here with HMAC-SHA256 and verified
//   3  the same, signed with HMAC-SHA512
// Invariants: a token passes only with a genuine signature (one computed here, or one of the
// asymmetric tokens signed offline), the subject of a rejected token is known only once its
// signature held, an accepted token satisfies every documented claim rule, and the verdict is
// deterministic.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/auth/jwks.hpp"
#include "portcullis/auth/strict_json.hpp"
#include "portcullis/auth/verifier.hpp"

namespace {

using namespace portcullis;
using auth::Algorithm;
using core::Reason;

constexpr std::string_view kIssuer = "https://issuer.example";
constexpr std::int64_t kNow =
    1767225600;  // 2026-01-01T00:00:00Z; the signed tokens expire 600 s later
constexpr std::string_view kSecret = "fuzzing-secret-0123456789abcdef!";
constexpr std::string_view kJwks =
    R"json({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig", "alg": "ES256", "x": "ZoQ2jWfhVcoFZTPmKi7JueBobIG4qtettLc5kyXeDpQ", "y": "j7oYMx5xBM_HOioxImCh4kb8VIArSvqW1rIHv8FNp4M"}, {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": "ci5YkjH4_o126s7SDivfKvbcdUQurY0nHRFcjBXkbdM"}, {"kty": "RSA", "kid": "rsa1", "n": "pB3nhVM8Mw0gDdDAeqKcGdCc5IgbTHGIRw1N1pnmAgoTRCRjEo03Rmq2s16vDOEKtmeAteJyPPI0Z1GPMru8eu_vMmE45I3DawQjdQj17SNIkzOGQfmDMEAl_-gKi0XFDcLVlvdoHKNAMC3R_l5_CQyKV__Nh4DdB6DLPe0czPcpw1-UBPF85FfNhNJmOrzTFRbSF7x3U2vLN78ku089nFIFW82ymLdaXKboH6zhq_bMquYzDzXggaA5M3Q8gUdQxnA9lWid05s3WhqhOmsNh98nP1e4J4dJOCqeCgGDNUTK5apfBiGQJy1pzQ6_u770d_725K8wY4MSr6V10gyU6w", "e": "AQAB"}]})json";
// Signed offline with the private halves of kJwks (same claims, valid at kNow).
constexpr std::array<std::string_view, 3> kSignedTokens = {
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjMSIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoiYXBpIiwic3ViIjoiYWxpY2UiLCJleHAiOjE3NjcyMj"
    "YyMDAsImlhdCI6MTc2NzIyNTU5MCwianRpIjoidDEiLCJzY29wZSI6InJlYWQgd3JpdGUifQ.vjWI8tkYIbo-"
    "42HkKz0BrpdQgIp0oBgPgy1tYl-tyLer42V9YAa2UZvD4R8lHdIhNNU-T6PhMLxxUwd2Xnqnmw",
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkMSJ9."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoiYXBpIiwic3ViIjoiYWxpY2UiLCJleHAiOjE3NjcyMj"
    "YyMDAsImlhdCI6MTc2NzIyNTU5MCwianRpIjoidDEiLCJzY29wZSI6InJlYWQgd3JpdGUifQ."
    "xpSpi5fl2XEKkJAUghhiX-PuBH0QfMZIGc4V9QAEmyPYxyHPWw4Zm7wOaWHefoSx2pw95IhtI3TlY8NM2TEOCQ",
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoiYXBpIiwic3ViIjoiYWxpY2UiLCJleHAiOjE3NjcyMj"
    "YyMDAsImlhdCI6MTc2NzIyNTU5MCwianRpIjoidDEiLCJzY29wZSI6InJlYWQgd3JpdGUifQ."
    "Qk4Z1zI3sfVsXjSiqfrupDQPFBpaSzcrByDCAu7ofHt6zxAJ3d5RmHrT_JfMYjuu7GcXzZ1kq1VjVH9LkaFLBU4scPdh_"
    "LrpmusfUm4XrypL2Q8LiZzcy2krgBm9voOjaxRxrdWwts1aaW63Fj1GiXSI482smHQCwd8r1tvBQu5v1Af2z6NtJ-"
    "89lxwWqIqgCJuLhVo-muQRwLh8SlXy7RFtu8pdrAstF6DxeR8mMU4XtmaQr15R_"
    "IWsxcnsWq5bqVtgjEr3YyTyVPil6y1m9iYVN3nGPH7mdX8wNX6eEapF5eYnJTc9f9y9n3rd-GZ_PhGUActcX-"
    "7xkWmOFAGFGQ",
};

struct Fixture {
  auth::Verifier symmetric;
  auth::Verifier asymmetric;
  std::shared_ptr<const auth::KeySet> secret_keys;
  std::shared_ptr<const auth::KeySet> public_keys;
};

auth::ProviderSettings settings(std::string name, std::vector<Algorithm> algorithms) {
  auth::ProviderSettings s;
  s.name = std::move(name);
  s.issuer = std::string(kIssuer);
  s.audiences = {"api", "other"};
  s.algorithms = std::move(algorithms);
  s.required_claims = {"sub"};
  return s;
}

const Fixture& fixture() {
  static const Fixture f = [] {
    auto secret = auth::KeySet::from_secret(kSecret, "hs1");
    auto jwks = auth::KeySet::from_jwks(kJwks);
    FUZZ_CHECK(secret.ok() && jwks.ok() && jwks.keys->size() == 3);
    return Fixture{
        auth::Verifier(settings("hmac", {Algorithm::hs256, Algorithm::hs384, Algorithm::hs512})),
        auth::Verifier(settings(
            "public", {Algorithm::es256, Algorithm::eddsa, Algorithm::rs256, Algorithm::ps256})),
        secret.keys, jwks.keys};
  }();
  return f;
}

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::string hmac(const EVP_MD* md, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  FUZZ_CHECK(HMAC(md, kSecret.data(), static_cast<int>(kSecret.size()),
                  reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                  &length) != nullptr);
  return base64url(std::string_view(reinterpret_cast<const char*>(mac), length));
}

bool is_jwt_reason(Reason r) {
  switch (r) {
    case Reason::jwt_malformed:
    case Reason::jwt_too_large:
    case Reason::jwt_alg_not_allowed:
    case Reason::jwt_unknown_kid:
    case Reason::jwt_bad_signature:
    case Reason::jwt_expired:
    case Reason::jwt_not_yet_valid:
    case Reason::jwt_issued_in_future:
    case Reason::jwt_wrong_issuer:
    case Reason::jwt_wrong_audience:
    case Reason::jwt_missing_claim:
    case Reason::jwt_crit_unsupported:
      return true;
    default:
      return false;
  }
}

// "header.payload" when the token has exactly three parts, else empty.
std::string_view signing_input(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return {};
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return {};
  return token.substr(0, second);
}

auth::VerifyResult verify(const auth::Verifier& verifier, std::string_view token,
                          const auth::KeySet& keys) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
  auth::VerifyResult result = verifier.verify(token, now, keys);
  FUZZ_CHECK(!result.token_hash.empty());
  FUZZ_CHECK(result.ok() == (result.principal != nullptr));
  FUZZ_CHECK(result.ok() || is_jwt_reason(result.reason));
  FUZZ_CHECK(result.ok() || result.reason == Reason::jwt_too_large || token.size() <= 8 * 1024);
  FUZZ_CHECK(token.size() <= 8 * 1024 || result.reason == Reason::jwt_too_large);
  const auth::VerifyResult again = verifier.verify(token, now, keys);
  FUZZ_CHECK(again.reason == result.reason && again.subject == result.subject &&
             again.token_hash == result.token_hash);
  return result;
}

double number(const boost::json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  FUZZ_CHECK(v.is_double());
  return v.as_double();
}

// Every documented claim rule holds for an accepted token.
void check_accepted(const auth::VerifyResult& result, std::string_view token) {
  const auth::Principal& p = *result.principal;
  FUZZ_CHECK(p.token_hash == result.token_hash && result.subject == p.subject);
  FUZZ_CHECK(p.issuer == kIssuer);
  const std::string_view payload_part = signing_input(token).substr(token.find('.') + 1);
  FUZZ_CHECK(!payload_part.empty());
  const auto iss = p.claims.if_contains("iss");
  FUZZ_CHECK(iss && iss->is_string() && iss->as_string() == kIssuer);
  const auto aud = p.claims.if_contains("aud");
  FUZZ_CHECK(aud != nullptr);
  bool audience = false;
  if (aud->is_string()) {
    audience = aud->as_string() == "api" || aud->as_string() == "other";
  } else {
    FUZZ_CHECK(aud->is_array());
    for (const auto& a : aud->as_array()) {
      FUZZ_CHECK(a.is_string());
      audience = audience || a.as_string() == "api" || a.as_string() == "other";
    }
  }
  FUZZ_CHECK(audience);
  const auto exp = p.claims.if_contains("exp");
  FUZZ_CHECK(exp && number(*exp) > static_cast<double>(kNow - 31));
  if (const auto nbf = p.claims.if_contains("nbf")) FUZZ_CHECK(number(*nbf) < kNow + 31.0);
  if (const auto iat = p.claims.if_contains("iat")) FUZZ_CHECK(number(*iat) < kNow + 31.0);
  const auto sub = p.claims.if_contains("sub");
  FUZZ_CHECK(sub && !sub->is_null());
  FUZZ_CHECK(sub->is_string() && p.subject == sub->as_string());
  if (const auto jti = p.claims.if_contains("jti")) FUZZ_CHECK(p.jti == jti->as_string());
  for (std::size_t i = 1; i < p.scopes.size(); ++i)
    FUZZ_CHECK(p.scopes[i - 1] < p.scopes[i]);
}

void raw_symmetric(std::string_view token) {
  const Fixture& f = fixture();
  const auth::VerifyResult result = verify(f.symmetric, token, *f.secret_keys);
  const std::string_view input = signing_input(token);
  const std::string_view signature = input.empty() ? "" : token.substr(input.size() + 1);
  const bool genuine = !input.empty() && (signature == hmac(EVP_sha256(), input) ||
                                          signature == hmac(EVP_sha384(), input) ||
                                          signature == hmac(EVP_sha512(), input));
  if (!genuine) FUZZ_CHECK(!result.ok() && result.subject.empty());
  if (result.ok()) check_accepted(result, token);
}

void raw_asymmetric(std::string_view token) {
  const Fixture& f = fixture();
  const auth::VerifyResult result = verify(f.asymmetric, token, *f.public_keys);
  const std::string_view input = signing_input(token);
  bool signed_offline = false;
  for (const std::string_view known : kSignedTokens)
    signed_offline = signed_offline || (!input.empty() && input == signing_input(known));
  if (!signed_offline) FUZZ_CHECK(!result.ok() && result.subject.empty());
  if (result.ok()) check_accepted(result, token);
}

void sign_and_verify(std::string_view text, bool sha512) {
  const auto newline = text.find('\n');
  if (newline == std::string_view::npos) return;
  const std::string_view header = text.substr(0, newline);
  const std::string_view payload = text.substr(newline + 1);
  std::string token = base64url(header) + "." + base64url(payload);
  const std::string mac = hmac(sha512 ? EVP_sha512() : EVP_sha256(), token);
  token.push_back('.');
  token.append(mac);
  const Fixture& f = fixture();
  const auth::VerifyResult result = verify(f.symmetric, token, *f.secret_keys);
  if (result.ok()) {
    FUZZ_CHECK(result.principal->algorithm == (sha512 ? Algorithm::hs512 : Algorithm::hs256));
    check_accepted(result, token);
    return;
  }
  // A well-formed header naming this algorithm and this key has a signature that holds.
  const auto parsed = auth::detail::parse_strict_json(header, 10);
  if (!parsed || !parsed->is_object() || token.size() > 8 * 1024) return;
  const auto& object = parsed->as_object();
  const auto alg = object.if_contains("alg");
  const auto kid = object.if_contains("kid");
  if (alg && alg->is_string() && alg->as_string() == (sha512 ? "HS512" : "HS256") &&
      !object.contains("crit") && (!kid || (kid->is_string() && kid->as_string() == "hs1")))
    FUZZ_CHECK(result.reason != Reason::jwt_bad_signature);
  if (result.reason == Reason::jwt_bad_signature || result.reason == Reason::jwt_malformed ||
      result.reason == Reason::jwt_alg_not_allowed || result.reason == Reason::jwt_unknown_kid)
    FUZZ_CHECK(result.subject.empty() || result.reason == Reason::jwt_malformed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      raw_symmetric(rest);
      break;
    case 1:
      raw_asymmetric(rest);
      break;
    default:
      sign_and_verify(rest, data[0] % 4 == 3);
      break;
  }
  return 0;
}
