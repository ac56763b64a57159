#include "portcullis/auth/jwks.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>

#include "base64url.hpp"
#include "crypto.hpp"
#include "portcullis/auth/strict_json.hpp"

namespace portcullis::auth {
namespace json = boost::json;

namespace {

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;  // larger keys only make verification a denial-of-service lever
constexpr std::size_t kMinSecretBytes = 32;

struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// A wiping string for decoded secrets.
struct SecretString {
  std::string bytes;
  ~SecretString() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

// Key ids come from a remote document and end up in log lines: printable ASCII, bounded.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 64))
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (text.size() > 64) out += "...";
  return out;
}

std::string describe(std::size_t index, std::string_view kid) {
  std::string out = "key " + std::to_string(index);
  if (!kid.empty()) out += " (kid \"" + printable(kid) + "\")";
  return out;
}

// Looks up an optional string member; `bad` is set when it exists with another type.
const json::string* string_member(const json::object& object, std::string_view name, bool& bad) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) return nullptr;
  if (!value->is_string()) {
    bad = true;
    return nullptr;
  }
  return &value->get_string();
}

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

// Builds a public EVP_PKEY of `type` from the parameters in `bld`, and checks it unless
// `openssl_check` is false (RSA: OpenSSL's check runs a Miller-Rabin test with random bases, so
// the same document could load one time and not the next; build_rsa checks deterministically).
EVP_PKEY* public_key_from(const char* type, OSSL_PARAM_BLD* bld, bool openssl_check = true) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  if (!openssl_check) return pkey;
  // On-curve point, sane modulus: refuse what OpenSSL itself considers an invalid public key.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return pkey;
}

// True when an odd prime below 2^14 divides `n`: no RSA modulus does (OpenSSL's own check covers
// the primes up to 751). Deterministic, unlike a primality test.
bool has_small_factor(const BIGNUM* n) {
  static const std::vector<BN_ULONG> primes = [] {
    constexpr std::size_t kLimit = 1 << 14;
    std::vector<bool> composite(kLimit, false);
    std::vector<BN_ULONG> found;
    for (std::size_t i = 3; i < kLimit; i += 2) {
      if (composite[i]) continue;
      found.push_back(i);
      for (std::size_t j = i * i; j < kLimit; j += 2 * i)
        composite[j] = true;
    }
    return found;
  }();
  for (const BN_ULONG p : primes)
    if (BN_mod_word(n, p) == 0) return true;
  return false;
}

std::size_t min_secret_bytes(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::hs384:
      return 48;
    case Algorithm::hs512:
      return 64;
    default:
      return 32;
  }
}

}  // namespace

std::size_t curve_field_bytes(Curve curve) {
  switch (curve) {
    case Curve::p256:
      return 32;
    case Curve::p384:
      return 48;
    case Curve::p521:
      return 66;
    case Curve::ed25519:
      return 32;
    case Curve::none:
      break;
  }
  return 0;
}

// Builds keys; the only code allowed to fill in Key and KeySet.
class KeySetBuilder {
 public:
  // The key described by `jwk`, or nullopt with `problem` set. `material` receives the decoded
  // key bytes for the set's fingerprint.
  static std::optional<Key> from_jwk(const json::object& jwk, std::string& problem,
                                     SecretString& material) {
    bool bad = false;
    const json::string* kty = string_member(jwk, "kty", bad);
    const json::string* kid = string_member(jwk, "kid", bad);
    const json::string* alg = string_member(jwk, "alg", bad);
    const json::string* use = string_member(jwk, "use", bad);
    if (bad) {
      problem = "kty, kid, alg and use must be strings";
      return std::nullopt;
    }
    if (kty == nullptr) {
      problem = "no kty";
      return std::nullopt;
    }
    if (use != nullptr && *use != "sig") {
      problem = "use is \"" + printable(view(*use)) + "\", not \"sig\"";
      return std::nullopt;
    }
    if (const json::value* ops = jwk.if_contains("key_ops")) {
      const json::array* list = ops->if_array();
      const bool has_verify =
          list != nullptr && std::any_of(list->begin(), list->end(), [](const json::value& op) {
            return op.is_string() && op.get_string() == "verify";
          });
      if (!has_verify) {
        problem = "key_ops does not allow verify";
        return std::nullopt;
      }
    }
    std::optional<Algorithm> algorithm;
    if (alg != nullptr) {
      algorithm = parse_algorithm(view(*alg));
      if (!algorithm) {
        problem = "alg \"" + printable(view(*alg)) + "\" is not a supported signature algorithm";
        return std::nullopt;
      }
    }

    Key key;
    if (kid != nullptr) key.kid_.assign(kid->data(), kid->size());
    bool built = false;
    if (*kty == "RSA") {
      built = build_rsa(jwk, key, problem, material);
    } else if (*kty == "EC") {
      built = build_ec(jwk, key, problem, material);
    } else if (*kty == "OKP") {
      built = build_okp(jwk, key, problem, material);
    } else if (*kty == "oct") {
      built = build_oct(jwk, key, problem, material);
    } else {
      problem = "kty \"" + printable(view(*kty)) + "\" is not supported";
    }
    ERR_clear_error();
    if (!built) return std::nullopt;

    if (algorithm) {
      if (!key.can_verify(*algorithm)) {
        problem = "alg " + std::string(to_string(*algorithm)) + " does not fit this key";
        return std::nullopt;
      }
      key.algorithm_ = algorithm;
    }
    return key;
  }

