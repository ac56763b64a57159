// portcullis-jwt: signing keys and test tokens for developing against Portcullis.
//
//   portcullis-jwt keygen --alg ALG --kid KID --key-out key.pem [--jwks jwks.json]
//   portcullis-jwt sign (--key key.pem | --secret-file F) --alg ALG [--kid KID] [--claims JSON]
//                       [--exp-in SECONDS] [--header JSON]
//   portcullis-jwt sign --raw HEADER_JSON PAYLOAD_JSON (--key key.pem | --secret-file F) --alg ALG
//
// keygen writes a new private key (PEM, mode 0600) and, with --jwks, adds its public JWK to that
// JWK Set file (created if missing; a key with the same kid is replaced).
//
// sign prints a compact JWS. The payload is the defaults {"iat": now, "exp": now + exp-in
// (default 300), "jti": random} with --claims merged over them (a null value removes a default).
// The protected header is {"alg", "typ":"JWT", "kid"}; --header replaces it entirely, so a test
// can forge any header (alg "none", jwk, jku, crit, ...). --raw signs the given header and payload
// texts byte for byte. --alg none leaves the signature empty. A secret file is used as is, minus
// one trailing newline (as the gateway reads it).
//
// Signatures follow RFC 7518: ES* as raw R || S of the curve's field length, PS* with MGF1 on the
// same hash and a salt as long as the hash, EdDSA as Ed25519.
//
// This is a development tool: it never reads or writes anything but the files it is given.

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace json = boost::json;

// ---- errors -------------------------------------------------------------------------------------

// A mistake in the command line: reported with the usage text, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Anything else that went wrong: exit status 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws a Failure with `what` and OpenSSL's queued error, if any.
[[noreturn]] void openssl_failure(const std::string& what) {
  std::string message = what;
  if (const unsigned long code = ERR_get_error(); code != 0) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    message += " (";
    message += text.data();
    message += ')';
  }
  ERR_clear_error();
  throw Failure(message);
}

constexpr std::string_view kUsage =
    "usage:\n"
    "  portcullis-jwt keygen --alg ALG --kid KID --key-out key.pem [--jwks jwks.json]\n"
    "      ALG: ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA\n"
    "  portcullis-jwt sign (--key key.pem | --secret-file FILE) --alg ALG [--kid KID]\n"
    "                      [--claims JSON] [--exp-in SECONDS] [--header JSON]\n"
    "  portcullis-jwt sign --raw HEADER_JSON PAYLOAD_JSON (--key key.pem | --secret-file FILE)\n"
    "                      --alg ALG\n"
    "      ALG: the above, HS256 HS384 HS512, or none (empty signature)\n";

// ---- OpenSSL ownership --------------------------------------------------------------------------

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;

// ---- bytes and base64url ------------------------------------------------------------------------

using Bytes = std::vector<unsigned char>;

