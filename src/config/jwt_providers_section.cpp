// `jwt_providers`: issuers whose tokens routes may require, their key source (exactly one),
// algorithms, clock skew, required claims, where the token is read and which claims are
// forwarded.

#include <algorithm>
#include <span>

#include "file_checks.hpp"
#include "portcullis/core/text.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

// JOSE algorithm names this build verifies; "none" is never one of them.
constexpr std::string_view kSymmetricAlgorithms[] = {"HS256", "HS384", "HS512"};
constexpr std::string_view kAsymmetricAlgorithms[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                                      "PS512", "ES256", "ES384", "ES512", "EdDSA"};

bool listed(std::span<const std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

class ProviderParser {
 public:
  ProviderParser(Reader& reader, const Entry& entry, const Section& section, JwtProvider& provider)
      : reader_(reader), entry_(entry), section_(section), provider_(provider) {}

  void identity();
  void key_source();
  void timing();
  void algorithms();
  void claims_and_token();

 private:
  Reader& reader_;
  const Entry& entry_;
  const Section& section_;
  JwtProvider& provider_;
  std::vector<const Entry*> sources_;  // the key source keys given, in file order
};

void ProviderParser::identity() {
  if (const Entry* issuer = section_.find("issuer")) {
    if (const auto text = reader_.string(*issuer)) {
      if (text->empty()) reader_.error(*issuer, issuer->path + ": must not be empty");
      provider_.issuer = *text;
    }
  } else {
    reader_.error(entry_, entry_.path + ": issuer is required");
  }
  if (const Entry* audiences = section_.find("audiences")) {
    for (const auto& item : reader_.items(*audiences)) {
      if (const auto text = reader_.string(item); text && !text->empty()) {
        provider_.audiences.push_back(*text);
      } else if (text) {
        reader_.error(item, item.path + ": an audience must not be empty");
      }
    }
    if (audiences->value.IsSequence() && provider_.audiences.empty())
      reader_.error(*audiences, audiences->path + ": at least one audience is required");
  } else {
    reader_.error(entry_, entry_.path + ": audiences is required");
  }
}

void ProviderParser::key_source() {
  for (const char* key : {"jwks_file", "secret_file"}) {
    if (const Entry* file = section_.find(key)) {
      if (const auto path = reader_.file_path(*file, true); path && !path->empty()) {
        files::check_nonempty_file(reader_, *path, *file);
        (std::string_view(key) == "jwks_file" ? provider_.jwks_file : provider_.secret_file) =
            *path;
        sources_.push_back(file);
      }
    }
  }
  if (const Entry* url = section_.find("jwks_url")) {
    if (const auto text = reader_.string(*url); text && !text->empty()) {
      const bool https = text->starts_with("https://") && text->size() > 8 &&
                         std::none_of(text->begin(), text->end(), [](char c) {
                           const auto byte = static_cast<unsigned char>(c);
                           return byte <= 0x20 || byte >= 0x7f;
                         });
      if (!https) {
        reader_.error(*url, url->path + ": " + quote(*text) +
                                " must be an https:// URL (keys are never fetched in clear text)");
      }
      provider_.jwks_url = *text;
      sources_.push_back(url);
    }
  }
  if (const Entry* ca_file = section_.find("jwks_ca_file")) {
    if (const auto path = reader_.file_path(*ca_file, true); path && !path->empty()) {
      files::check_ca_bundle(reader_, *path, *ca_file);
      provider_.jwks_ca_file = *path;
      if (provider_.jwks_url.empty())
        reader_.error(*ca_file, ca_file->path + ": only meaningful with jwks_url");
    }
  }
  const std::string message = entry_.path +
                              ": give exactly one of jwks_file, jwks_url and secret_file (" +
                              std::to_string(sources_.size()) + " given)";
  if (sources_.empty()) {
    reader_.error(entry_, message);
  } else if (sources_.size() > 1) {
    // At the later source, naming the earlier one: both lines are in the message.
    std::sort(sources_.begin(), sources_.end(),
              [](const Entry* a, const Entry* b) { return a->key.Mark().pos < b->key.Mark().pos; });
    std::string others;
    for (std::size_t i = 0; i + 1 < sources_.size(); ++i) {
      others +=
          (i ? ", " : "") + sources_[i]->key.Scalar() + " at " + Reader::line_of(*sources_[i]);
    }
    reader_.error(sources_.back()->key.Mark(), message + "; also given: " + others);
  }
}

void ProviderParser::timing() {
  set(section_, "jwks_refresh", provider_.jwks_refresh,
      [&](const Entry& e) { return reader_.duration(e); });
  set(section_, "clock_skew", provider_.clock_skew,
      [&](const Entry& e) { return reader_.duration(e, true); });
  set(section_, "require_exp", provider_.require_exp,
      [&](const Entry& e) { return reader_.boolean(e); });
  if (provider_.jwks_refresh < std::chrono::seconds(10)) {
    if (const Entry* refresh = section_.find("jwks_refresh"))
      reader_.error(*refresh,
                    refresh->path + ": at least 10s (the identity provider is not a hot loop)");
  }
  if (provider_.clock_skew > std::chrono::minutes(5)) {
    if (const Entry* skew = section_.find("clock_skew"))
      reader_.error(*skew, skew->path + ": at most 5m");
  }
}

void ProviderParser::algorithms() {
  const Entry* algorithms = section_.find("algorithms");
  if (algorithms) {
    const auto list = reader_.items(*algorithms);
    for (const auto& item : list) {
      const auto text = reader_.string(item);
      if (!text) continue;
      if (core::ascii_lowercase(*text) == "none") {
        reader_.error(item, item.path + ": 'none' is never accepted (unsigned tokens)");
      } else if (!listed(kSymmetricAlgorithms, *text) && !listed(kAsymmetricAlgorithms, *text)) {
        reader_.error(item, item.path + ": " + quote(*text) +
                                " is not an algorithm this build verifies (RS256/384/512, "
                                "PS256/384/512, ES256/384/512, EdDSA, HS256/384/512)");
      } else if (std::find(provider_.algorithms.begin(), provider_.algorithms.end(), *text) !=
                 provider_.algorithms.end()) {
        reader_.error(item, item.path + ": " + quote(*text) + " is listed twice");
      } else {
        provider_.algorithms.push_back(*text);
      }
    }
    if (algorithms->value.IsSequence() && provider_.algorithms.empty() && list.empty()) {
      reader_.error(*algorithms, algorithms->path + ": at least one algorithm is required");
    }
  } else {
    // Left out: what the key source implies.
    provider_.algorithms = provider_.secret_file.empty()
                               ? std::vector<std::string>{"RS256", "ES256"}
                               : std::vector<std::string>{"HS256"};
  }
  const auto any_of = [&](std::span<const std::string_view> names) {
    return std::any_of(provider_.algorithms.begin(), provider_.algorithms.end(),
                       [&](const std::string& a) { return listed(names, a); });
  };
  const bool any_symmetric = any_of(kSymmetricAlgorithms);
  const bool any_asymmetric = any_of(kAsymmetricAlgorithms);
  const Entry& at = algorithms ? *algorithms : entry_;
  const auto line = [&](const char* key) {
    const Entry* other = section_.find(key);
    return other ? " (" + std::string(key) + " is at " + Reader::line_of(*other) + ")"
                 : std::string();
  };
  if (any_symmetric && any_asymmetric) {
    reader_.error(at, entry_.path +
                          ": algorithms mixes HMAC (HS*) with public-key algorithms; a provider "
                          "is either symmetric or asymmetric (HS256 signed with a public key is "
                          "a classic forgery)");
  } else if (!provider_.secret_file.empty() && any_asymmetric) {
    reader_.error(
        at, entry_.path + ": secret_file works with HS256/384/512 only" + line("secret_file"));
  } else if (provider_.secret_file.empty() && any_symmetric && !provider_.jwks_url.empty()) {
    reader_.error(at, entry_.path +
                          ": HMAC secrets are never fetched over the network; use secret_file" +
                          line("jwks_url"));
  }
}

void ProviderParser::claims_and_token() {
  if (const Entry* claims = section_.find("required_claims")) {
    for (const auto& item : reader_.items(*claims)) {
      if (const auto text = reader_.string(item); text && !text->empty()) {
        provider_.required_claims.push_back(*text);
      } else if (text) {
        reader_.error(item, item.path + ": a claim name must not be empty");
      }
    }
  }
  if (const Entry* token = section_.find("token")) {
    if (const auto fields = reader_.section(*token, {"header", "scheme", "cookie"})) {
      const Entry* cookie = fields->find("cookie");
      const Entry* header = fields->find("header");
      const Entry* scheme = fields->find("scheme");
      if (cookie && (header || scheme)) {
        const Entry& other = header ? *header : *scheme;
        reader_.error(*cookie, token->path +
                                   ": give either cookie, or header (and scheme), not both (" +
                                   other.key.Scalar() + " is at " + Reader::line_of(other) + ")");
      }
      if (cookie) {
        if (const auto text = reader_.string(*cookie)) {
          if (!syntax::is_token(*text))
            reader_.error(*cookie, cookie->path + ": " + quote(*text) + " is not a cookie name");
          provider_.token_cookie = *text;
        }
      }
      set(*fields, "header", provider_.token_header,
          [&](const Entry& e) { return reader_.header_name(e); });
      set(*fields, "scheme", provider_.token_scheme,
          [&](const Entry& e) -> std::optional<std::string> {
            auto text = reader_.string(e);
            if (text && !syntax::is_token(*text)) {
              reader_.error(e, e.path + ": " + quote(*text) + " is not an authentication scheme");
              return std::nullopt;
            }
            return text;
          });
    }
  }
  if (const Entry* forward = section_.find("forward_claims")) {
    if (const auto fields = reader_.section(*forward, {}, true)) {
      for (const auto& [claim, item] : fields->entries()) {
        const auto header = reader_.header_name(item);
        if (!header) continue;
        const std::string name = core::ascii_lowercase(*header);
        const bool reserved = is_unsettable_header(name) || name == "authorization" ||
                              name == "cookie" || name == "x-forwarded-for" ||
                              name == "x-forwarded-proto" || name == "x-forwarded-host";
        if (reserved) {
          reader_.error(item, item.path + ": " + quote(*header) + " cannot carry a claim");
          continue;
        }
        provider_.forward_claims.emplace_back(claim, *header);
      }
    }
  }
}

JwtProvider parse_jwt_provider(Reader& reader, const Entry& entry, std::string name) {
  JwtProvider provider;
  provider.name = std::move(name);
  provider.location = reader.key_location_of(entry);
  const auto section =
      reader.section(entry, {"issuer", "audiences", "jwks_file", "jwks_url", "jwks_ca_file",
                             "secret_file", "jwks_refresh", "algorithms", "clock_skew",
                             "required_claims", "require_exp", "token", "forward_claims"});
  if (!section) return provider;
  ProviderParser parser(reader, entry, *section, provider);
  parser.identity();
  parser.key_source();
  parser.timing();
  parser.algorithms();
  parser.claims_and_token();
  return provider;
}

}  // namespace

void parse_jwt_providers(Reader& reader, const Entry& entry, std::vector<JwtProvider>& providers) {
  const auto section = reader.section(entry, {}, true);
  if (!section) return;
  for (const auto& [name, item] : section->entries()) {
    if (!syntax::is_name(name)) {
      reader.error(item.key.Mark(), item.path +
                                        ": provider names use letters, digits, '_', '-' and '.' "
                                        "(at most 64)");
    }
    providers.push_back(parse_jwt_provider(reader, item, name));
  }
}

}  // namespace portcullis::config
