#include "portcullis/http/path.hpp"

#include "char_class.hpp"

namespace portcullis::http {
namespace {

using core::Reason;
using detail::is;

constexpr char kUpperHex[] = "0123456789ABCDEF";

// "." and ".." are dot segments; so are ".;x" and "..;x", which servlet containers strip to
// "." and ".." after routing (the "/public/..;/admin" bypass).
enum class Dots : std::uint8_t { none, one, two };

Dots dot_segment(std::string_view segment) {
  const auto semicolon = segment.find(';');
  const std::string_view name = segment.substr(0, semicolon);
  if (name == ".") return Dots::one;
  if (name == "..") return Dots::two;
  return Dots::none;
}

}  // namespace

Reason normalize_path(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return Reason::bad_path;
  out.reserve(raw.size());
  out.push_back('/');
  bool kept_percent_25 = false;

  // Invariant: `out` ends with '/' whenever a segment starts.
  std::size_t i = 1;
  const std::size_t n = raw.size();
  while (true) {
    const std::size_t segment_start = out.size();
    bool has_semicolon = false;
    while (i < n && raw[i] != '/') {
      const char c = raw[i];
      if (c == '%') {
        if (i + 2 >= n) return Reason::bad_path;  // truncated escape
        const int hi = detail::hex_value(raw[i + 1]);
        const int lo = detail::hex_value(raw[i + 2]);
        if (hi < 0 || lo < 0) return Reason::bad_path;
        const char decoded = static_cast<char>(hi * 16 + lo);
        if (decoded == '/' || decoded == '\\') return Reason::encoded_slash;
        if (decoded == '\0') return Reason::encoded_nul;
        // Encoded CR, LF and other controls: a back end that decodes them into a log line,
        // a redirect or a header is open to injection.
        if (static_cast<unsigned char>(decoded) < 0x20 || decoded == 0x7f) return Reason::bad_path;
        if (is(decoded, detail::kUnreserved)) {
          out.push_back(decoded);
        } else {
          kept_percent_25 = kept_percent_25 || decoded == '%';
          out.push_back('%');
          out.push_back(kUpperHex[hi]);
          out.push_back(kUpperHex[lo]);
        }
        i += 3;
        continue;
      }
      if (!is(c, detail::kPchar)) return Reason::bad_path;  // raw '\\', space, controls, ...
      has_semicolon = has_semicolon || c == ';';
      out.push_back(c);
      ++i;
    }
    const std::string_view segment(out.data() + segment_start, out.size() - segment_start);
    const bool last = i >= n;
    const bool maybe_dots =
        !segment.empty() && segment[0] == '.' && (has_semicolon || segment.size() <= 2);
    const Dots dots = maybe_dots ? dot_segment(segment) : Dots::none;
    if (dots == Dots::one) {
      out.resize(segment_start);
    } else if (dots == Dots::two) {
      if (segment_start == 1) return Reason::path_traversal;
      // drop the segment and the one before it, keep the '/' that precedes that one
      const auto previous = out.rfind('/', segment_start - 2);
      out.resize(previous + 1);
    } else if (!segment.empty() && !last) {
      out.push_back('/');
    }
    if (last) break;
    ++i;  // the '/'
  }

  // An escape kept as "%25" followed by two hex digits (from the raw text or from decoding the
  // characters after it) decodes to a second escape: a back end that decodes twice would see
  // a different path than the one routed.
  if (kept_percent_25) {
    for (std::size_t p = out.find("%25"); p != std::string::npos; p = out.find("%25", p + 3)) {
      if (p + 4 < out.size() && is(out[p + 3], detail::kHex) && is(out[p + 4], detail::kHex)) {
        return Reason::double_encoding;
      }
    }
  }
  return Reason::none;
}

}  // namespace portcullis::http