std::string base64url(const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t n = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (const std::size_t rest = size - i; rest > 0) {
    std::uint32_t n = std::uint32_t{data[i]} << 16;
    if (rest == 2) n |= std::uint32_t{data[i + 1]} << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    if (rest == 2) out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::string base64url(std::string_view text) {
  return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

std::string base64url(const Bytes& bytes) {
  return base64url(bytes.data(), bytes.size());
}

Bytes random_bytes(std::size_t size) {
  Bytes out(size);
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) openssl_failure("no random bytes");
  return out;
}

// ---- files --------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Writes `content` to `path` through a temporary file in the same folder and a rename, so a
// reader (a gateway reloading its JWKS) sees the old file or the new one, never half of one.
// The file gets `mode` from its creation on: a private key is never readable by others, even
// for an instant.
void write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw Failure("cannot create " + temporary + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, mode) == 0;
  for (std::size_t done = 0; ok && done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = ok ? errno : saved;
    ::unlink(temporary.c_str());
    throw Failure("cannot write " + path + ": " + std::strerror(error));
  }
}

// ---- algorithms ---------------------------------------------------------------------------------

enum class Family { none, hmac, rsa_pkcs1, rsa_pss, ecdsa, eddsa };

struct Algorithm {
  std::string_view name;
  Family family;
  const char* digest;         // null for EdDSA and none
  const char* curve;          // ECDSA group name, else null
  std::size_t field_bytes{};  // ECDSA: length of R and of S
};

constexpr std::array<Algorithm, 14> kAlgorithms{{
    {"HS256", Family::hmac, "SHA256", nullptr},
    {"HS384", Family::hmac, "SHA384", nullptr},
    {"HS512", Family::hmac, "SHA512", nullptr},
    {"RS256", Family::rsa_pkcs1, "SHA256", nullptr},
    {"RS384", Family::rsa_pkcs1, "SHA384", nullptr},
    {"RS512", Family::rsa_pkcs1, "SHA512", nullptr},
    {"PS256", Family::rsa_pss, "SHA256", nullptr},
    {"PS384", Family::rsa_pss, "SHA384", nullptr},
    {"PS512", Family::rsa_pss, "SHA512", nullptr},
    {"ES256", Family::ecdsa, "SHA256", "P-256", 32},
    {"ES384", Family::ecdsa, "SHA384", "P-384", 48},
    {"ES512", Family::ecdsa, "SHA512", "P-521", 66},
    {"EdDSA", Family::eddsa, nullptr, nullptr},
    {"none", Family::none, nullptr, nullptr},
}};

const Algorithm& find_algorithm(std::string_view name) {
  for (const Algorithm& algorithm : kAlgorithms) {
    if (algorithm.name == name) return algorithm;
  }
  throw UsageError("unknown algorithm '" + std::string(name) + "'");
}

// The JWK curve name for an ECDSA group name.
std::string_view jwk_curve(std::string_view group) {
  if (group == "P-256" || group == "prime256v1") return "P-256";
  if (group == "P-384" || group == "secp384r1") return "P-384";
  if (group == "P-521" || group == "secp521r1") return "P-521";
  throw Failure("unsupported EC curve " + std::string(group));
}

std::string ec_group_of(const EVP_PKEY* key) {
  std::array<char, 64> group{};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                     &length) != 1)
    openssl_failure("cannot read the EC key's curve");
  return std::string(group.data(), length);
}

// ---- keys ---------------------------------------------------------------------------------------

PkeyPtr generate_key(const Algorithm& algorithm) {
  EVP_PKEY* key = nullptr;
  switch (algorithm.family) {
    case Family::rsa_pkcs1:
    case Family::rsa_pss:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
      break;
    case Family::ecdsa:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", algorithm.curve);
      break;
    case Family::eddsa:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case Family::hmac:
    case Family::none:
      throw UsageError("keygen makes key pairs: " + std::string(algorithm.name) +
                       " has none (write a random secret to a file instead)");
  }
  if (key == nullptr) openssl_failure("key generation failed");
  return PkeyPtr(key);
}

PkeyPtr load_private_key(const std::string& path) {
  const std::string pem = read_file(path);
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) openssl_failure("out of memory");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) openssl_failure(path + ": not a PEM private key without a passphrase");
  return PkeyPtr(key);
}

std::string private_key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    openssl_failure("cannot encode the private key");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A BIGNUM parameter of `key` as big-endian bytes, left-padded with zeros to `width` (0 = its
// minimal length).
Bytes bn_param(const EVP_PKEY* key, const char* name, std::size_t width = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) openssl_failure(std::string("no ") + name);
  const BnPtr bn(raw);
  const std::size_t size = width != 0 ? width : static_cast<std::size_t>(BN_num_bytes(bn.get()));
  Bytes out(size);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size())) < 0)
    throw Failure(std::string(name) + " does not fit in " + std::to_string(size) + " bytes");
  return out;
}

