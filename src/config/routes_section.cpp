// `routes`: match rules, the upstream, JWT auth with scopes and claims, request validation,
// rate limits, login protection and report-only mode, in file order (first match wins).

#include <algorithm>

#include "file_checks.hpp"
#include "portcullis/core/text.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

// The index of the entry of `list` named `name`, or an error at `at`.
template <typename T>
std::optional<std::size_t> find_named(Reader& reader, const Entry& at, const std::vector<T>& list,
                                      const std::string& name, const std::string& what,
                                      const std::string& section) {
  const auto found = std::find_if(list.begin(), list.end(),
                                  [&](const T& candidate) { return candidate.name == name; });
  if (found != list.end()) return static_cast<std::size_t>(found - list.begin());
  reader.error(at, at.path + ": no " + what + " named " + quote(name) + " in " + section);
  return std::nullopt;
}

void parse_match(Reader& reader, const Entry& match, RouteMatch& out) {
  const auto fields = reader.section(match, {"path", "path_prefix", "methods"});
  if (!fields) return;
  const auto path_text = [&](const Entry& e) -> std::optional<std::string> {
    auto text = reader.string(e);
    if (!text) return std::nullopt;
    if (const auto problem = syntax::route_path_problem(*text); !problem.empty()) {
      reader.error(e, e.path + ": " + quote(*text) + " " + problem);
      return std::nullopt;
    }
    return text;
  };
  const Entry* path = fields->find("path");
  const Entry* prefix = fields->find("path_prefix");
  set(*fields, "path", out.path, path_text);
  set(*fields, "path_prefix", out.path_prefix, path_text);
  if (path && prefix) {
    const bool prefix_later = prefix->key.Mark().pos > path->key.Mark().pos;
    const Entry& at = prefix_later ? *prefix : *path;
    const Entry& other = prefix_later ? *path : *prefix;
    reader.error(at, match.path + ": give path or path_prefix, not both (" + other.key.Scalar() +
                         " is at " + Reader::line_of(other) + ")");
  } else if (!path && !prefix) {
    reader.error(match, match.path +
                            ": needs path or path_prefix (path_prefix: / matches every "
                            "path)");
  }
  if (const Entry* methods = fields->find("methods")) {
    const auto list = reader.items(*methods);
    if (methods->value.IsSequence() && list.empty()) {
      reader.error(*methods, methods->path + ": empty list; leave methods out to allow any method");
    }
    for (const auto& item : list) {
      const auto text = reader.string(item);
      if (!text) continue;
      if (!syntax::is_token(*text)) {
        reader.error(item, item.path + ": " + quote(*text) + " is not a method name");
      } else if (syntax::upper(*text) != *text) {
        reader.error(item, item.path + ": methods are case-sensitive; write " +
                               quote(syntax::upper(*text)) + ", not " + quote(*text));
      } else if (std::find(out.methods.begin(), out.methods.end(), *text) != out.methods.end()) {
        reader.error(item, item.path + ": " + quote(*text) + " is listed twice");
      } else {
        out.methods.push_back(*text);
      }
    }
  }
}

std::optional<RouteAuth> parse_route_auth(Reader& reader, const Entry& entry,
                                          const Policy& policy) {
  if (entry.value.IsScalar() && entry.value.Scalar() == "none") return std::nullopt;
  if (!entry.value.IsMap()) {
    reader.error(entry, entry.path +
                            ": either 'none' or { jwt: PROVIDER, scopes: [...], claims: {...} }, "
                            "got " +
                            Reader::describe(entry.value));
    return std::nullopt;
  }
  const auto fields = reader.section(entry, {"jwt", "scopes", "claims"});
  if (!fields) return std::nullopt;
  RouteAuth auth;
  if (const Entry* jwt = fields->find("jwt")) {
    if (const auto text = reader.string(*jwt)) {
      auth.provider = *text;
      if (const auto index =
              find_named(reader, *jwt, policy.jwt_providers, *text, "provider", "jwt_providers")) {
        auth.provider_index = *index;
      }
    }
  } else {
    reader.error(entry, entry.path + ": jwt is required (the provider's name)");
  }
  if (const Entry* scopes = fields->find("scopes")) {
    for (const auto& item : reader.items(*scopes)) {
      const auto text = reader.string(item);
      if (!text) continue;
      if (text->empty() || text->find_first_of(" \t") != std::string::npos) {
        reader.error(item, item.path + ": a scope is one non-empty word");
      } else {
        auth.scopes.push_back(*text);
      }
    }
  }
  if (const Entry* claims = fields->find("claims")) {
    if (const auto values = reader.section(*claims, {}, true)) {
      for (const auto& [claim, item] : values->entries()) {
        if (!item.value.IsScalar()) {
          reader.error(item,
                       item.path + ": a required claim value is a string, a number or a boolean");
          continue;
        }
        ClaimRequirement requirement;
        requirement.claim = claim;
        requirement.value = item.value.Scalar();
        const std::string& text = requirement.value;
        const bool quoted = item.value.Tag() == "!";
        if (!quoted && (text == "true" || text == "false")) {
          requirement.kind = ClaimRequirement::Kind::boolean;
        } else if (!quoted && !text.empty() &&
                   std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(),
                               syntax::is_digit) &&
                   text.size() < 19 && text != "-") {
          requirement.kind = ClaimRequirement::Kind::integer;
        }
        auth.claims.push_back(std::move(requirement));
      }
    }
  }
  return auth;
}

