#include "portcullis/validate/request_rules.hpp"

#include <cstdio>
#include <stdexcept>
#include <utility>

#include "portcullis/core/errors.hpp"

namespace portcullis::validate {
namespace {

// A member name may be as long as JsonLimits::max_string_bytes; the answer stays small.
constexpr std::size_t kMaxPointerBytes = 512;

Verdict refuse(core::Reason reason, std::string pointer = {}) {
  return Verdict{status_for(reason), reason, std::move(pointer)};
}

}  // namespace

RequestRules::RequestRules(RequestRulesSpec spec)
    : schema_(std::move(spec.schema)),
      limits_(spec.json_limits),
      expose_pointer_(spec.expose_pointer) {
  if (!spec.content_types.empty()) {
    std::string error;
    content_types_ = MediaTypeSet::compile(spec.content_types, error);
    if (!content_types_) throw std::invalid_argument(error);
  }
  if (spec.max_body_bytes != 0) limits_.max_bytes = spec.max_body_bytes;
}

Verdict RequestRules::check_head(std::optional<std::string_view> content_type,
                                 std::optional<std::uint64_t> content_length, bool has_body) const {
  if (!has_body) return {};
  if (content_types_) {
    if (content_types_->check(content_type) != core::Reason::none) {
      return refuse(core::Reason::content_type_not_allowed);
    }
  } else if (schema_ && (!content_type || !is_json_media_type(*content_type))) {
    return refuse(core::Reason::content_type_not_allowed);
  }
  if (content_length && *content_length > limits_.max_bytes) {
    return refuse(core::Reason::body_too_large);
  }
  return {};
}

Verdict RequestRules::check_body(std::string_view body, boost::json::storage_ptr storage) const {
  if (body.size() > limits_.max_bytes) return refuse(core::Reason::body_too_large);
  if (!schema_) return {};
  const JsonBody parsed = parse_json_body(body, limits_, std::move(storage));
  return check_document(parsed.reason, parsed.value);
}

JsonBodyParser RequestRules::body_parser(boost::json::storage_ptr storage) const {
  return JsonBodyParser(limits_, std::move(storage));
}

Verdict RequestRules::check_document(core::Reason parsed,
                                     const boost::json::value& document) const {
  if (parsed != core::Reason::none) return refuse(parsed);
  if (!schema_) return {};
  auto violation = schema_->validate(document);
  if (!violation) return {};
  return refuse(core::Reason::schema_violation,
                expose_pointer_ ? std::move(violation->instance_pointer) : std::string());
}

std::string invalid_body_response(std::string_view request_id, std::string_view pointer) {
  std::string out = core::error_body("invalid_body", request_id);
  if (pointer.empty() || pointer.size() > kMaxPointerBytes) return out;
  // Same escaping as the request id: the pointer carries member names the client chose.
  out.pop_back();
  out += R"(,"pointer":")";
  core::append_json_escaped(out, pointer);
  out += R"("})";
  return out;
}

int status_for(core::Reason reason) {
  switch (reason) {
    case core::Reason::none:
      return 0;
    case core::Reason::body_too_large:
      return 413;
    case core::Reason::content_type_not_allowed:
      return 415;
    default:
      return 400;
  }
}

}  // namespace portcullis::validate