// The public JWK of `key`, bound to `algorithm`.
json::object public_jwk(EVP_PKEY* key, const Algorithm& algorithm, const std::string& kid) {
  json::object jwk;
  switch (algorithm.family) {
    case Family::rsa_pkcs1:
    case Family::rsa_pss:
      jwk["kty"] = "RSA";
      jwk["n"] = base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N));
      jwk["e"] = base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E));
      break;
    case Family::ecdsa:
      jwk["kty"] = "EC";
      jwk["crv"] = jwk_curve(ec_group_of(key));
      jwk["x"] = base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, algorithm.field_bytes));
      jwk["y"] = base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, algorithm.field_bytes));
      break;
    case Family::eddsa: {
      Bytes raw(32);
      std::size_t size = raw.size();
      if (EVP_PKEY_get_raw_public_key(key, raw.data(), &size) != 1 || size != raw.size())
        openssl_failure("cannot read the Ed25519 public key");
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = base64url(raw);
      break;
    }
    case Family::hmac:
    case Family::none:
      throw Failure("no public key for " + std::string(algorithm.name));
  }
  jwk["kid"] = kid;
  jwk["use"] = "sig";
  jwk["alg"] = algorithm.name;
  return jwk;
}

// Adds `jwk` to the JWK Set in `path` (created when missing), replacing keys with the same kid.
void add_to_jwks(const std::string& path, json::object jwk) {
  json::object set;
  if (std::filesystem::exists(path)) {
    json::value parsed;
    try {
      parsed = json::parse(read_file(path));
    } catch (const std::exception& error) {
      throw Failure(path + ": not JSON: " + error.what());
    }
    if (!parsed.is_object() || !parsed.as_object().contains("keys") ||
        !parsed.as_object().at("keys").is_array())
      throw Failure(path + ": not a JWK Set ({\"keys\": [...]})");
    set = std::move(parsed.as_object());
  }
  json::array kept;
  const json::value& kid = jwk.at("kid");
  if (const json::value* keys = set.if_contains("keys")) {
    for (const json::value& existing : keys->as_array()) {
      const json::value* existing_kid =
          existing.is_object() ? existing.as_object().if_contains("kid") : nullptr;
      if (existing_kid == nullptr || *existing_kid != kid) kept.push_back(existing);
    }
  }
  kept.emplace_back(std::move(jwk));
  set["keys"] = std::move(kept);
  write_file_atomically(path, json::serialize(set) + "\n", 0644);
}

// ---- signing ------------------------------------------------------------------------------------

// The key material `sign` works with: a private key, a shared secret, or nothing (alg none).
struct SigningKey {
  PkeyPtr pkey;
  std::string secret;
};

// Checks that `key` can make `algorithm` signatures, so a typo does not produce a token the
// gateway refuses for a reason the test did not mean.
void check_key_fits(const SigningKey& key, const Algorithm& algorithm) {
  const auto need = [](bool ok, const std::string& message) {
    if (!ok) throw UsageError(message);
  };
  const std::string name(algorithm.name);
  switch (algorithm.family) {
    case Family::none:
      return;
    case Family::hmac:
      need(!key.secret.empty() || key.pkey == nullptr,
           name + " needs --secret-file (a private key is not an HMAC secret)");
      need(!key.secret.empty(), name + " needs a non-empty --secret-file");
      return;
    case Family::rsa_pkcs1:
    case Family::rsa_pss:
      need(key.pkey && EVP_PKEY_is_a(key.pkey.get(), "RSA"), name + " needs an RSA --key");
      return;
    case Family::ecdsa:
      need(key.pkey && EVP_PKEY_is_a(key.pkey.get(), "EC"), name + " needs an EC --key");
      need(jwk_curve(ec_group_of(key.pkey.get())) == algorithm.curve,
           name + " needs a " + algorithm.curve + " key");
      return;
    case Family::eddsa:
      need(key.pkey && EVP_PKEY_is_a(key.pkey.get(), "ED25519"), name + " needs an Ed25519 --key");
      return;
  }
}

Bytes hmac(const Algorithm& algorithm, std::string_view secret, std::string_view input) {
  Bytes out(EVP_MAX_MD_SIZE);
  std::size_t size = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, algorithm.digest, nullptr, secret.data(), secret.size(),
                reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(),
                out.size(), &size) == nullptr)
    openssl_failure("HMAC failed");
  out.resize(size);
  return out;
}

