#pragma once
// Invariants of the client-facing HTTP code, shared by the HTTP fuzz targets: path normalisation,
// the chunked decoder (whole and in pieces) and the request head.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/http/chunked.hpp"
#include "portcullis/http/path.hpp"
#include "portcullis/http/request_parser.hpp"

namespace portcullis::fuzz {

using http::ParseState;

inline bool trimmed(std::string_view v) {
  return v.empty() ||
         (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

inline void check_path(std::string_view raw) {
  std::string out;
  const core::Reason reason = http::normalize_path(raw, out);
  if (reason != core::Reason::none) return;
  FUZZ_CHECK(!out.empty() && out.front() == '/');
  FUZZ_CHECK(out.find("//") == std::string::npos);
  FUZZ_CHECK(out.find("/../") == std::string::npos);
  FUZZ_CHECK(out.find("/./") == std::string::npos);
  FUZZ_CHECK(std::string_view(out).substr(out.size() >= 3 ? out.size() - 3 : 0) != "/..");
  FUZZ_CHECK(std::string_view(out).substr(out.size() >= 2 ? out.size() - 2 : 0) != "/.");
  FUZZ_CHECK(out.find('\\') == std::string::npos);
  for (const char c : out)
    FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  // every escape that is left is upper-case and stands for a byte that must stay encoded
  for (std::size_t p = out.find('%'); p != std::string::npos; p = out.find('%', p + 1)) {
    FUZZ_CHECK(p + 2 < out.size());
    const auto hex = [](char c) { return c >= 'A' && c <= 'F' ? c - 'A' + 10 : c - '0'; };
    for (const char c : {out[p + 1], out[p + 2]}) {
      FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
    }
    const int byte = hex(out[p + 1]) * 16 + hex(out[p + 2]);
    const bool unreserved = (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
                            (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' ||
                            byte == '_' || byte == '~';
    FUZZ_CHECK(!unreserved && byte >= 0x20 && byte != 0x7f && byte != '/' && byte != '\\');
  }
  // a normalised path is a fixed point: what is routed is what the upstream normalises to
  std::string again;
  FUZZ_CHECK(http::normalize_path(out, again) == core::Reason::none);
  FUZZ_CHECK(again == out);
}

inline void check_head(std::string_view buffer, const http::ParseResult& result,
                       const http::RequestHead& head) {
  if (result.state == ParseState::error) {
    const int status = result.reply.status;
    FUZZ_CHECK(status == 400 || status == 414 || status == 417 || status == 431);
    FUZZ_CHECK(result.reply.reason != core::Reason::none);
    FUZZ_CHECK(result.reply.close_connection == (status != 417));
    return;
  }
  if (result.state != ParseState::complete) return;
  FUZZ_CHECK(result.head_bytes >= 4 && result.head_bytes <= buffer.size());
  const std::string_view head_text = buffer.substr(0, result.head_bytes);
  FUZZ_CHECK(head_text.substr(head_text.size() - 4) == "\r\n\r\n");
  FUZZ_CHECK(!head.method.empty() && head.method.size() <= 32 && inside(head.method, head_text));
  FUZZ_CHECK(!head.target.empty() && head.target.front() == '/');
  FUZZ_CHECK(inside(head.target, head_text) && inside(head.path, head.target));
  FUZZ_CHECK(inside(head.query, head.target));
  FUZZ_CHECK(head.path.find('?') == std::string_view::npos);
  FUZZ_CHECK(head.has_query || head.query.empty());
  FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
  FUZZ_CHECK(inside(head.host, head_text));
  FUZZ_CHECK(head.version_minor == 0 || !head.host.empty());
  std::size_t hosts = 0;
  for (const auto& h : head.headers) {
    FUZZ_CHECK(!h.name.empty() && inside(h.name, head_text) && inside(h.value, head_text));
    for (const char c : h.name)
      FUZZ_CHECK(http::is_token_char(c) && c != '_');
    FUZZ_CHECK(trimmed(h.value));
    for (const char c : h.value) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK(u == '\t' || (u >= 0x20 && u != 0x7f));
    }
    if (http::iequals(h.name, "Host")) ++hosts;
  }
  FUZZ_CHECK(hosts <= 1);
  for (const auto v : head.connection)
    FUZZ_CHECK(inside(v, head_text));
  switch (head.framing) {
    case http::BodyFraming::none:
      FUZZ_CHECK(head.content_length == 0);
      break;
    case http::BodyFraming::content_length:
      FUZZ_CHECK(head.content_length > 0);
      break;
    case http::BodyFraming::chunked:
      FUZZ_CHECK(head.content_length == 0 && head.version_minor == 1);
      break;
    case http::BodyFraming::until_close:
      FUZZ_CHECK(false);
      break;
  }
}

struct Decoded {
  std::string payload;
  bool done = false;
  core::Reason error = core::Reason::none;
  std::size_t consumed = 0;
};

// Feeds `input` in pieces of `piece` bytes the way a connection does (the unconsumed rest is
// kept and extended), checking every step.
inline Decoded decode_chunked(std::string_view input, std::size_t piece) {
  http::ChunkedDecoder decoder(256);
  Decoded out;
  std::string pending;
  std::size_t delivered = 0;
  while (delivered < input.size() || delivered == 0) {
    const std::size_t take = std::min(piece, input.size() - delivered);
    pending.append(input.substr(delivered, take));
    delivered += take;
    std::size_t offset = 0;
    for (int guard = 0;; ++guard) {
      FUZZ_CHECK(guard <= static_cast<int>(input.size()) + 2);
      const std::string_view rest = std::string_view(pending).substr(offset);
      const http::ChunkedStep step = decoder.step(rest);
      FUZZ_CHECK(step.consumed <= rest.size());
      FUZZ_CHECK(inside(step.data, rest));
      FUZZ_CHECK(step.data.empty() ||
                 step.data.data() + step.data.size() <= rest.data() + step.consumed);
      out.payload.append(step.data);
      offset += step.consumed;
      out.consumed += step.consumed;
      if (step.error != core::Reason::none) {
        FUZZ_CHECK(step.error == core::Reason::bad_chunk && !step.done);
        out.error = step.error;
        return out;
      }
      if (step.done) {
        out.done = true;
        FUZZ_CHECK(decoder.payload_bytes() == out.payload.size());
        return out;
      }
      if (step.data.empty() && step.consumed == rest.size()) break;
    }
    pending.erase(0, offset);
    if (input.empty()) break;
  }
  FUZZ_CHECK(decoder.payload_bytes() == out.payload.size());
  return out;
}

inline void check_chunked(std::string_view input) {
  const Decoded whole = decode_chunked(input, input.size() + 1);
  for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{7}}) {
    const Decoded split = decode_chunked(input, piece);
    FUZZ_CHECK(split.payload == whole.payload);
    FUZZ_CHECK(split.done == whole.done);
    FUZZ_CHECK(split.error == whole.error);
    if (whole.done) FUZZ_CHECK(split.consumed == whole.consumed);
  }
  if (whole.done) {
    // re-framing what was decoded and decoding it again gives the same payload
    std::string wire;
    char size[24];
    if (!whole.payload.empty()) {
      wire.append(size, http::format_chunk_size(whole.payload.size(), size));
      wire += whole.payload;
      wire += "\r\n";
    }
    wire.append(size, http::format_chunk_size(0, size));
    wire += "\r\n";
    const Decoded again = decode_chunked(wire, wire.size() + 1);
    FUZZ_CHECK(again.done && again.payload == whole.payload && again.consumed == wire.size());
  }
}

}  // namespace portcullis::fuzz
