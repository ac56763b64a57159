#pragma once
// A route's `validate:` block, compiled once per policy: which media types a body may have, how
// large it may be, and the JSON schema it must satisfy. The connection loop asks two questions,
// one when the head has arrived and one when the body has, and turns each verdict into the answer
// the policy's table gives: 415 for the content type, 413 for the size, 400 "invalid_body" for a
// body that is not JSON or fails its schema. With `enforce: false` the caller logs the verdict and
// forwards anyway; this module knows nothing of enforcement, methods (the router answers 405) or
// sockets.
//
// At policy load:
//   RequestRulesSpec spec;
//   spec.content_types = {"application/json"};
//   spec.max_body_bytes = 4096;
//   spec.schema = JsonSchema::compile_file(policy_dir / "schemas/login.json");  // or SchemaError
//   RequestRules rules(std::move(spec));
// Per request:
//   Verdict v = rules.check_head(content_type, content_length, has_body);
//   if (v.ok() && has_body && rules.inspects_body()) {
//     read at most rules.max_body_bytes() (more: 413), then v = rules.check_body(body);
//   }
//   400: answer with invalid_body_response(request_id, v.pointer); 413/415: the usual error body.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include "portcullis/core/reason.hpp"
#include "portcullis/validate/content_type.hpp"
#include "portcullis/validate/json_body.hpp"
#include "portcullis/validate/json_schema.hpp"

namespace portcullis::validate {

// The block as the policy loader has read it.
struct RequestRulesSpec {
  // "type/subtype" or "type/*". Empty: any type, except that a route with a schema then accepts
  // only JSON types (application/json, application/*+json).
  std::vector<std::string> content_types;
  // Largest body accepted; 0 leaves json_limits.max_bytes in force.
  std::uint64_t max_body_bytes = 0;
  // Compiled by the loader, typically with JsonSchema::compile_file. None: bodies are not parsed.
  std::optional<JsonSchema> schema;
  // Whether a 400 names the failing place ("pointer": "/password").
  bool expose_pointer = true;
  // Depth and string limits for parsing; max_bytes is overridden by max_body_bytes when set.
  JsonLimits json_limits;
};

// What to do with a request. status 0 means go on.
struct Verdict {
  int status = 0;                            // 0, 400, 413 or 415
  core::Reason reason = core::Reason::none;  // for logs and metrics
  std::string pointer;                       // 400 from the schema, when exposed: "/password"

  bool ok() const { return status == 0; }
};

class RequestRules {
 public:
  // Throws std::invalid_argument naming a malformed content type entry.
  explicit RequestRules(RequestRulesSpec spec);

  // True when the body has to be read whole (at most max_body_bytes()) and checked before the
  // request is forwarded: the route has a schema. Otherwise the body may stream through.
  bool inspects_body() const { return schema_.has_value(); }

  // The body limit of this route.
  std::uint64_t max_body_bytes() const { return limits_.max_bytes; }

  // At the head. `content_type` is the Content-Type value (nullopt when absent), `content_length`
  // the declared length (nullopt when chunked or absent), `has_body` whether the request carries
  // a body at all (Content-Length present, even 0, or chunked). A request without a body is not
  // checked: a GET on a route that also takes POST passes.
  Verdict check_head(std::optional<std::string_view> content_type,
                     std::optional<std::uint64_t> content_length, bool has_body) const;

  // The whole body, once read (only when inspects_body()): size, JSON, schema. `storage` as in
  // parse_json_body.
  Verdict check_body(std::string_view body, boost::json::storage_ptr storage = {}) const;

  // For a body parsed incrementally: a parser with this route's limits...
  JsonBodyParser body_parser(boost::json::storage_ptr storage = {}) const;
  // ...and the verdict for what it returned: `parsed` from write()/finish(), `document` from
  // release() when `parsed` is Reason::none.
  Verdict check_document(core::Reason parsed, const boost::json::value& document) const;

 private:
  std::optional<MediaTypeSet> content_types_;  // nullopt: any (or JSON only, with a schema)
  std::optional<JsonSchema> schema_;
  JsonLimits limits_;
  bool expose_pointer_;
};

// The 400 answer's body: {"error":"invalid_body","request_id":"<id>","pointer":"/password"},
// with "pointer" left out when empty or longer than 512 bytes. Both strings are escaped as JSON.
std::string invalid_body_response(std::string_view request_id, std::string_view pointer);

// The status for a body verdict reason: body_too_large -> 413, content_type_not_allowed -> 415,
// invalid_json, json_limit_exceeded and schema_violation -> 400, none -> 0.
int status_for(core::Reason reason);

}  // namespace portcullis::validate
