#include "portcullis/validate/json_body.hpp"

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/value_stack.hpp>

namespace portcullis::validate {
namespace {

namespace json = boost::json;

// Builds the document like boost::json::parser does, and adds the checks Boost.JSON lacks:
// string and name length, finite numbers, and the member counts needed to spot repeated names.
class Handler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  explicit Handler(std::size_t max_string_bytes) : max_string_bytes_(max_string_bytes) {}

  void reset(json::storage_ptr storage) {
    stack_.reset(std::move(storage));
    member_counts_.clear();
    open_objects_.clear();
    limit_exceeded_ = false;
  }

  bool limit_exceeded() const { return limit_exceeded_; }
  json::value release() { return stack_.release(); }

  // Boost.JSON keeps one member when a name repeats, so an object built from n members has
  // fewer than n when a name repeated. The parser's counts were recorded in pre-order; walking
  // the document in the same order finds the first object that lost a member. (Objects that come
  // before it in pre-order are untouched by any collapse, so the two orders stay aligned.)
  bool has_repeated_names(const json::value& document) const {
    std::size_t next = 0;
    return !counts_match(document, next) || next != member_counts_.size();
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    open_objects_.push_back(member_counts_.size());
    member_counts_.push_back(0);
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    member_counts_[open_objects_.back()] = n;
    open_objects_.pop_back();
    stack_.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    stack_.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!within_string_limit(n, ec)) return false;
    stack_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!within_string_limit(n, ec)) return false;
    stack_.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!within_string_limit(n, ec)) return false;
    stack_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!within_string_limit(n, ec)) return false;
    stack_.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    stack_.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    stack_.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code& ec) {
    if (!std::isfinite(d)) return refuse(ec);
    stack_.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    stack_.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    stack_.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  // `n` is the length so far, this part included.
  bool within_string_limit(std::size_t n, json::error_code& ec) {
    return n <= max_string_bytes_ || refuse(ec);
  }

  bool refuse(json::error_code& ec) {
    limit_exceeded_ = true;
    ec = json::error::exception;
    return false;
  }

  bool counts_match(const json::value& v, std::size_t& next) const {
    if (const auto* object = v.if_object()) {
      if (next >= member_counts_.size() || member_counts_[next] != object->size()) return false;
      ++next;
      for (const auto& member : *object) {
        if (!counts_match(member.value(), next)) return false;
      }
    } else if (const auto* array = v.if_array()) {
      for (const auto& element : *array) {
        if (!counts_match(element, next)) return false;
      }
    }
    return true;
  }

  std::size_t max_string_bytes_;
  json::value_stack stack_;
  std::vector<std::size_t> member_counts_;  // per object, in pre-order
  std::vector<std::size_t> open_objects_;   // indexes into member_counts_
  bool limit_exceeded_ = false;
};

json::parse_options parse_options_for(const JsonLimits& limits) {
  json::parse_options options;
  options.max_depth = limits.max_depth;
  return options;
}

bool is_json_whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

struct JsonBodyParser::Impl {
  Impl(const JsonLimits& l, json::storage_ptr storage)
      : limits(l), parser(parse_options_for(l), l.max_string_bytes) {
    parser.handler().reset(std::move(storage));
  }

  core::Reason fail(core::Reason why) {
    reason = why;
    return why;
  }

  core::Reason reason_for(const json::error_code& ec) {
    if (parser.handler().limit_exceeded() || ec == json::error::too_deep) {
      return fail(core::Reason::json_limit_exceeded);
    }
    return fail(core::Reason::invalid_json);
  }

  JsonLimits limits;
  json::basic_parser<Handler> parser;
  core::Reason reason = core::Reason::none;
  std::size_t consumed = 0;
  bool complete = false;                // finish() succeeded
  std::optional<json::value> document;  // the result, until released
};

JsonBodyParser::JsonBodyParser(const JsonLimits& limits, json::storage_ptr storage)
    : impl_(std::make_unique<Impl>(limits, std::move(storage))) {}

JsonBodyParser::~JsonBodyParser() = default;
JsonBodyParser::JsonBodyParser(JsonBodyParser&&) noexcept = default;
JsonBodyParser& JsonBodyParser::operator=(JsonBodyParser&&) noexcept = default;

core::Reason JsonBodyParser::write(std::string_view chunk) {
  auto& d = *impl_;
  if (d.reason != core::Reason::none) return d.reason;
  if (chunk.size() > d.limits.max_bytes - d.consumed) {
    return d.fail(core::Reason::body_too_large);
  }
  if (d.parser.done()) {
    // Only whitespace may follow the document.
    for (char c : chunk) {
      if (!is_json_whitespace(c)) return d.fail(core::Reason::invalid_json);
      ++d.consumed;
    }
    return core::Reason::none;
  }
  json::error_code ec;
  const std::size_t n = d.parser.write_some(true, chunk.data(), chunk.size(), ec);
  d.consumed += n;
  if (ec) return d.reason_for(ec);
  if (n < chunk.size()) return write(chunk.substr(n));
  return core::Reason::none;
}

core::Reason JsonBodyParser::finish() {
  auto& d = *impl_;
  if (d.reason != core::Reason::none || d.complete) return d.reason;
  if (!d.parser.done()) {
    json::error_code ec;
    d.parser.write_some(false, nullptr, 0, ec);
    if (ec) return d.reason_for(ec);
  }
  d.document.emplace(d.parser.handler().release());
  if (d.parser.handler().has_repeated_names(*d.document)) {
    d.document.reset();
    return d.fail(core::Reason::invalid_json);
  }
  d.complete = true;
  return core::Reason::none;
}

json::value JsonBodyParser::release() {
  auto& d = *impl_;
  if (!d.document) return nullptr;
  // Move-constructed, not assigned, so that the value keeps the caller's storage.
  json::value document(std::move(*d.document));
  d.document.reset();
  return document;
}

std::size_t JsonBodyParser::bytes() const {
  return impl_->consumed;
}

void JsonBodyParser::reset(json::storage_ptr storage) {
  auto& d = *impl_;
  d.parser.reset();
  d.parser.handler().reset(std::move(storage));
  d.reason = core::Reason::none;
  d.consumed = 0;
  d.complete = false;
  d.document.reset();
}

JsonBody parse_json_body(std::string_view body, const JsonLimits& limits,
                         json::storage_ptr storage) {
  JsonBodyParser parser(limits, std::move(storage));
  core::Reason reason = parser.write(body);
  if (reason == core::Reason::none) reason = parser.finish();
  if (reason != core::Reason::none) return JsonBody{reason, nullptr, parser.bytes()};
  return JsonBody{reason, parser.release(), 0};
}

}  // namespace portcullis::validate