std::optional<RouteValidation> parse_route_validation(Reader& reader, const Entry& entry,
                                                      const Policy& policy) {
  const auto fields =
      reader.section(entry, {"content_types", "max_body_bytes", "json_schema", "error_pointer"});
  if (!fields) return std::nullopt;
  RouteValidation validation;
  validation.location = reader.location_of(entry);
  if (const Entry* types = fields->find("content_types")) {
    for (const auto& item : reader.items(*types)) {
      const auto text = reader.string(item);
      if (!text) continue;
      const auto slash = text->find('/');
      const bool shaped =
          slash != std::string::npos && slash > 0 && slash + 1 < text->size() &&
          syntax::is_token(text->substr(0, slash)) &&
          (text->substr(slash + 1) == "*" || syntax::is_token(text->substr(slash + 1)));
      if (!shaped || *text == "*/*") {
        reader.error(item, item.path + ": " + quote(*text) +
                               " is not a media type (type/subtype or type/*; */* is refused)");
      } else {
        validation.content_types.push_back(core::ascii_lowercase(*text));
      }
    }
  }
  if (const Entry* max = fields->find("max_body_bytes")) {
    if (const auto bytes = reader.size(*max)) {
      if (*bytes > policy.server.limits.max_body_bytes) {
        reader.error(*max, max->path + ": may only lower server.limits.max_body_bytes (" +
                               std::to_string(policy.server.limits.max_body_bytes) + ")");
      } else {
        validation.max_body_bytes = *bytes;
      }
    }
  }
  if (const Entry* schema = fields->find("json_schema")) {
    if (const auto path = reader.file_path(*schema, true); path && !path->empty()) {
      files::check_readable_file(reader, *path, *schema);
      validation.json_schema = *path;
      validation.json_schema_location = reader.location_of(*schema);
    }
  }
  set(*fields, "error_pointer", validation.error_pointer,
      [&](const Entry& e) { return reader.boolean(e); });
  // A body checked against a schema is held in memory whole: bound what one request may commit.
  const std::uint64_t limit =
      validation.max_body_bytes ? validation.max_body_bytes : policy.server.limits.max_body_bytes;
  if (!validation.json_schema.empty() && limit > kMaxValidatedBodyBytes) {
    const Entry* max = fields->find("max_body_bytes");
    reader.error(max ? *max : entry,
                 (max ? max->path : entry.path) +
                     ": a body checked against json_schema is read whole, so its limit is at "
                     "most 16MiB (this route's is " +
                     std::to_string(limit) + " bytes; set validate.max_body_bytes)");
  }
  return validation;
}

std::optional<Route> parse_route(Reader& reader, const Entry& entry, const Policy& policy) {
  const auto section = reader.section(entry, {"name", "match", "upstream", "auth", "validate",
                                              "rate_limit", "login_protection", "enforce"});
  if (!section) return std::nullopt;
  Route route;
  route.location = reader.location_of(entry);
  if (const Entry* name = section->find("name")) {
    if (const auto text = reader.string(*name)) {
      const auto first = std::find_if(policy.routes.begin(), policy.routes.end(),
                                      [&](const Route& other) { return other.name == *text; });
      if (!syntax::is_name(*text)) {
        reader.error(*name, name->path + ": " + quote(*text) +
                                " is not a route name (letters, digits, '_', '-', '.'; at most "
                                "64)");
      } else if (first != policy.routes.end()) {
        reader.error(*name, name->path + ": route name " + quote(*text) +
                                " is already used (line " + std::to_string(first->location.line) +
                                ")");
      } else {
        route.name = *text;
      }
    }
  } else {
    reader.error(entry, entry.path + ": name is required");
  }

  if (const Entry* match = section->find("match")) {
    parse_match(reader, *match, route.match);
  } else {
    reader.error(entry, entry.path + ": match is required");
  }

  if (const Entry* upstream = section->find("upstream")) {
    if (const auto text = reader.string(*upstream)) {
      route.upstream = *text;
      if (const auto index =
              find_named(reader, *upstream, policy.upstreams, *text, "upstream", "upstreams")) {
        route.upstream_index = *index;
      }
    }
  } else {
    reader.error(entry, entry.path + ": upstream is required");
  }

  const Entry* auth = section->find("auth");
  if (auth) route.auth = parse_route_auth(reader, *auth, policy);
  if (const Entry* validate = section->find("validate")) {
    route.validate = parse_route_validation(reader, *validate, policy);
  }
  if (const Entry* limits = section->find("rate_limit")) {
    route.rate_limits =
        parse_route_rate_limits(reader, *limits, policy, auth, route.auth.has_value());
  }
  if (const Entry* protection = section->find("login_protection")) {
    route.login_protection = parse_login_protection(reader, *protection);
  }
  set(*section, "enforce", route.enforce, [&](const Entry& e) { return reader.boolean(e); });
  return route;
}

}  // namespace

void parse_routes(Reader& reader, const Entry& entry, Policy& policy) {
  for (const auto& item : reader.items(entry)) {
    if (auto route = parse_route(reader, item, policy)) policy.routes.push_back(std::move(*route));
  }
}

}  // namespace portcullis::config