  static Key from_secret(std::string_view secret, std::string kid) {
    Key key;
    key.kid_ = std::move(kid);
    key.type_ = KeyType::oct;
    key.secret_.assign(secret.begin(), secret.end());
    key.bits_ = static_cast<int>(secret.size() * 8);
    return key;
  }

  static std::shared_ptr<const KeySet> finish(std::vector<Key> keys, Sha256Digest fingerprint) {
    std::shared_ptr<KeySet> set(new KeySet());
    set->keys_ = std::move(keys);
    set->fingerprint_ = fingerprint;
    return set;
  }

  static void add_to_fingerprint(detail::Sha256Builder& builder, const Key& key,
                                 const SecretString& material) {
    const std::array<std::uint8_t, 3> shape = {
        static_cast<std::uint8_t>(key.type_), static_cast<std::uint8_t>(key.curve_),
        key.algorithm_ ? static_cast<std::uint8_t>(*key.algorithm_) : std::uint8_t{0xff}};
    builder.add(key.kid_);
    builder.add(shape.data(), shape.size());
    builder.add(material.bytes);
  }

 private:
  // Decodes a required base64url member into `out`.
  static bool decode_member(const json::object& jwk, std::string_view name, std::string& out,
                            std::string& problem) {
    bool bad = false;
    const json::string* text = string_member(jwk, name, bad);
    if (text == nullptr) {
      problem = "missing or non-string " + std::string(name);
      return false;
    }
    if (!detail::base64url_decode(view(*text), out)) {
      problem = std::string(name) + " is not strict base64url";
      return false;
    }
    return true;
  }

  static bool has_private_members(const json::object& jwk,
                                  std::initializer_list<std::string_view> names,
                                  std::string& problem) {
    for (const auto name : names) {
      if (jwk.contains(name)) {
        problem = "carries private key material (" + std::string(name) + ")";
        return true;
      }
    }
    return false;
  }

