// Applying a compiled schema to an instance. The success path allocates nothing: the instance
// path is a fixed array of views, and the violation is only written out on the first failure.

#include <algorithm>
#include <array>

#include <boost/json/monotonic_resource.hpp>

#include "schema_program.hpp"

namespace portcullis::validate {
namespace {

namespace json = boost::json;
using detail::kNoNode;
using detail::kUnbounded;
using detail::Node;

// Enough for any sane schema applied to a body within max_instance_depth: the compiler has ruled
// out applicator loops, so this only bounds the stack of a pathological but finite schema.
constexpr std::size_t kMaxFrames = 4096;

// Pairwise below this size; hashing above it.
constexpr std::size_t kUniqueItemsPairwise = 32;

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

std::uint64_t code_points(std::string_view s) {
  std::uint64_t n = 0;
  for (char c : s)
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::uint8_t type_bits(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return detail::kTypeNull;
    case json::kind::bool_:
      return detail::kTypeBoolean;
    case json::kind::object:
      return detail::kTypeObject;
    case json::kind::array:
      return detail::kTypeArray;
    case json::kind::string:
      return detail::kTypeString;
    case json::kind::int64:
    case json::kind::uint64:
      return detail::kTypeNumber | detail::kTypeInteger;
    case json::kind::double_: {
      const double d = v.get_double();
      return static_cast<std::uint8_t>(detail::kTypeNumber |
                                       (std::trunc(d) == d ? detail::kTypeInteger : 0));
    }
  }
  return 0;
}

bool all_unique(const json::array& items) {
  const std::size_t n = items.size();
  if (n <= kUniqueItemsPairwise) {
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = i + 1; j < n; ++j) {
        if (detail::json_equal(items[i], items[j])) return false;
      }
    }
    return true;
  }
  std::vector<std::pair<std::size_t, std::size_t>> hashed;
  hashed.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    hashed.emplace_back(detail::json_hash(items[i]), i);
  std::sort(hashed.begin(), hashed.end());
  for (std::size_t run = 0; run < n;) {
    std::size_t end = run + 1;
    while (end < n && hashed[end].first == hashed[run].first)
      ++end;
    for (std::size_t i = run; i < end; ++i) {
      for (std::size_t j = i + 1; j < end; ++j) {
        if (detail::json_equal(items[hashed[i].second], items[hashed[j].second])) return false;
      }
    }
    run = end;
  }
  return true;
}

bool matches(const RE2& re, std::string_view s) {
  return RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), re);
}

class Evaluator {
 public:
  Evaluator(const JsonSchema::Program& program, Violation* out)
      : nodes_(program.nodes), max_depth_(program.max_instance_depth), out_(out) {}

  bool run(std::uint32_t root, const json::value& instance) {
    if (nodes_[root].kind == Node::Kind::reject_all) {
      return fail(true, nodes_[root], "false", {});
    }
    return eval(root, instance, out_ != nullptr);
  }

 private:
  // Trivial, so that the path array costs nothing to set up.
  struct Segment {
    const char* name;  // a member name (with `size`), or
    std::size_t size;  // the array index when `is_index`
    bool is_index;
  };

  // Pushes a path segment for the lifetime of the scope.
  class Step {
   public:
    Step(Evaluator& e, Segment s) : e_(e) { e_.path_[e_.depth_++] = s; }
    ~Step() { --e_.depth_; }
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;

   private:
    Evaluator& e_;
  };

  class Frame {
   public:
    explicit Frame(Evaluator& e) : e_(e) { ++e_.frames_; }
    ~Frame() { --e_.frames_; }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    Evaluator& e_;
  };

  // Records the violation (in reporting mode, once) and returns false. `extra` is appended to
  // the instance path (a missing member's name) and the schema location (a sub-key).
  bool fail(bool report, const Node& node, std::string_view keyword, std::string_view extra,
            bool extra_in_instance = true) {
    if (!report || out_ == nullptr || recorded_) return false;
    recorded_ = true;
    std::string& pointer = out_->instance_pointer;
    pointer.clear();
    for (std::size_t i = 0; i < depth_; ++i) {
      pointer += '/';
      if (path_[i].is_index) {
        pointer += std::to_string(path_[i].size);
      } else {
        append_escaped(pointer, std::string_view(path_[i].name, path_[i].size));
      }
    }
    if (!extra.empty() && extra_in_instance) {
      pointer += '/';
      append_escaped(pointer, extra);
    }
    out_->keyword = keyword;
    out_->schema_pointer = node.location;
    out_->schema_pointer += '/';
    out_->schema_pointer += keyword;
    return false;
  }

  static void append_escaped(std::string& out, std::string_view token) {
    for (char c : token) {
      if (c == '~') {
        out += "~0";
      } else if (c == '/') {
        out += "~1";
      } else {
        out += c;
      }
    }
  }

