#include "portcullis/filters/response_headers.hpp"
#include "portcullis/core/text.hpp"

#include "append.hpp"
#include "portcullis/core/errors.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::filters {
namespace {

using http::iequals;

// reason-phrase = *( HTAB / SP / VCHAR ); obs-text is refused too, so nothing odd reaches a
// client's parser from an upstream.
bool is_printable_reason(std::string_view reason) {
  for (const char c : reason) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte != '\t' && (byte < 0x20 || byte > 0x7e)) return false;
  }
  return true;
}

bool status_has_body(int status) {
  return status >= 200 && status != 204 && status != 304;
}

void append_status_line(std::string& out, int status, std::string_view reason) {
  out += "HTTP/1.1 ";
  detail::append_number(out, static_cast<std::uint64_t>(status < 0 ? 0 : status));
  out += ' ';
  out += reason;
  out += "\r\n";
}

bool listed(const std::vector<std::string>& names, std::string_view name) {
  for (const auto& listed_name : names) {
    if (iequals(listed_name, name)) return true;
  }
  return false;
}

bool is_set_by_gateway(const config::HeaderSettings& settings, std::string_view name) {
  for (const auto& [set_name, value] : settings.response_set) {
    if (iequals(set_name, name)) return true;
  }
  return false;
}

void append_set_headers(std::string& out, const config::HeaderSettings& settings) {
  for (const auto& [name, value] : settings.response_set)
    detail::append_header(out, name, value);
}

void append_content_length(std::string& out, std::uint64_t length) {
  out += "Content-Length: ";
  detail::append_number(out, length);
  out += "\r\n";
}

std::string_view same_site_value(config::SameSite same_site) {
  switch (same_site) {
    case config::SameSite::strict:
      return "Strict";
    case config::SameSite::lax:
      return "Lax";
    case config::SameSite::none:
      return "None";
    case config::SameSite::off:
      break;
  }
  return {};
}

// Appends `set_cookie` with the missing flags. Attributes are the ';'-separated parts after the
// first name=value pair; their names compare case-insensitively.
void append_cookie_with_flags(std::string& out, const config::CookieFlags& flags,
                              std::string_view set_cookie) {
  bool has_secure = false;
  bool has_http_only = false;
  bool has_same_site = false;
  bool same_site_none = false;
  const auto first = set_cookie.find(';');
  std::string_view attributes =
      first == std::string_view::npos ? std::string_view{} : set_cookie.substr(first + 1);
  while (!attributes.empty()) {
    const auto semicolon = attributes.find(';');
    const auto attribute = attributes.substr(0, semicolon);
    const auto equals = attribute.find('=');
    const auto name = core::trim_ows(attribute.substr(0, equals));
    if (iequals(name, "Secure")) {
      has_secure = true;
    } else if (iequals(name, "HttpOnly")) {
      has_http_only = true;
    } else if (iequals(name, "SameSite")) {
      has_same_site = true;
      same_site_none = equals != std::string_view::npos &&
                       iequals(core::trim_ows(attribute.substr(equals + 1)), "None");
    }
    if (semicolon == std::string_view::npos) break;
    attributes.remove_prefix(semicolon + 1);
  }

  const bool add_same_site = flags.same_site != config::SameSite::off && !has_same_site;
  if (add_same_site) same_site_none = flags.same_site == config::SameSite::none;
  // Browsers drop SameSite=None cookies that are not Secure.
  const bool add_secure = !has_secure && (flags.secure || same_site_none);
  const bool add_http_only = flags.http_only && !has_http_only;

  if (add_secure || add_http_only || add_same_site) {
    // "a=b;" would otherwise become "a=b;; Secure".
    while (!set_cookie.empty() &&
           (set_cookie.back() == ';' || set_cookie.back() == ' ' || set_cookie.back() == '\t')) {
      set_cookie.remove_suffix(1);
    }
  }
  out += set_cookie;
  if (add_secure) out += "; Secure";
  if (add_http_only) out += "; HttpOnly";
  if (add_same_site) {
    out += "; SameSite=";
    out += same_site_value(flags.same_site);
  }
}

}  // namespace