  static bool build_rsa(const json::object& jwk, Key& key, std::string& problem,
                        SecretString& material) {
    if (has_private_members(jwk, {"d", "p", "q", "dp", "dq", "qi", "oth"}, problem)) return false;
    std::string n_bytes, e_bytes;
    if (!decode_member(jwk, "n", n_bytes, problem) || !decode_member(jwk, "e", e_bytes, problem))
      return false;
    BnPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n_bytes.data()),
                      static_cast<int>(n_bytes.size()), nullptr));
    BnPtr e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e_bytes.data()),
                      static_cast<int>(e_bytes.size()), nullptr));
    if (!n || !e) {
      problem = "unreadable n or e";
      return false;
    }
    const int bits = BN_num_bits(n.get());
    if (bits < kMinRsaBits) {
      problem = "RSA modulus of " + std::to_string(bits) + " bits is under " +
                std::to_string(kMinRsaBits);
      return false;
    }
    if (bits > kMaxRsaBits) {
      problem =
          "RSA modulus of " + std::to_string(bits) + " bits is over " + std::to_string(kMaxRsaBits);
      return false;
    }
    if (!BN_is_odd(n.get()) || !BN_is_odd(e.get()) || BN_num_bits(e.get()) < 2 ||
        BN_num_bits(e.get()) > 64) {
      problem = "implausible RSA modulus or exponent";
      return false;
    }
    if (has_small_factor(n.get())) {
      problem = "implausible RSA modulus (small factor)";
      return false;
    }
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
      problem = "out of memory";
      return false;
    }
    key.pkey_.reset(public_key_from("RSA", bld.get(), false));
    if (!key.pkey_) {
      problem = "OpenSSL refused the RSA public key";
      return false;
    }
    key.type_ = KeyType::rsa;
    key.bits_ = bits;
    material.bytes = n_bytes + e_bytes;
    return true;
  }

  static bool build_ec(const json::object& jwk, Key& key, std::string& problem,
                       SecretString& material) {
    if (has_private_members(jwk, {"d"}, problem)) return false;
    bool bad = false;
    const json::string* crv = string_member(jwk, "crv", bad);
    const char* group = nullptr;
    if (crv != nullptr && *crv == "P-256") {
      key.curve_ = Curve::p256;
      group = "P-256";
    } else if (crv != nullptr && *crv == "P-384") {
      key.curve_ = Curve::p384;
      group = "P-384";
    } else if (crv != nullptr && *crv == "P-521") {
      key.curve_ = Curve::p521;
      group = "P-521";
    } else {
      problem = crv == nullptr ? "EC key without crv"
                               : "EC curve \"" + printable(view(*crv)) + "\" is not supported";
      return false;
    }
    std::string x, y;
    if (!decode_member(jwk, "x", x, problem) || !decode_member(jwk, "y", y, problem)) return false;
    const std::size_t size = curve_field_bytes(key.curve_);
    if (x.size() != size || y.size() != size) {
      problem = "x and y must be exactly " + std::to_string(size) + " bytes for " + group;
      return false;
    }
    std::string point;
    point.reserve(1 + 2 * size);
    point.push_back('\x04');  // uncompressed
    point += x;
    point += y;
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      problem = "out of memory";
      return false;
    }
    key.pkey_.reset(public_key_from("EC", bld.get()));
    if (!key.pkey_) {
      problem = "the point is not on " + std::string(group);
      return false;
    }
    key.type_ = KeyType::ec;
    key.bits_ = EVP_PKEY_get_bits(key.pkey_.get());
    material.bytes = std::move(point);
    return true;
  }

  static bool build_okp(const json::object& jwk, Key& key, std::string& problem,
                        SecretString& material) {
    if (has_private_members(jwk, {"d"}, problem)) return false;
    bool bad = false;
    const json::string* crv = string_member(jwk, "crv", bad);
    if (crv == nullptr || *crv != "Ed25519") {
      problem = crv == nullptr ? "OKP key without crv"
                               : "OKP curve \"" + printable(view(*crv)) + "\" is not supported";
      return false;
    }
    std::string x;
    if (!decode_member(jwk, "x", x, problem)) return false;
    if (x.size() != 32) {
      problem = "Ed25519 x must be 32 bytes";
      return false;
    }
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, x.data(),
                                                 x.size()) != 1) {
      problem = "out of memory";
      return false;
    }
    key.pkey_.reset(public_key_from("ED25519", bld.get()));
    if (!key.pkey_) {
      problem = "OpenSSL refused the Ed25519 public key";
      return false;
    }
    key.type_ = KeyType::okp;
    key.curve_ = Curve::ed25519;
    key.bits_ = 256;
    material.bytes = std::move(x);
    return true;
  }

  static bool build_oct(const json::object& jwk, Key& key, std::string& problem,
                        SecretString& material) {
    SecretString k;
    if (!decode_member(jwk, "k", k.bytes, problem)) return false;
    if (k.bytes.size() < kMinSecretBytes) {
      problem = "oct secret of " + std::to_string(k.bytes.size()) + " bytes is under " +
                std::to_string(kMinSecretBytes);
      return false;
    }
    key.type_ = KeyType::oct;
    key.secret_.assign(k.bytes.begin(), k.bytes.end());
    key.bits_ = static_cast<int>(k.bytes.size() * 8);
    material.bytes = k.bytes;
    return true;
  }
};

void Key::PkeyFree::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}

Key::Key(Key&& other) noexcept = default;

Key& Key::operator=(Key&& other) noexcept {
  if (this != &other) {
    OPENSSL_cleanse(secret_.data(), secret_.size());
    kid_ = std::move(other.kid_);
    type_ = other.type_;
    curve_ = other.curve_;
    algorithm_ = other.algorithm_;
    bits_ = other.bits_;
    pkey_ = std::move(other.pkey_);
    secret_ = std::move(other.secret_);
  }
  return *this;
}

