#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/core/text.hpp"

#include <algorithm>

#include <optional>

#include "append.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::filters {
namespace {

using http::iequals;

// Headers the gateway states itself (or refuses to pass): switching on the length first keeps
// the common case to one or two comparisons.
bool is_gateway_owned(std::string_view name) {
  switch (name.size()) {
    case 4:
      return iequals(name, "Host");
    case 6:
      return iequals(name, "Expect");
    case 9:
      return iequals(name, "Forwarded") || iequals(name, "X-Real-IP");
    case 14:
      return iequals(name, "Content-Length");
    case 15:
      return iequals(name, "X-Forwarded-For");
    case 16:
      return iequals(name, "X-Forwarded-Host");
    case 17:
      return iequals(name, "X-Forwarded-Proto") || iequals(name, "Transfer-Encoding");
    default:
      return false;
  }
}

bool is_xff(std::string_view name) {
  return iequals(name, "X-Forwarded-For");
}

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// One X-Forwarded-For element: "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443"
// or "192.0.2.1:443". Anything else (obfuscated ids, "unknown") is not an address.
std::optional<core::IpAddress> parse_forwarded_address(std::string_view element) {
  if (element.starts_with('[')) {
    const auto close = element.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const auto rest = element.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && all_digits(rest.substr(1)))) return std::nullopt;
    return core::IpAddress::parse(element.substr(1, close - 1));
  }
  const auto colon = element.find(':');
  if (colon != std::string_view::npos && element.find(':', colon + 1) == std::string_view::npos) {
    // A single colon can only be IPv4 with a port.
    if (!all_digits(element.substr(colon + 1))) return std::nullopt;
    auto address = core::IpAddress::parse(element.substr(0, colon));
    if (!address || !address->is_v4()) return std::nullopt;
    return address;
  }
  return core::IpAddress::parse(element);
}

bool is_trusted(const config::Policy& policy, const core::IpAddress& address) {
  for (const auto& cidr : policy.server.trusted_proxies) {
    if (cidr.contains(address)) return true;
  }
  return false;
}

bool method_needs_length(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

}  // namespace

core::IpAddress client_ip(const config::Policy& policy, const http::RequestHead& head,
                          const core::IpAddress& peer) {
  if (!is_trusted(policy, peer)) return peer;
  // Each trusted hop appended the address it saw, so walk from the right and stop at the first
  // address no trusted proxy vouches for.
  core::IpAddress candidate = peer;
  for (auto header = head.headers.rbegin(); header != head.headers.rend(); ++header) {
    if (!is_xff(header->name)) continue;
    std::string_view value = header->value;
    while (!value.empty()) {
      const auto comma = value.rfind(',');
      const auto element =
          core::trim_ows(comma == std::string_view::npos ? value : value.substr(comma + 1));
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(0, comma);
      if (element.empty()) continue;
      const auto address = parse_forwarded_address(element);
      if (!address) return candidate;
      if (!is_trusted(policy, *address)) return *address;
      candidate = *address;
    }
  }
  // Only trusted proxies in the chain: the left-most is the best the gateway knows.
  return candidate;
}

void build_upstream_request(const config::Policy& policy, const UpstreamRequest& request,
                            std::string& out) {
  const http::RequestHead& head = request.head;
  const std::string_view request_id_header = policy.server.request_id.header;

  std::size_t estimate = 256 + request.normalized_path.size() + head.query.size() +
                         2 * head.host.size() + request_id_header.size() +
                         request.request_id.size();
  for (const auto& header : head.headers)
    estimate += header.name.size() + header.value.size() + 4;
  detail::reserve_more(out, estimate);

  out += head.method;
  out += ' ';
  out += request.normalized_path;
  if (head.has_query) {
    out += '?';
    out += head.query;
  }
  out += " HTTP/1.1\r\n";
  detail::append_header(out, "Host", head.host);

  bool client_sent_xff = false;
  for (const auto& header : head.headers) {
    if (is_gateway_owned(header.name)) {
      client_sent_xff = client_sent_xff || is_xff(header.name);
      continue;
    }
    if (iequals(header.name, request_id_header) || http::is_hop_by_hop(header.name)) continue;
    if (std::any_of(request.gateway_owned.begin(), request.gateway_owned.end(),
                    [&](const std::string& owned) { return iequals(header.name, owned); })) {
      continue;
    }
    if (!head.connection.empty() && http::named_by_connection(header.name, head.connection)) {
      continue;
    }
    detail::append_header(out, header.name, header.value);
  }

  out += "X-Forwarded-For: ";
  if (request.peer_is_trusted_proxy && client_sent_xff) {
    for (const auto& header : head.headers) {
      if (!is_xff(header.name) || header.value.empty()) continue;
      out += header.value;
      out += ", ";
    }
  }
  detail::append_ip(out, request.peer);
  out += "\r\n";
  out += "X-Forwarded-Proto: https\r\n";
  if (!head.host.empty()) detail::append_header(out, "X-Forwarded-Host", head.host);
  if (!request.request_id.empty()) {
    detail::append_header(out, request_id_header, request.request_id);
  }
  for (const auto& [name, value] : request.added)
    detail::append_header(out, name, value);

  switch (request.framing) {
    case http::BodyFraming::content_length:
      out += "Content-Length: ";
      detail::append_number(out, request.content_length);
      out += "\r\n";
      break;
    case http::BodyFraming::chunked:
      out += "Transfer-Encoding: chunked\r\n";
      break;
    case http::BodyFraming::none:
    case http::BodyFraming::until_close:
      // Some servers wait for a body (or answer 411) on a length-less POST/PUT/PATCH.
      if (method_needs_length(head.method)) out += "Content-Length: 0\r\n";
      break;
  }
  out += "\r\n";
}

}  // namespace portcullis::filters