// DER ECDSA-Sig-Value -> JOSE R || S, each left-padded to the curve's field length.
Bytes ecdsa_der_to_jose(const Bytes& der, std::size_t field_bytes) {
  const unsigned char* cursor = der.data();
  const EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der.size())));
  if (!sig) openssl_failure("cannot decode the ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes out(2 * field_bytes);
  const int width = static_cast<int>(field_bytes);
  if (BN_bn2binpad(r, out.data(), width) != width ||
      BN_bn2binpad(s, out.data() + field_bytes, width) != width)
    throw Failure("ECDSA signature wider than the curve");
  return out;
}

Bytes sign_with_pkey(const Algorithm& algorithm, EVP_PKEY* key, std::string_view input) {
  const MdCtxPtr context(EVP_MD_CTX_new());
  if (!context) openssl_failure("out of memory");
  EVP_PKEY_CTX* pkey_context = nullptr;
  if (EVP_DigestSignInit_ex(context.get(), &pkey_context, algorithm.digest, nullptr, nullptr, key,
                            nullptr) != 1)
    openssl_failure("cannot start signing");
  if (algorithm.family == Family::rsa_pss &&
      (EVP_PKEY_CTX_set_rsa_padding(pkey_context, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pkey_context, RSA_PSS_SALTLEN_DIGEST) != 1))
    openssl_failure("cannot set up RSA-PSS");
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  std::size_t size = 0;
  if (EVP_DigestSign(context.get(), nullptr, &size, data, input.size()) != 1)
    openssl_failure("cannot size the signature");
  Bytes signature(size);
  if (EVP_DigestSign(context.get(), signature.data(), &size, data, input.size()) != 1)
    openssl_failure("signing failed");
  signature.resize(size);
  if (algorithm.family == Family::ecdsa) return ecdsa_der_to_jose(signature, algorithm.field_bytes);
  return signature;
}

Bytes sign(const Algorithm& algorithm, const SigningKey& key, std::string_view input) {
  switch (algorithm.family) {
    case Family::none:
      return {};
    case Family::hmac:
      return hmac(algorithm, key.secret, input);
    default:
      return sign_with_pkey(algorithm, key.pkey.get(), input);
  }
}

// ---- command lines ------------------------------------------------------------------------------

// `--name value` options after the command; --raw takes two values.
class Arguments {
 public:
  Arguments(int argc, char** argv, std::initializer_list<std::string_view> known) {
    for (int i = 2; i < argc; ++i) {
      const std::string_view name = argv[i];
      if (std::find(known.begin(), known.end(), name) == known.end())
        throw UsageError("unknown option '" + std::string(name) + "'");
      if (values_.count(std::string(name)) != 0)
        throw UsageError("option " + std::string(name) + " given twice");
      const int count = name == "--raw" ? 2 : 1;
      if (i + count >= argc) throw UsageError("option " + std::string(name) + " needs a value");
      std::vector<std::string>& values = values_[std::string(name)];
      for (int k = 0; k < count; ++k)
        values.emplace_back(argv[++i]);
    }
  }

  std::optional<std::string> get(std::string_view name, std::size_t index = 0) const {
    const auto found = values_.find(std::string(name));
    if (found == values_.end()) return std::nullopt;
    return found->second.at(index);
  }

  std::string require(std::string_view name) const {
    auto value = get(name);
    if (!value) throw UsageError("option " + std::string(name) + " is required");
    return *value;
  }