Key::~Key() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
}

bool Key::can_verify(Algorithm algorithm) const {
  if (algorithm_ && *algorithm_ != algorithm) return false;
  switch (algorithm) {
    case Algorithm::rs256:
    case Algorithm::rs384:
    case Algorithm::rs512:
    case Algorithm::ps256:
    case Algorithm::ps384:
    case Algorithm::ps512:
      return type_ == KeyType::rsa && pkey_ != nullptr;
    case Algorithm::es256:
      return type_ == KeyType::ec && curve_ == Curve::p256 && pkey_ != nullptr;
    case Algorithm::es384:
      return type_ == KeyType::ec && curve_ == Curve::p384 && pkey_ != nullptr;
    case Algorithm::es512:
      return type_ == KeyType::ec && curve_ == Curve::p521 && pkey_ != nullptr;
    case Algorithm::eddsa:
      return type_ == KeyType::okp && curve_ == Curve::ed25519 && pkey_ != nullptr;
    case Algorithm::hs256:
    case Algorithm::hs384:
    case Algorithm::hs512:
      // RFC 7518 3.2: a key at least as long as the hash output.
      return type_ == KeyType::oct && secret_.size() >= min_secret_bytes(algorithm);
  }
  return false;
}

KeySetLoad KeySet::from_jwks(std::string_view text, const JwksLimits& limits) {
  KeySetLoad load;
  if (text.size() > limits.max_bytes) {
    load.errors.push_back("JWKS of " + std::to_string(text.size()) + " bytes exceeds " +
                          std::to_string(limits.max_bytes));
    return load;
  }
  const auto document = detail::parse_strict_json(text, limits.max_json_depth);
  if (!document) {
    load.errors.push_back("JWKS is not valid JSON (or repeats a member name, or nests more than " +
                          std::to_string(limits.max_json_depth) + " levels)");
    return load;
  }
  const json::object* root = document->if_object();
  const json::value* keys_value = root != nullptr ? root->if_contains("keys") : nullptr;
  if (keys_value == nullptr || !keys_value->is_array()) {
    load.errors.push_back("JWKS has no \"keys\" array");
    return load;
  }
  const json::array& entries = keys_value->get_array();
  std::vector<Key> keys;
  detail::Sha256Builder fingerprint;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const json::object* jwk = entries[i].if_object();
    std::string_view kid;
    if (jwk != nullptr) {
      if (const json::value* v = jwk->if_contains("kid"); v != nullptr && v->is_string())
        kid = view(v->get_string());
    }
    if (i >= limits.max_keys) {
      load.warnings.push_back(describe(i, kid) + ": skipped, more than " +
                              std::to_string(limits.max_keys) + " keys");
      continue;
    }
    if (jwk == nullptr) {
      load.warnings.push_back(describe(i, kid) + ": not a JSON object");
      continue;
    }
    std::string problem;
    SecretString material;
    auto key = KeySetBuilder::from_jwk(*jwk, problem, material);
    if (!key) {
      load.warnings.push_back(describe(i, kid) + ": " + problem);
      continue;
    }
    KeySetBuilder::add_to_fingerprint(fingerprint, *key, material);
    keys.push_back(std::move(*key));
  }
  if (keys.empty()) {
    load.errors.push_back("JWKS has no usable key");
    return load;
  }
  load.keys = KeySetBuilder::finish(std::move(keys), fingerprint.finish());
  return load;
}

KeySetLoad KeySet::from_secret(std::string_view secret, std::string kid) {
  KeySetLoad load;
  if (secret.size() < kMinSecretBytes) {
    load.errors.push_back("HMAC secret of " + std::to_string(secret.size()) + " bytes is under " +
                          std::to_string(kMinSecretBytes));
    return load;
  }
  std::vector<Key> keys;
  keys.push_back(KeySetBuilder::from_secret(secret, std::move(kid)));
  detail::Sha256Builder fingerprint;
  SecretString material;
  material.bytes.assign(secret);
  KeySetBuilder::add_to_fingerprint(fingerprint, keys.front(), material);
  load.keys = KeySetBuilder::finish(std::move(keys), fingerprint.finish());
  return load;
}

std::vector<const Key*> KeySet::find(std::string_view kid) const {
  std::vector<const Key*> found;
  for (const Key& key : keys_) {
    if (key.kid() == kid) found.push_back(&key);
  }
  return found;
}

}  // namespace portcullis::auth
