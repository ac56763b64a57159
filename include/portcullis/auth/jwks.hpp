#pragma once
// Verification keys: a JWK Set (RFC 7517) parsed into ready-to-use OpenSSL keys, or a single
// shared HMAC secret.
//
// A KeySet is immutable once built and shared as std::shared_ptr<const KeySet>: a refresh builds
// a new set and swaps the pointer (see key_refresh.hpp), so a request in flight keeps the keys it
// started with.
//
// What is accepted, per key of the set:
//   kty "RSA"  n, e              modulus 2048..8192 bits, e odd and >= 3
//   kty "EC"   crv, x, y         crv P-256 / P-384 / P-521; x and y of the exact field length;
//                                the point must be on the curve
//   kty "OKP"  crv "Ed25519", x  32 bytes
//   kty "oct"  k                 at least 32 bytes
// Optional members: kid (string), alg (must be a supported algorithm of that key type; the key
// then verifies only that algorithm), use (must be "sig"), key_ops (must contain "verify").
// Refused: any other kty or crv, `use` other than "sig", private members (d, p, q, ...) on an
// asymmetric key (a published private key is a leak, not a configuration), malformed base64url.
// Certificate members (x5c, x5t, x5u) are ignored: the key is the one n/e, x/y or x states.
//
// A refused key is skipped and reported in `warnings`; the set fails as a whole only when the
// document is unusable or no key survives.

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/auth/algorithm.hpp"
#include "portcullis/auth/token_hash.hpp"

namespace portcullis::auth {

enum class KeyType : std::uint8_t { rsa, ec, okp, oct };

enum class Curve : std::uint8_t { none, p256, p384, p521, ed25519 };

// Bytes of one coordinate (and of r or s in a JOSE ECDSA signature): 32, 48, 66; 32 for Ed25519
// public keys; 0 for none.
std::size_t curve_field_bytes(Curve curve);

// One verification key. Move-only; owned by its KeySet.
class Key {
 public:
  Key(Key&&) noexcept;
  Key& operator=(Key&&) noexcept;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key();  // wipes a secret

  const std::string& kid() const { return kid_; }  // empty when the JWK had none
  KeyType type() const { return type_; }
  Curve curve() const { return curve_; }  // none for RSA and oct
  // The JWK's `alg`, when it named one: the key then verifies that algorithm only.
  std::optional<Algorithm> algorithm() const { return algorithm_; }
  // Modulus bits for RSA, field bits for EC, 256 for Ed25519, secret bits for oct.
  int bits() const { return bits_; }

  // True when this key may check a signature made with `algorithm`: the family matches the key
  // type (an RSA key never verifies HS*, an oct key never verifies RS*), the curve matches the
  // ES variant, the JWK's own `alg` (if any) is that algorithm, and an HMAC secret is at least
  // the hash length.
  bool can_verify(Algorithm algorithm) const;

  // The public key (RSA, EC, OKP); null for oct.
  EVP_PKEY* public_key() const { return pkey_.get(); }
  // The shared secret (oct); empty otherwise.
  std::span<const std::uint8_t> secret() const { return secret_; }

 private:
  friend class KeySetBuilder;
  struct PkeyFree {
    void operator()(EVP_PKEY* key) const;
  };
  Key() = default;

  std::string kid_;
  KeyType type_ = KeyType::oct;
  Curve curve_ = Curve::none;
  std::optional<Algorithm> algorithm_;
  int bits_ = 0;
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey_;
  std::vector<std::uint8_t> secret_;
};

class KeySet;

// The outcome of building a KeySet. `keys` is null exactly when `errors` is non-empty.
struct KeySetLoad {
  std::shared_ptr<const KeySet> keys;
  std::vector<std::string> errors;    // why the whole set was refused
  std::vector<std::string> warnings;  // keys skipped, one line each, naming the key by kid/index

  bool ok() const { return keys != nullptr; }
};

struct JwksLimits {
  std::size_t max_bytes = 1024 * 1024;  // larger documents are refused unread
  std::size_t max_keys = 64;            // keys past this are skipped with a warning
  std::size_t max_json_depth = 8;
};

class KeySet {
 public:
  // Parses a JWK Set document ({"keys":[...]}). The JSON must be valid UTF-8 with no duplicate
  // member names at any level.
  static KeySetLoad from_jwks(std::string_view json, const JwksLimits& limits = {});

  // One oct key from a shared secret, used byte for byte (a trailing newline from a file is part
  // of the secret: strip it before calling if the file format says so). At least 32 bytes.
  static KeySetLoad from_secret(std::string_view secret, std::string kid = {});

  const std::vector<Key>& keys() const { return keys_; }
  std::size_t size() const { return keys_.size(); }

  // Every key whose kid is exactly `kid` (usually zero or one).
  std::vector<const Key*> find(std::string_view kid) const;

  // A digest of every key's kid, type, alg and material. Two sets with the same keys have the same
  // fingerprint, so an unchanged JWKS refetch keeps cached verifications, while a removed or
  // replaced key invalidates them.
  const Sha256Digest& fingerprint() const { return fingerprint_; }

 private:
  friend class KeySetBuilder;
  KeySet() = default;

  std::vector<Key> keys_;
  Sha256Digest fingerprint_{};
};

}  // namespace portcullis::auth
