#pragma once
// The gateway's own answers: a status, the public error code that goes into the small JSON body,
// and nothing else. Bodies never carry a stack trace, a path, an upstream address or a library's
// message; the internal reason code stays in logs and metrics.

#include <string>
#include <string_view>

#include "portcullis/core/reason.hpp"

namespace portcullis::core {

// A reply the gateway produces itself instead of forwarding.
struct LocalReply {
  int status = 0;
  Reason reason = Reason::none;
  bool close_connection = false;  // malformed input and timeouts end the connection
};

// The public error code for a status ("not_found", "bad_request", ...).
std::string_view error_code_for_status(int status);

// The standard reason phrase ("Not Found"); "Unknown" for statuses it does not know.
std::string_view reason_phrase(int status);

// `{"error":"<code>","request_id":"<id>"}`. The request id is escaped as a JSON string.
std::string error_body(std::string_view code, std::string_view request_id);

// Appends `text` as the inside of a JSON string: quotes and backslashes escaped, well-formed
// UTF-8 kept, control characters and bytes that are not well-formed UTF-8 as \u00XX (the text
// may be bytes from the wire), so every line the gateway writes stays valid JSON.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace portcullis::core