  // Applies child schema `index` to `v` (whose path segment the caller has pushed). A `false`
  // child is reported as the parent's keyword, which says more than "false".
  bool child(std::uint32_t index, const json::value& v, bool report, const Node& parent,
             std::string_view keyword) {
    if (nodes_[index].kind == Node::Kind::reject_all) return fail(report, parent, keyword, {});
    return eval(index, v, report);
  }

  bool eval(std::uint32_t index, const json::value& v, bool report) {
    const Node* node = &nodes_[index];
    while (node->ref != kNoNode)
      node = &nodes_[node->ref];  // no cycles: checked at compile time
    const Node& n = *node;
    if (n.kind == Node::Kind::accept_all) return true;
    if (n.kind == Node::Kind::reject_all) return fail(report, n, "false", {});
    if (frames_ >= kMaxFrames) return fail(report, n, "depth", {});
    Frame frame(*this);

    if (n.types != 0 && (n.types & type_bits(v)) == 0) return fail(report, n, "type", {});
    if (n.has_const && !detail::json_equal(v, n.const_value)) return fail(report, n, "const", {});
    if (n.has_enum && !in_enum(n, v)) return fail(report, n, "enum", {});

    switch (v.kind()) {
      case json::kind::int64:
      case json::kind::uint64:
      case json::kind::double_:
        if (!eval_number(n, v, report)) return false;
        break;
      case json::kind::string:
        if (!eval_string(n, view(v.get_string()), report)) return false;
        break;
      case json::kind::array:
        if (!eval_array(n, v.get_array(), report)) return false;
        break;
      case json::kind::object:
        if (!eval_object(n, v, report)) return false;
        break;
      default:
        break;
    }
    return eval_applicators(n, v, report);
  }

  static bool in_enum(const Node& n, const json::value& v) {
    if (n.enum_all_strings) {
      if (!v.is_string()) return false;
      return std::binary_search(n.enum_strings.begin(), n.enum_strings.end(), view(v.get_string()),
                                [](std::string_view a, std::string_view b) { return a < b; });
    }
    return std::any_of(n.enum_values.begin(), n.enum_values.end(),
                       [&](const json::value& e) { return detail::json_equal(v, e); });
  }

  bool eval_number(const Node& n, const json::value& v, bool report) {
    if (!(n.has_minimum || n.has_maximum || n.has_exclusive_minimum || n.has_exclusive_maximum ||
          n.has_multiple_of)) {
      return true;
    }
    const auto x = detail::Number::of(v);
    if (n.has_minimum && detail::compare(x, n.minimum) < 0) return fail(report, n, "minimum", {});
    if (n.has_maximum && detail::compare(x, n.maximum) > 0) return fail(report, n, "maximum", {});
    if (n.has_exclusive_minimum && detail::compare(x, n.exclusive_minimum) <= 0) {
      return fail(report, n, "exclusiveMinimum", {});
    }
    if (n.has_exclusive_maximum && detail::compare(x, n.exclusive_maximum) >= 0) {
      return fail(report, n, "exclusiveMaximum", {});
    }
    if (n.has_multiple_of && !detail::is_multiple_of(x, n.multiple_of)) {
      return fail(report, n, "multipleOf", {});
    }
    return true;
  }

  bool eval_string(const Node& n, std::string_view s, bool report) {
    // A code point takes 1 to 4 bytes: the byte length often settles both bounds.
    if (n.min_length > 0 && s.size() < n.min_length * 4 && code_points(s) < n.min_length) {
      return fail(report, n, "minLength", {});
    }
    if (n.max_length != kUnbounded && s.size() > n.max_length && code_points(s) > n.max_length) {
      return fail(report, n, "maxLength", {});
    }
    if (n.pattern && !matches(*n.pattern, s)) return fail(report, n, "pattern", {});
    if (n.has_format && !matches_format(n.format, s)) return fail(report, n, "format", {});
    return true;
  }

