#include "portcullis/http/chunked.hpp"

#include <algorithm>

#include "char_class.hpp"

namespace portcullis::http {
namespace {

using detail::is;

constexpr unsigned kMaxSizeDigits = 16;  // 64 bits: a 17th digit is an overflow
// Extensions are parsed and dropped; a cap keeps a stream of them from costing unbounded CPU
// for no payload.
constexpr std::size_t kMaxExtensionBytes = 4096;

bool is_ws(char c) {
  return c == ' ' || c == '\t';
}

}  // namespace

void ChunkedDecoder::reset() {
  phase_ = Phase::size;
  remaining_ = 0;
  size_digits_ = 0;
  trailer_bytes_ = 0;
  trailer_line_bytes_ = 0;
  payload_bytes_ = 0;
  last_chunk_ = false;
  ext_ = Ext::before_semicolon;
  ext_bytes_ = 0;
  trailer_in_value_ = false;
}

ChunkedStep ChunkedDecoder::fail(std::size_t consumed) {
  phase_ = Phase::failed;
  ChunkedStep out;
  out.consumed = consumed;
  out.error = core::Reason::bad_chunk;
  return out;
}

ChunkedStep ChunkedDecoder::step(std::string_view input) {
  ChunkedStep out;
  if (phase_ == Phase::failed) return fail(0);
  if (phase_ == Phase::done) {
    out.done = true;
    return out;
  }
  const std::size_t n = input.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = input[i];
    switch (phase_) {
      case Phase::size: {
        const int digit = detail::hex_value(c);
        if (digit >= 0) {
          if (++size_digits_ > kMaxSizeDigits) return fail(i);
          remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(digit);
          ++i;
          break;
        }
        if (size_digits_ == 0) return fail(i);
        ext_bytes_ = 0;
        if (c == '\r') {
          phase_ = Phase::size_lf;
        } else if (c == ';') {
          phase_ = Phase::extension;
          ext_ = Ext::before_name;
        } else if (is_ws(c)) {
          phase_ = Phase::extension;
          ext_ = Ext::before_semicolon;
        } else {
          return fail(i);
        }
        ++i;
        break;
      }

      case Phase::extension: {
        if (++ext_bytes_ > kMaxExtensionBytes) return fail(i);
        const bool token = is(c, detail::kToken);
        bool ok = true;
        switch (ext_) {
          case Ext::before_semicolon:  // BWS after the size or a value, before ';'
          case Ext::after_value:
            if (c == ';') {
              ext_ = Ext::before_name;
            } else {
              ok = is_ws(c);
            }
            break;
          case Ext::before_name:
            if (token) {
              ext_ = Ext::name;
            } else {
              ok = is_ws(c);
            }
            break;
          case Ext::name:
          case Ext::token:
          case Ext::after_quoted:
            if (c == '\r') {
              phase_ = Phase::size_lf;
            } else if (c == ';') {
              ext_ = Ext::before_name;
            } else if (is_ws(c)) {
              ext_ = ext_ == Ext::name ? Ext::after_name : Ext::after_value;
            } else if (c == '=' && ext_ == Ext::name) {
              ext_ = Ext::before_value;
            } else {
              ok = token && ext_ != Ext::after_quoted;
            }
            break;
          case Ext::after_name:
            if (c == '=') {
              ext_ = Ext::before_value;
            } else if (c == ';') {
              ext_ = Ext::before_name;
            } else {
              ok = is_ws(c);
            }
            break;
          case Ext::before_value:
            if (token) {
              ext_ = Ext::token;
            } else if (c == '"') {
              ext_ = Ext::quoted;
            } else {
              ok = is_ws(c);
            }
            break;
          case Ext::quoted:
            if (c == '"') {
              ext_ = Ext::after_quoted;
            } else if (c == '\\') {
              ext_ = Ext::quoted_pair;
            } else {
              ok = is(c, detail::kQdText);
            }
            break;
          case Ext::quoted_pair:
            ok = is(c, detail::kFieldValue);
            ext_ = Ext::quoted;
            break;
        }
        if (!ok) return fail(i);
        ++i;
        break;
      }

      case Phase::size_lf:
        if (c != '\n') return fail(i);
        ++i;
        size_digits_ = 0;
        if (remaining_ == 0) {
          last_chunk_ = true;
          trailer_line_bytes_ = 0;
          phase_ = Phase::trailer_line;
        } else {
          phase_ = Phase::data;
        }
        break;

      case Phase::data: {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n - i));
        out.data = input.substr(i, take);
        remaining_ -= take;
        payload_bytes_ += take;
        if (remaining_ == 0) phase_ = Phase::data_cr;
        out.consumed = i + take;
        return out;  // one payload piece per step
      }

      case Phase::data_cr:
        if (c != '\r') return fail(i);
        ++i;
        phase_ = Phase::data_lf;
        break;

      case Phase::data_lf:
        if (c != '\n') return fail(i);
        ++i;
        phase_ = Phase::size;
        break;

      case Phase::trailer_line: {
        if (trailer_line_bytes_ == 0) {
          if (c == '\r') {  // the empty line that ends the message
            ++i;
            phase_ = Phase::trailer_lf;
            break;
          }
          if (is_ws(c)) return fail(i);  // obs-fold
          trailer_in_value_ = false;
        }
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(i);
        ++trailer_line_bytes_;
        if (!trailer_in_value_) {
          if (c == ':' && trailer_line_bytes_ > 1) {
            trailer_in_value_ = true;
          } else if (!is(c, detail::kToken)) {
            return fail(i);
          }
        } else if (c == '\r') {
          phase_ = Phase::trailer_lf;
        } else if (!is(c, detail::kFieldValue)) {
          return fail(i);
        }
        ++i;
        break;
      }

      case Phase::trailer_lf:
        if (c != '\n') return fail(i);
        ++i;
        if (trailer_line_bytes_ == 0) {
          phase_ = Phase::done;
          out.done = true;
          out.consumed = i;
          return out;
        }
        if (++trailer_bytes_ > max_trailer_bytes_) return fail(i);
        trailer_line_bytes_ = 0;
        phase_ = Phase::trailer_line;
        break;

      case Phase::done:
      case Phase::failed:
        break;  // handled before the loop
    }
  }
  out.consumed = i;
  return out;
}

std::size_t format_chunk_size(std::uint64_t size, char (&out)[24]) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char reversed[16];
  std::size_t count = 0;
  do {
    reversed[count++] = kDigits[size & 0xf];
    size >>= 4;
  } while (size != 0);
  std::size_t length = 0;
  while (count > 0)
    out[length++] = reversed[--count];
  out[length++] = '\r';
  out[length++] = '\n';
  out[length] = '\0';
  return length;
}

}  // namespace portcullis::http