  bool has(std::string_view name) const { return values_.count(std::string(name)) != 0; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

json::object parse_object(std::string_view text, std::string_view what) {
  json::value value;
  try {
    value = json::parse(text);
  } catch (const std::exception& error) {
    throw UsageError(std::string(what) + " is not JSON: " + error.what());
  }
  if (!value.is_object()) throw UsageError(std::string(what) + " must be a JSON object");
  return std::move(value.as_object());
}

std::int64_t parse_seconds(const std::string& text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    throw UsageError("--exp-in takes whole seconds (may be negative), got '" + text + "'");
  return value;
}

int keygen(int argc, char** argv) {
  const Arguments args(argc, argv, {"--alg", "--kid", "--key-out", "--jwks"});
  const Algorithm& algorithm = find_algorithm(args.require("--alg"));
  const std::string kid = args.require("--kid");
  if (kid.empty()) throw UsageError("--kid must not be empty");
  const std::string key_out = args.require("--key-out");

  const PkeyPtr key = generate_key(algorithm);
  const json::object jwk = public_jwk(key.get(), algorithm, kid);
  write_file_atomically(key_out, private_key_pem(key.get()), 0600);
  if (const auto jwks = args.get("--jwks")) add_to_jwks(*jwks, jwk);
  return 0;
}

SigningKey signing_key(const Arguments& args, const Algorithm& algorithm) {
  if (args.has("--key") && args.has("--secret-file"))
    throw UsageError("give --key or --secret-file, not both");
  SigningKey key;
  if (const auto path = args.get("--key")) {
    key.pkey = load_private_key(*path);
  } else if (const auto path = args.get("--secret-file")) {
    key.secret = read_file(*path);
    if (key.secret.ends_with("\r\n")) {
      key.secret.resize(key.secret.size() - 2);
    } else if (key.secret.ends_with('\n')) {
      key.secret.pop_back();
    }
  } else if (algorithm.family != Family::none) {
    throw UsageError("give --key or --secret-file");
  }
  check_key_fits(key, algorithm);
  return key;
}

int sign_command(int argc, char** argv) {
  const Arguments args(
      argc, argv,
      {"--key", "--secret-file", "--alg", "--kid", "--claims", "--exp-in", "--header", "--raw"});
  const Algorithm& algorithm = find_algorithm(args.require("--alg"));
  const SigningKey key = signing_key(args, algorithm);

  std::string header_text;
  std::string payload_text;
  if (args.has("--raw")) {
    for (const char* option : {"--kid", "--claims", "--exp-in", "--header"}) {
      if (args.has(option))
        throw UsageError(std::string(option) + " cannot be combined with --raw");
    }
    header_text = *args.get("--raw", 0);
    payload_text = *args.get("--raw", 1);
  } else {
    json::object header;
    if (const auto text = args.get("--header")) {
      if (args.has("--kid")) throw UsageError("--header replaces the header: put the kid in it");
      header = parse_object(*text, "--header");
    } else {
      header["alg"] = algorithm.name;
      header["typ"] = "JWT";
      if (const auto kid = args.get("--kid")) header["kid"] = *kid;
    }

    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    const std::int64_t exp_in = args.has("--exp-in") ? parse_seconds(*args.get("--exp-in")) : 300;
    json::object payload;
    payload["iat"] = now;
    payload["exp"] = now + exp_in;
    payload["jti"] = base64url(random_bytes(16));
    if (const auto text = args.get("--claims")) {
      for (auto& [name, value] : parse_object(*text, "--claims")) {
        if (value.is_null()) {
          payload.erase(name);
        } else {
          payload[name] = std::move(value);
        }
      }
    }
    header_text = json::serialize(header);
    payload_text = json::serialize(payload);
  }

  const std::string signing_input = base64url(header_text) + "." + base64url(payload_text);
  const std::string token = signing_input + "." + base64url(sign(algorithm, key, signing_input));
  std::cout << token << '\n' << std::flush;
  return std::cout ? 0 : 1;
}

int run(int argc, char** argv) {
  if (argc < 2) throw UsageError("no command");
  const std::string_view command = argv[1];
  if (command == "keygen") return keygen(argc, argv);
  if (command == "sign") return sign_command(argc, argv);
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  throw UsageError("unknown command '" + std::string(command) + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& error) {
    std::cerr << "portcullis-jwt: " << error.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "portcullis-jwt: " << error.what() << "\n";
    return 1;
  }
}
