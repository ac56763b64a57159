#include "portcullis/validate/ecma_regex.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <utility>

namespace portcullis::validate {
namespace {

// ECMA-262 WhiteSpace and LineTerminator, as class contents, and their complement (which RE2
// cannot write as [^...] inside another class).
constexpr std::string_view kSpaceClass =
    "\\x{9}-\\x{D}\\x{20}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}\\x{FEFF}";
constexpr std::string_view kNonSpaceClass =
    "\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{9F}\\x{A1}-\\x{167F}\\x{1681}-\\x{1FFF}"
    "\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}"
    "\\x{3001}-\\x{FEFE}\\x{FF00}-\\x{10FFFF}";
// ECMA's `.`: anything but a line terminator.
constexpr std::string_view kDot = "[^\\n\\r\\x{2028}\\x{2029}]";

// ECMA general-category long names (and aliases) to the short names RE2 knows.
constexpr std::array<std::pair<std::string_view, std::string_view>, 40> kCategoryNames = {{
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Private_Use", "Co"},
    {"Surrogate", "Cs"},
    {"Letter", "L"},
    {"Lowercase_Letter", "Ll"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Titlecase_Letter", "Lt"},
    {"Uppercase_Letter", "Lu"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Nonspacing_Mark", "Mn"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Close_Punctuation", "Pe"},
    {"Final_Punctuation", "Pf"},
    {"Initial_Punctuation", "Pi"},
    {"Other_Punctuation", "Po"},
    {"Open_Punctuation", "Ps"},
    {"Symbol", "S"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Math_Symbol", "Sm"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Space_Separator", "Zs"},
}};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads exactly `count` hex digits at `pos`; -1 when they are not there.
long read_hex(std::string_view s, std::size_t pos, std::size_t count) {
  if (pos + count > s.size()) return -1;
  long value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    const int digit = hex_value(s[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

void append_code_point(std::string& out, unsigned long cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\x{%lX}", cp);
  out += buf;
}

// Length of the UTF-8 sequence starting with `lead`; 0 for a byte that cannot start one.
std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

class Translator {
 public:
  Translator(std::string_view pattern, std::string& error) : p_(pattern), error_(error) {}

  std::optional<std::string> run() {
    out_.reserve(p_.size() + 16);
    while (i_ < p_.size()) {
      if (!(in_class_ ? class_atom() : atom())) return std::nullopt;
    }
    if (in_class_) {
      fail("unterminated character class");
      return std::nullopt;
    }
    return std::move(out_);
  }

 private:
  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  // Copies one (possibly multi-byte) literal character.
  bool literal() {
    const std::size_t len = utf8_length(static_cast<unsigned char>(p_[i_]));
    if (len == 0 || i_ + len > p_.size()) return fail("invalid UTF-8 in pattern");
    out_.append(p_.substr(i_, len));
    i_ += len;
    return true;
  }

  bool atom() {
    const char c = p_[i_];
    switch (c) {
      case '\\':
        return escape();
      case '.':
        out_ += kDot;
        ++i_;
        return true;
      case '(':
        return group();
      case '[':
        return class_open();
      case '{':
        if (quantifier_length() > 0) {
          const std::size_t len = quantifier_length();
          out_.append(p_.substr(i_, len));
          i_ += len;
        } else {
          out_ += "\\{";  // Annex B: a brace that does not start a quantifier is literal
          ++i_;
        }
        return true;
      case '}':
      case ']':
        out_ += '\\';
        out_ += c;
        ++i_;
        return true;
      default:
        return literal();
    }
  }

  // Length of "{n}", "{n,}" or "{n,m}" at i_, else 0.
  std::size_t quantifier_length() const {
    std::size_t j = i_ + 1;
    const std::size_t digits_start = j;
    while (j < p_.size() && is_digit(p_[j]))
      ++j;
    if (j == digits_start) return 0;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      while (j < p_.size() && is_digit(p_[j]))
        ++j;
    }
    if (j < p_.size() && p_[j] == '}') return j + 1 - i_;
    return 0;
  }

  bool group() {
    if (i_ + 1 >= p_.size() || p_[i_ + 1] != '?') {
      out_ += '(';
      ++i_;
      return true;
    }
    const std::string_view rest = p_.substr(i_ + 2);
    if (rest.substr(0, 1) == ":") {
      out_ += "(?:";
      i_ += 3;
      return true;
    }
    if (rest.substr(0, 1) == "=" || rest.substr(0, 1) == "!") {
      return fail("lookahead assertions are not supported");
    }
    if (rest.substr(0, 2) == "<=" || rest.substr(0, 2) == "<!") {
      return fail("lookbehind assertions are not supported");
    }
    if (rest.substr(0, 1) == "<") {
      const std::size_t close = rest.find('>');
      if (close == std::string_view::npos || close == 1) return fail("malformed group name");
      const std::string_view name = rest.substr(1, close - 1);
      for (char c : name) {
        if (!is_ascii_alnum(c) && c != '_') return fail("unsupported group name");
      }
      out_ += "(?P<";
      out_ += name;
      out_ += '>';
      i_ += 2 + close + 1;
      return true;
    }
    return fail("unsupported group syntax \"(?\"");
  }

  bool class_open() {
    if (p_.substr(i_, 2) == "[]") {
      out_ += "[^\\x{0}-\\x{10FFFF}]";  // ECMA's empty class matches nothing
      i_ += 2;
      return true;
    }
    if (p_.substr(i_, 3) == "[^]") {
      out_ += "[\\x{0}-\\x{10FFFF}]";  // and its negation anything
      i_ += 3;
      return true;
    }
    out_ += '[';
    ++i_;
    if (i_ < p_.size() && p_[i_] == '^') {
      out_ += '^';
      ++i_;
    }
    in_class_ = true;
    return true;
  }

  bool class_atom() {
    const char c = p_[i_];
    switch (c) {
      case ']':
        out_ += ']';
        in_class_ = false;
        ++i_;
        return true;
      case '\\':
        return escape();
      case '[':
        out_ += "\\[";  // literal in ECMA; RE2 would read "[:" as a POSIX class
        ++i_;
        return true;
      default:
        return literal();
    }
  }

  // At a backslash.
  bool escape() {
    if (i_ + 1 >= p_.size()) return fail("pattern ends with a backslash");
    const char e = p_[i_ + 1];
    i_ += 2;
    switch (e) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        out_ += '\\';
        out_ += e;
        return true;
      case 's':
      case 'S': {
        const std::string_view body = e == 's' ? kSpaceClass : kNonSpaceClass;
        if (in_class_) {
          out_ += body;
        } else {
          out_ += '[';
          out_ += body;
          out_ += ']';
        }
        return true;
      }
      case 'b':
        out_ += in_class_ ? "\\x{8}" : "\\b";
        return true;
      case 'B':
        if (in_class_) return fail("\\B inside a character class");
        out_ += "\\B";
        return true;
      case 't':
      case 'n':
      case 'r':
      case 'f':
      case 'v':
        out_ += '\\';
        out_ += e;
        return true;
      case '0':
        if (i_ < p_.size() && is_digit(p_[i_])) return fail("octal escapes are not supported");
        out_ += "\\x{0}";
        return true;
      case 'k':
        return fail("backreferences are not supported");
      case 'c': {
        if (i_ >= p_.size() ||
            !((p_[i_] >= 'a' && p_[i_] <= 'z') || (p_[i_] >= 'A' && p_[i_] <= 'Z'))) {
          return fail("\\c must be followed by a letter");
        }
        append_code_point(out_, static_cast<unsigned long>(p_[i_] % 32));
        ++i_;
        return true;
      }
      case 'x': {
        const long value = read_hex(p_, i_, 2);
        if (value < 0) return fail("\\x must be followed by two hex digits");
        append_code_point(out_, static_cast<unsigned long>(value));
        i_ += 2;
        return true;
      }
      case 'u':
        return unicode_escape();
      case 'p':
      case 'P':
        return property_escape(e);
      default:
        break;
    }
    if (is_digit(e)) return fail("backreferences are not supported");
    if (is_ascii_alnum(e)) return fail(std::string("unknown escape \\") + e);
    if (static_cast<unsigned char>(e) < 0x80) {
      // An escaped punctuation character or space is that character; RE2 agrees for
      // punctuation, so write spaces and controls by code point.
      if (static_cast<unsigned char>(e) <= 0x20 || e == 0x7f) {
        append_code_point(out_, static_cast<unsigned char>(e));
      } else {
        out_ += '\\';
        out_ += e;
      }
      return true;
    }
    --i_;  // an escaped non-ASCII character is itself
    return literal();
  }

  // After "\u": XXXX (a surrogate pair as two escapes) or {X...}.
  bool unicode_escape() {
    unsigned long cp = 0;
    if (i_ < p_.size() && p_[i_] == '{') {
      const std::size_t close = p_.find('}', i_);
      if (close == std::string_view::npos || close == i_ + 1 || close - i_ - 1 > 6) {
        return fail("malformed \\u{...} escape");
      }
      const long value = read_hex(p_, i_ + 1, close - i_ - 1);
      if (value < 0 || value > 0x10FFFF) return fail("malformed \\u{...} escape");
      cp = static_cast<unsigned long>(value);
      i_ = close + 1;
    } else {
      const long unit = read_hex(p_, i_, 4);
      if (unit < 0) return fail("\\u must be followed by four hex digits");
      i_ += 4;
      cp = static_cast<unsigned long>(unit);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        const long low = p_.substr(i_, 2) == "\\u" ? read_hex(p_, i_ + 2, 4) : -1;
        if (low < 0xDC00 || low > 0xDFFF) return fail("lone surrogate in \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<unsigned long>(low) - 0xDC00);
        i_ += 6;
      }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return fail("lone surrogate in \\u escape");
    append_code_point(out_, cp);
    return true;
  }

  // After "\p" or "\P": {Name}, {General_Category=Name}, {Script=Name}.
  bool property_escape(char e) {
    if (i_ >= p_.size() || p_[i_] != '{') return fail("\\p must be followed by {name}");
    const std::size_t close = p_.find('}', i_);
    if (close == std::string_view::npos) return fail("unterminated \\p{...}");
    std::string_view name = p_.substr(i_ + 1, close - i_ - 1);
    i_ = close + 1;
    if (const auto eq = name.find('='); eq != std::string_view::npos) {
      const std::string_view key = name.substr(0, eq);
      if (key != "General_Category" && key != "gc" && key != "Script" && key != "sc") {
        return fail("unsupported Unicode property \"" + std::string(key) + "\"");
      }
      name = name.substr(eq + 1);
    }
    for (const auto& [long_name, short_name] : kCategoryNames) {
      if (name == long_name) {
        name = short_name;
        break;
      }
    }
    for (char c : name) {
      if (!is_ascii_alnum(c) && c != '_') return fail("malformed Unicode property name");
    }
    out_ += '\\';
    out_ += e;
    out_ += '{';
    out_ += name;
    out_ += '}';
    return true;
  }

  std::string_view p_;
  std::string& error_;
  std::string out_;
  std::size_t i_ = 0;
  bool in_class_ = false;
};

}  // namespace

std::optional<std::string> ecma_to_re2(std::string_view pattern, std::string& error) {
  return Translator(pattern, error).run();
}

}  // namespace portcullis::validate
