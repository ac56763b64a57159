#pragma once
// The request head the upstream receives. The client's copies of X-Forwarded-For/-Proto/-Host,
// Forwarded, X-Real-IP and of the request-id header are removed and set by the gateway; from a
// trusted proxy, X-Forwarded-For is appended to instead. Hop-by-hop headers, headers named in
// Connection, Expect (the gateway answers 100-continue itself) and the client's framing headers
// never pass; framing is restated for the body the gateway actually sends.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "portcullis/config/policy.hpp"
#include "portcullis/core/ip.hpp"
#include "portcullis/http/request_parser.hpp"

namespace portcullis::filters {

// The address a request is attributed to: the TCP peer, or when the peer is a trusted proxy,
// the right-most X-Forwarded-For address that is not itself a trusted proxy (a malformed entry
// stops the walk and the last good address is used).
core::IpAddress client_ip(const config::Policy& policy, const http::RequestHead& head,
                          const core::IpAddress& peer);

struct UpstreamRequest {
  const http::RequestHead& head;
  std::string_view normalized_path;  // what routing matched; sent instead of the raw path
  const core::IpAddress& peer;       // TCP peer of the client connection
  bool peer_is_trusted_proxy = false;
  std::string_view request_id;
  http::BodyFraming framing = http::BodyFraming::none;  // how the gateway sends the body
  std::uint64_t content_length = 0;                     // when framing == content_length
  // Headers only the gateway may set (those that carry verified JWT claims): every client copy
  // is removed, on every route, authenticated or not. Compared case-insensitively.
  std::span<const std::string> gateway_owned = {};
  // Headers the gateway adds (the verified claims of this request).
  std::span<const std::pair<std::string, std::string>> added = {};
};

// Appends the complete upstream request head (request line, headers, final CRLF) to `out`.
void build_upstream_request(const config::Policy& policy, const UpstreamRequest& request,
                            std::string& out);

}  // namespace portcullis::filters
