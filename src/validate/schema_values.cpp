// Numbers and equality as JSON Schema sees them: one number line across int64, uint64 and double.

#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>

#include "schema_program.hpp"

namespace portcullis::validate::detail {
namespace {

namespace json = boost::json;

constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

int sign_of(auto a, auto b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

// Exact comparison of an integer (sign + magnitude) with a double.
int compare_integer_with_double(bool negative, std::uint64_t magnitude, double d) {
  if (d >= kTwo64) return -1;
  if (d <= -kTwo64) return 1;
  const double whole = std::trunc(d);
  const bool d_negative = whole < 0;
  const auto d_magnitude = static_cast<std::uint64_t>(d_negative ? -whole : whole);
  int c = 0;
  if (negative != d_negative && (magnitude != 0 || d_magnitude != 0)) {
    c = negative ? -1 : 1;
  } else if (negative) {
    c = sign_of(d_magnitude, magnitude);
  } else {
    c = sign_of(magnitude, d_magnitude);
  }
  if (c != 0) return c;
  // Same whole part: the fraction decides.
  return d > whole ? -1 : (d < whole ? 1 : 0);
}

void split_integer(const Number& n, bool& negative, std::uint64_t& magnitude) {
  if (n.kind == Number::Kind::uint64) {
    negative = false;
    magnitude = n.u;
  } else {
    negative = n.i < 0;
    magnitude = negative ? 0 - static_cast<std::uint64_t>(n.i) : static_cast<std::uint64_t>(n.i);
  }
}

double to_double(const Number& n) {
  switch (n.kind) {
    case Number::Kind::int64:
      return static_cast<double>(n.i);
    case Number::Kind::uint64:
      return static_cast<double>(n.u);
    case Number::Kind::real:
      return n.d;
  }
  return 0;
}

// The magnitude of an integer-valued number below 2^64, if it is one.
bool integral_magnitude(const Number& n, std::uint64_t& magnitude) {
  bool negative = false;
  if (n.kind != Number::Kind::real) {
    split_integer(n, negative, magnitude);
    return true;
  }
  const double a = std::fabs(n.d);
  if (a >= kTwo64 || std::trunc(a) != a) return false;
  magnitude = static_cast<std::uint64_t>(a);
  return true;
}

std::size_t mix(std::size_t seed, std::size_t h) {
  return seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

}  // namespace

Number Number::of(const json::value& v) {
  Number n;
  switch (v.kind()) {
    case json::kind::int64:
      n.kind = Kind::int64;
      n.i = v.get_int64();
      break;
    case json::kind::uint64:
      n.kind = Kind::uint64;
      n.u = v.get_uint64();
      break;
    default:
      n.kind = Kind::real;
      n.d = v.is_double() ? v.get_double() : 0.0;
      break;
  }
  return n;
}

int compare(const Number& a, const Number& b) {
  const bool a_real = a.kind == Number::Kind::real;
  const bool b_real = b.kind == Number::Kind::real;
  if (a_real && b_real) return sign_of(a.d, b.d);
  if (!a_real && !b_real) {
    bool an = false, bn = false;
    std::uint64_t am = 0, bm = 0;
    split_integer(a, an, am);
    split_integer(b, bn, bm);
    if (an != bn) return an ? -1 : 1;
    return an ? sign_of(bm, am) : sign_of(am, bm);
  }
  if (a_real) return -compare(b, a);
  bool negative = false;
  std::uint64_t magnitude = 0;
  split_integer(a, negative, magnitude);
  return compare_integer_with_double(negative, magnitude, b.d);
}

bool is_multiple_of(const Number& x, const Number& m) {
  std::uint64_t xm = 0, mm = 0;
  if (integral_magnitude(x, xm) && integral_magnitude(m, mm) && mm != 0) return xm % mm == 0;
  const double q = to_double(x) / to_double(m);
  if (!std::isfinite(q)) return false;
  // x and m each carry half an ulp of decimal rounding, the division another: a true multiple
  // such as 19.99 / 0.01 lands within a few ulps of an integer, a true non-multiple cannot.
  const double nearest = std::nearbyint(q);
  return std::fabs(q - nearest) <= 4 * DBL_EPSILON * std::fmax(1.0, std::fabs(q));
}

bool json_equal(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return compare(Number::of(a), Number::of(b)) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null:
      return true;
    case json::kind::bool_:
      return a.get_bool() == b.get_bool();
    case json::kind::string:
      return a.get_string() == b.get_string();
    case json::kind::array: {
      const auto& x = a.get_array();
      const auto& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!json_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const auto& x = a.get_object();
      const auto& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& member : x) {
        const auto* other = y.if_contains(member.key());
        if (other == nullptr || !json_equal(member.value(), *other)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

std::size_t json_hash(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return 0x51;
    case json::kind::bool_:
      return v.get_bool() ? 0x52 : 0x53;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: {
      // Equal numbers have equal doubles (the converse need not hold; json_equal decides).
      double d = to_double(Number::of(v));
      if (d == 0) d = 0;  // -0.0 == 0.0
      std::uint64_t bits = 0;
      std::memcpy(&bits, &d, sizeof bits);
      return std::hash<std::uint64_t>{}(bits);
    }
    case json::kind::string: {
      const auto& s = v.get_string();
      return std::hash<std::string_view>{}(std::string_view(s.data(), s.size()));
    }
    case json::kind::array: {
      std::size_t seed = 0x54;
      for (const auto& element : v.get_array())
        seed = mix(seed, json_hash(element));
      return seed;
    }
    case json::kind::object: {
      std::size_t sum = 0x55;  // order-independent
      for (const auto& member : v.get_object()) {
        const auto key = member.key();
        sum += mix(std::hash<std::string_view>{}(std::string_view(key.data(), key.size())),
                   json_hash(member.value()));
      }
      return sum;
    }
  }
  return 0;
}

}  // namespace portcullis::validate::detail