void build_client_response(const ResponseContext& context, const http::ResponseHead& upstream,
                           http::BodyFraming framing, std::uint64_t content_length,
                           std::string& out) {
  const config::HeaderSettings& settings = context.policy.headers;
  const std::string_view request_id_header = context.policy.server.request_id.header;

  std::size_t estimate =
      256 + upstream.reason.size() + request_id_header.size() + context.request_id.size();
  for (const auto& header : upstream.headers) {
    estimate += header.name.size() + header.value.size() + 4;
  }
  for (const auto& [name, value] : settings.response_set)
    estimate += name.size() + value.size() + 4;
  detail::reserve_more(out, estimate);

  const std::string_view reason = !upstream.reason.empty() && is_printable_reason(upstream.reason)
                                      ? upstream.reason
                                      : core::reason_phrase(upstream.status);
  append_status_line(out, upstream.status, reason);

  // A HEAD answer has no body: the upstream's Content-Length only tells the client what a GET
  // would return, so it passes unless the caller states a length itself.
  const bool keep_head_length = context.head_request && framing == http::BodyFraming::none;
  bool kept_length = false;

  for (const auto& header : upstream.headers) {
    const std::string_view name = header.name;
    if (iequals(name, "Content-Length")) {
      if (keep_head_length && !kept_length) {
        detail::append_header(out, name, header.value);
        kept_length = true;
      }
      continue;
    }
    if (http::is_hop_by_hop(name)) continue;
    if (!upstream.connection.empty() && http::named_by_connection(name, upstream.connection)) {
      continue;
    }
    if (iequals(name, request_id_header) || listed(settings.response_remove, name) ||
        is_set_by_gateway(settings, name)) {
      continue;
    }
    if (iequals(name, "Set-Cookie")) {
      out += name;
      out += ": ";
      append_cookie_with_flags(out, settings.cookies, header.value);
      out += "\r\n";
      continue;
    }
    detail::append_header(out, name, header.value);
  }

  append_set_headers(out, settings);
  if (!context.request_id.empty())
    detail::append_header(out, request_id_header, context.request_id);

  switch (framing) {
    case http::BodyFraming::content_length:
      append_content_length(out, content_length);
      break;
    case http::BodyFraming::chunked:
      out += "Transfer-Encoding: chunked\r\n";
      break;
    case http::BodyFraming::none:
      // Without a length a client could wait for a body until the connection closes.
      if (!context.head_request && status_has_body(upstream.status)) append_content_length(out, 0);
      break;
    case http::BodyFraming::until_close:
      // The body ends when the gateway closes the connection; nothing to state.
      break;
  }
  if (context.close_connection) out += "Connection: close\r\n";
  out += "\r\n";
}

void build_local_reply(const ResponseContext& context, int status, std::string_view error_code,
                       std::span<const ExtraHeader> extra, std::string& out) {
  build_local_reply_with_body(context, status, core::error_body(error_code, context.request_id),
                              extra, out);
}

void build_local_reply_with_body(const ResponseContext& context, int status, std::string_view body,
                                 std::span<const ExtraHeader> extra, std::string& out) {
  const config::HeaderSettings& settings = context.policy.headers;
  const std::string_view request_id_header = context.policy.server.request_id.header;

  std::size_t estimate = 256 + body.size() + request_id_header.size() + context.request_id.size();
  for (const auto& [name, value] : settings.response_set)
    estimate += name.size() + value.size() + 4;
  for (const auto& [name, value] : extra)
    estimate += name.size() + value.size() + 4;
  detail::reserve_more(out, estimate);

  append_status_line(out, status, core::reason_phrase(status));
  append_set_headers(out, settings);
  out += "Content-Type: application/json\r\n";
  append_content_length(out, body.size());
  if (!context.request_id.empty())
    detail::append_header(out, request_id_header, context.request_id);
  for (const auto& [name, value] : extra)
    detail::append_header(out, name, value);
  if (context.close_connection) out += "Connection: close\r\n";
  out += "\r\n";
  if (!context.head_request) out += body;
}

std::string apply_cookie_flags(const config::CookieFlags& flags, std::string_view set_cookie) {
  std::string out;
  out.reserve(set_cookie.size() + 40);
  append_cookie_with_flags(out, flags, set_cookie);
  return out;
}

}  // namespace portcullis::filters