  bool eval_array(const Node& n, const json::array& a, bool report) {
    if (a.size() < n.min_items) return fail(report, n, "minItems", {});
    if (a.size() > n.max_items) return fail(report, n, "maxItems", {});
    if (n.unique_items && !all_unique(a)) return fail(report, n, "uniqueItems", {});
    const bool has_items = n.items != kNoNode || n.items_is_tuple;
    if (!has_items && n.contains == kNoNode) return true;
    if (depth_ >= max_depth_) return fail(report, n, "depth", {});

    if (n.items != kNoNode) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        Step step(*this, {nullptr, i, true});
        if (!child(n.items, a[i], report, n, "items")) return false;
      }
    } else if (n.items_is_tuple) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        const bool in_tuple = i < n.tuple_items.size();
        if (!in_tuple && n.additional_items == kNoNode) break;
        Step step(*this, {nullptr, i, true});
        if (in_tuple) {
          if (!child(n.tuple_items[i], a[i], report, n, "items")) return false;
        } else if (!child(n.additional_items, a[i], report, n, "additionalItems")) {
          return false;
        }
      }
    }
    if (n.contains != kNoNode) {
      bool found = false;
      for (std::size_t i = 0; i < a.size() && !found; ++i) {
        Step step(*this, {nullptr, i, true});
        found = eval(n.contains, a[i], false);
      }
      if (!found) return fail(report, n, "contains", {});
    }
    return true;
  }

  // Schemas list a handful of properties: a scan that compares lengths first beats a binary
  // search of string comparisons.
  static const detail::Property* find_property(const Node& n, std::string_view name) {
    if (n.properties.size() <= 16) {
      for (const auto& p : n.properties) {
        if (p.name == name) return &p;
      }
      return nullptr;
    }
    const auto it = std::lower_bound(
        n.properties.begin(), n.properties.end(), name,
        [](const detail::Property& p, std::string_view key) { return p.name < key; });
    return it != n.properties.end() && it->name == name ? &*it : nullptr;
  }

  bool eval_object(const Node& n, const json::value& v, bool report) {
    const auto& o = v.get_object();
    if (o.size() < n.min_properties) return fail(report, n, "minProperties", {});
    if (o.size() > n.max_properties) return fail(report, n, "maxProperties", {});
    for (const auto& name : n.required_elsewhere) {
      if (!o.contains(name)) return fail(report, n, "required", name);
    }
    std::size_t required_seen = 0;
    if (n.walks_members) {
      if (depth_ >= max_depth_) return fail(report, n, "depth", {});
      for (const auto& member : o) {
        const std::string_view key(member.key().data(), member.key().size());
        Step step(*this, {key.data(), key.size(), false});
        bool matched = false;
        if (const auto* property = find_property(n, key)) {
          matched = true;
          required_seen += property->required;
          if (!child(property->schema, member.value(), report, n, "properties")) return false;
        }
        for (const auto& pattern : n.pattern_properties) {
          if (!matches(*pattern.re, key)) continue;
          matched = true;
          if (!child(pattern.schema, member.value(), report, n, "patternProperties")) {
            return false;
          }
        }
        if (!matched && n.additional_properties != kNoNode &&
            !child(n.additional_properties, member.value(), report, n, "additionalProperties")) {
          return false;
        }
        if (n.property_names != kNoNode && !eval_name(n, key, report)) return false;
      }
    }
    if (required_seen < n.required_with_property) {
      for (const auto& name : n.required) {
        if (!o.contains(name)) return fail(report, n, "required", name);
      }
    }
    for (const auto& dependency : n.dependencies) {
      if (!o.contains(dependency.name)) continue;
      if (dependency.schema != kNoNode) {
        if (!child(dependency.schema, v, report, n, "dependencies")) return false;
        continue;
      }
      for (const auto& name : dependency.required) {
        if (!o.contains(name)) return fail(report, n, "dependencies", name);
      }
    }
    return true;
  }

  // propertyNames: the name, as a string instance. Names up to ~200 bytes stay on the stack.
  bool eval_name(const Node& n, std::string_view name, bool report) {
    if (nodes_[n.property_names].kind == Node::Kind::reject_all) {
      return fail(report, n, "propertyNames", {});
    }
    unsigned char buffer[256];
    json::monotonic_resource arena(buffer, sizeof buffer);
    const json::value as_value(json::string_view(name.data(), name.size()), &arena);
    return eval(n.property_names, as_value, report);
  }

  bool eval_applicators(const Node& n, const json::value& v, bool report) {
    for (const auto s : n.all_of) {
      if (!child(s, v, report, n, "allOf")) return false;
    }
    if (!n.any_of.empty()) {
      const bool any = std::any_of(n.any_of.begin(), n.any_of.end(),
                                   [&](std::uint32_t s) { return eval(s, v, false); });
      if (!any) return fail(report, n, "anyOf", {});
    }
    if (!n.one_of.empty()) {
      int passed = 0;
      for (const auto s : n.one_of) {
        if (eval(s, v, false) && ++passed > 1) break;
      }
      if (passed != 1) return fail(report, n, "oneOf", {});
    }
    if (n.not_schema != kNoNode && eval(n.not_schema, v, false)) return fail(report, n, "not", {});
    if (n.if_schema != kNoNode) {
      if (eval(n.if_schema, v, false)) {
        if (n.then_schema != kNoNode && !child(n.then_schema, v, report, n, "then")) return false;
      } else if (n.else_schema != kNoNode && !child(n.else_schema, v, report, n, "else")) {
        return false;
      }
    }
    return true;
  }

  const std::vector<Node>& nodes_;
  std::size_t max_depth_;
  Violation* out_;
  bool recorded_ = false;
  std::size_t depth_ = 0;
  std::size_t frames_ = 0;
  std::array<Segment, detail::kMaxInstanceDepth> path_;  // [0, depth_) in use
};

}  // namespace

std::optional<Violation> JsonSchema::validate(const json::value& instance) const {
  Violation violation;
  if (Evaluator(*program_, &violation).run(program_->root, instance)) return std::nullopt;
  return violation;
}

bool JsonSchema::is_valid(const json::value& instance) const {
  return Evaluator(*program_, nullptr).run(program_->root, instance);
}

}  // namespace portcullis::validate
