#pragma once
// Strict decoding of the chunked transfer coding (RFC 9112 section 7.1). The gateway decodes a
// chunked body and re-frames it towards the peer, so chunk boundaries and extensions the client
// chose never reach the upstream verbatim.
//
// Refused: chunk sizes that are empty, not hex, longer than 16 hex digits or overflow; bare LF;
// anything but CRLF after chunk data; malformed chunk extensions; trailer sections larger than
// max_trailer_bytes or malformed. Trailers are checked and dropped.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "portcullis/core/reason.hpp"

namespace portcullis::http {

struct ChunkedStep {
  std::size_t consumed = 0;  // bytes of the input used by this step
  std::string_view data;     // payload bytes produced (a view into the input), may be empty
  bool done = false;         // the last chunk and the trailer section have been read
  core::Reason error = core::Reason::none;  // bad_chunk on malformed input
};

class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(std::size_t max_trailer_bytes = 8 * 1024)
      : max_trailer_bytes_(max_trailer_bytes) {}

  // Consumes from `input` until it has produced some payload, needs more input (consumed all
  // of it), finished, or failed. Call again with the unconsumed rest (plus new bytes).
  ChunkedStep step(std::string_view input);

  std::uint64_t payload_bytes() const { return payload_bytes_; }
  void reset();

 private:
  enum class Phase : std::uint8_t {
    size,
    extension,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_line,
    trailer_lf,
    done,
    failed
  };
  // Position inside `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
  enum class Ext : std::uint8_t {
    before_semicolon,
    before_name,
    name,
    after_name,
    before_value,
    token,
    quoted,
    quoted_pair,
    after_quoted,
    after_value
  };
  ChunkedStep fail(std::size_t consumed);
  std::size_t max_trailer_bytes_;
  Phase phase_ = Phase::size;
  std::uint64_t remaining_ = 0;  // payload bytes left in the current chunk
  unsigned size_digits_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t trailer_line_bytes_ = 0;
  std::uint64_t payload_bytes_ = 0;
  bool last_chunk_ = false;
  Ext ext_ = Ext::before_semicolon;
  std::size_t ext_bytes_ = 0;  // bytes after the size on the current chunk line
  bool trailer_in_value_ = false;
};

// Appends the chunk framing of one payload piece ("<hex>\r\n"); the caller writes the data and
// then "\r\n". The last chunk is "0\r\n\r\n".
std::size_t format_chunk_size(std::uint64_t size, char (&out)[24]);

}  // namespace portcullis::http
