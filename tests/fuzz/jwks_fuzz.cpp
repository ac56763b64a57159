// Fuzz target for JWK Set documents: KeySet::from_jwks under small limits. Invariants: a set is
// either loaded with keys or refused with errors; every key that survives has the type, curve,
// size and material the documented rules demand; can_verify never crosses key families or a
// JWK's own alg; loading is deterministic (same keys, same fingerprint).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/auth/algorithm.hpp"
#include "portcullis/auth/jwks.hpp"

namespace {

using namespace portcullis;
using auth::Algorithm;
using auth::Curve;
using auth::KeyType;

constexpr Algorithm kAlgorithms[] = {
    Algorithm::rs256, Algorithm::rs384, Algorithm::rs512, Algorithm::ps256, Algorithm::ps384,
    Algorithm::ps512, Algorithm::es256, Algorithm::es384, Algorithm::es512, Algorithm::eddsa,
    Algorithm::hs256, Algorithm::hs384, Algorithm::hs512};

KeyType family(Algorithm a) {
  switch (a) {
    case Algorithm::es256:
    case Algorithm::es384:
    case Algorithm::es512:
      return KeyType::ec;
    case Algorithm::eddsa:
      return KeyType::okp;
    case Algorithm::hs256:
    case Algorithm::hs384:
    case Algorithm::hs512:
      return KeyType::oct;
    default:
      return KeyType::rsa;
  }
}

void check_key(const auth::Key& key, const auth::KeySet& set) {
  switch (key.type()) {
    case KeyType::rsa:
      FUZZ_CHECK(key.curve() == Curve::none && key.public_key() && key.secret().empty());
      FUZZ_CHECK(key.bits() >= 2048 && key.bits() <= 8192);
      break;
    case KeyType::ec:
      FUZZ_CHECK(key.public_key() && key.secret().empty());
      FUZZ_CHECK((key.curve() == Curve::p256 && key.bits() == 256) ||
                 (key.curve() == Curve::p384 && key.bits() == 384) ||
                 (key.curve() == Curve::p521 && key.bits() == 521));
      break;
    case KeyType::okp:
      FUZZ_CHECK(key.curve() == Curve::ed25519 && key.public_key() && key.secret().empty());
      break;
    case KeyType::oct:
      FUZZ_CHECK(key.curve() == Curve::none && !key.public_key());
      FUZZ_CHECK(key.secret().size() >= 32 &&
                 key.bits() == static_cast<int>(key.secret().size() * 8));
      break;
  }
  for (const Algorithm a : kAlgorithms) {
    if (!key.can_verify(a)) continue;
    FUZZ_CHECK(family(a) == key.type());
    FUZZ_CHECK(!key.algorithm() || *key.algorithm() == a);
  }
  if (key.algorithm()) FUZZ_CHECK(family(*key.algorithm()) == key.type());
  bool found = false;
  for (const auth::Key* candidate : set.find(key.kid()))
    found = found || candidate == &key;
  FUZZ_CHECK(found);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auth::JwksLimits limits;
  limits.max_bytes = 32 * 1024;
  limits.max_keys = 4;
  const auth::KeySetLoad load = auth::KeySet::from_jwks(json, limits);
  FUZZ_CHECK(load.ok() == load.errors.empty());
  if (json.size() > limits.max_bytes) FUZZ_CHECK(!load.ok());
  if (!load.ok()) return 0;
  const auth::KeySet& set = *load.keys;
  FUZZ_CHECK(set.size() >= 1 && set.size() <= limits.max_keys);
  for (const auth::Key& key : set.keys())
    check_key(key, set);
  const auth::KeySetLoad again = auth::KeySet::from_jwks(json, limits);
  FUZZ_CHECK(again.ok() && again.keys->size() == set.size());
  FUZZ_CHECK(again.keys->fingerprint() == set.fingerprint());
  FUZZ_CHECK(again.warnings == load.warnings);
  return 0;
}
