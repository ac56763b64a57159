#pragma once
// Path normalisation. The path that routes are matched against is the path the upstream
// receives, so no encoding trick can reach a route that the decoded path would not match.
//
// Policy (documented in conf/portcullis.yaml): percent-encoded unreserved characters are decoded
// ("%41" -> "A"), other escapes are kept with upper-case hex; "." and ".." segments are resolved,
// encoded or not; repeated slashes are merged. Refused with 400: %2F and %5C (encoded slash and
// backslash: reason encoded_slash), %00 (encoded_nul), other encoded control characters such as
// %0D%0A (bad_path), "%25" followed by two hex digits (double_encoding), a malformed escape or a
// raw byte outside RFC 3986 (bad_path), a raw backslash (bad_path), and ".." that would climb above
// the root (path_traversal).

#include <string>
#include <string_view>

#include "portcullis/core/reason.hpp"

namespace portcullis::http {

// `raw_path` is the path part of an origin-form target (starts with '/'). On success returns
// Reason::none and sets `normalized` (it always starts with '/').
core::Reason normalize_path(std::string_view raw_path, std::string& normalized);

}  // namespace portcullis::http
