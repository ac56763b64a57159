// Compiling a draft-07 schema document into a JsonSchema::Program.

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "portcullis/validate/ecma_regex.hpp"
#include "portcullis/validate/json_body.hpp"
#include "schema_program.hpp"

namespace portcullis::validate {
namespace {

namespace json = boost::json;
using detail::kNoNode;
using detail::Node;

// ---- JSON pointers ------------------------------------------------------------------------------

std::string escape_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string child_pointer(const std::string& parent, std::string_view token) {
  return parent + "/" + escape_token(token);
}

std::string child_pointer(const std::string& parent, std::size_t index) {
  return parent + "/" + std::to_string(index);
}

// Splits "/a/b~1c" into {"a", "b/c"}; false when a token has a bad ~ escape.
bool split_pointer(std::string_view pointer, std::vector<std::string>& tokens) {
  tokens.clear();
  if (pointer.empty()) return true;
  if (pointer.front() != '/') return false;
  std::size_t pos = 1;
  while (true) {
    const std::size_t slash = pointer.find('/', pos);
    const std::string_view raw =
        pointer.substr(pos, slash == std::string_view::npos ? slash : slash - pos);
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '~') {
        token += raw[i];
      } else if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token += raw[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        return false;
      }
    }
    tokens.push_back(std::move(token));
    if (slash == std::string_view::npos) return true;
    pos = slash + 1;
  }
}

// Array index tokens are decimal without leading zeros.
bool parse_index(std::string_view token, std::size_t& index) {
  if (token.empty() || token.size() > 9 || (token.size() > 1 && token[0] == '0')) return false;
  index = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    index = index * 10 + static_cast<std::size_t>(c - '0');
  }
  return true;
}

// ---- URI references (RFC 3986 section 5) --------------------------------------------------------

struct UriParts {
  bool has_scheme = false, has_authority = false, has_query = false, has_fragment = false;
  std::string_view scheme, authority, path, query, fragment;
};

UriParts split_uri(std::string_view s) {
  UriParts u;
  std::size_t i = 0;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '+' ||
                          s[i] == '-' || s[i] == '.')) {
    ++i;
  }
  if (i > 0 && i < s.size() && s[i] == ':' && std::isalpha(static_cast<unsigned char>(s[0]))) {
    u.has_scheme = true;
    u.scheme = s.substr(0, i);
    s.remove_prefix(i + 1);
  }
  if (const auto hash = s.find('#'); hash != std::string_view::npos) {
    u.has_fragment = true;
    u.fragment = s.substr(hash + 1);
    s = s.substr(0, hash);
  }
  if (const auto question = s.find('?'); question != std::string_view::npos) {
    u.has_query = true;
    u.query = s.substr(question + 1);
    s = s.substr(0, question);
  }
  if (s.substr(0, 2) == "//") {
    u.has_authority = true;
    s.remove_prefix(2);
    const auto slash = s.find('/');
    u.authority = s.substr(0, slash);
    s = slash == std::string_view::npos ? std::string_view() : s.substr(slash);
  }
  u.path = s;
  return u;
}

std::string remove_dot_segments(std::string_view input) {
  std::string out;
  while (!input.empty()) {
    if (input.substr(0, 3) == "../") {
      input.remove_prefix(3);
    } else if (input.substr(0, 2) == "./") {
      input.remove_prefix(2);
    } else if (input.substr(0, 3) == "/./") {
      input.remove_prefix(2);
    } else if (input == "/.") {
      input = "/";
    } else if (input.substr(0, 4) == "/../" || input == "/..") {
      input = input.size() == 3 ? std::string_view("/") : input.substr(3);
      const auto slash = out.rfind('/');
      out.erase(slash == std::string::npos ? 0 : slash);
    } else if (input == "." || input == "..") {
      input = {};
    } else {
      const auto next = input.find('/', input[0] == '/' ? 1 : 0);
      out += input.substr(0, next);
      input = next == std::string_view::npos ? std::string_view() : input.substr(next);
    }
  }
  return out;
}

std::string resolve_uri(std::string_view base, std::string_view reference) {
  const UriParts r = split_uri(reference);
  const UriParts b = split_uri(base);
  UriParts t;
  std::string path;
  if (r.has_scheme) {
    t = r;
    path = remove_dot_segments(r.path);
  } else {
    if (r.has_authority) {
      t.has_authority = true;
      t.authority = r.authority;
      path = remove_dot_segments(r.path);
      t.has_query = r.has_query;
      t.query = r.query;
    } else {
      if (r.path.empty()) {
        path = std::string(b.path);
        t.has_query = r.has_query || b.has_query;
        t.query = r.has_query ? r.query : b.query;
      } else {
        if (r.path.front() == '/') {
          path = remove_dot_segments(r.path);
        } else {
          std::string merged;
          if (b.has_authority && b.path.empty()) {
            merged = "/" + std::string(r.path);
          } else {
            const auto slash = b.path.rfind('/');
            merged = std::string(slash == std::string_view::npos ? std::string_view()
                                                                 : b.path.substr(0, slash + 1));
            merged += r.path;
          }
          path = remove_dot_segments(merged);
        }
        t.has_query = r.has_query;
        t.query = r.query;
      }
      t.has_authority = b.has_authority;
      t.authority = b.authority;
    }
    t.has_scheme = b.has_scheme;
    t.scheme = b.scheme;
  }
  std::string out;
  if (t.has_scheme) {
    out += t.scheme;
    out += ':';
  }
  if (t.has_authority) {
    out += "//";
    out += t.authority;
  }
  out += path;
  if (t.has_query) {
    out += '?';
    out += t.query;
  }
  if (r.has_fragment) {
    out += '#';
    out += r.fragment;
  }
  return out;
}

std::string_view without_fragment(std::string_view uri) {
  return uri.substr(0, uri.find('#'));
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// ---- keywords -----------------------------------------------------------------------------------

// Keywords whose value is one subschema, an array of them, or an object of them.
constexpr std::array<std::string_view, 9> kSchemaKeywords = {"additionalItems",
                                                             "additionalProperties",
                                                             "contains",
                                                             "propertyNames",
                                                             "not",
                                                             "if",
                                                             "then",
                                                             "else",
                                                             "items"};
constexpr std::array<std::string_view, 4> kSchemaArrayKeywords = {"items", "allOf", "anyOf",
                                                                  "oneOf"};
constexpr std::array<std::string_view, 4> kSchemaMapKeywords = {"properties", "patternProperties",
                                                                "definitions", "dependencies"};

// Keywords that are annotations or structure: accepted, checked for shape, otherwise ignored.
constexpr std::array<std::string_view, 10> kAnnotationKeywords = {
    "$id",     "$schema",  "$comment", "title",     "description",
    "default", "examples", "readOnly", "writeOnly", "definitions"};

template <std::size_t N>
bool is_one_of(std::string_view key, const std::array<std::string_view, N>& list) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

bool is_schema_value(const json::value& v) {
  return v.is_object() || v.is_bool();
}

class Compiler {
 public:
  Compiler(const json::value& document, const CompileOptions& options)
      : document_(document), options_(options) {}

  std::shared_ptr<JsonSchema::Program> run() {
    if (!is_schema_value(document_)) {
      throw SchemaError(SchemaError::Kind::invalid, "", "a schema must be an object or a boolean");
    }
    if (const auto* object = document_.if_object()) {
      if (const auto* dialect = object->if_contains("$schema")) check_dialect(*dialect);
    }
    resources_[""] = Resource{&document_, "", ""};
    scan(document_, "", "");
    auto program = std::make_shared<JsonSchema::Program>();
    program->root = compile(document_, "", "");
    program->max_instance_depth = std::min(options_.max_instance_depth, detail::kMaxInstanceDepth);
    program->nodes = std::move(nodes_);
    check_cycles(program->nodes);
    return program;
  }

 private:
  struct Resource {
    const json::value* root;
    std::string parent_base;  // the base URI in effect where the resource sits
    std::string pointer;      // where it sits in the document
  };

  [[noreturn]] void invalid(const std::string& pointer, std::string message) const {
    throw SchemaError(SchemaError::Kind::invalid, pointer, std::move(message));
  }
  [[noreturn]] void unsupported(const std::string& pointer, std::string message) const {
    throw SchemaError(SchemaError::Kind::unsupported, pointer, std::move(message));
  }

  static void check_dialect(const json::value& v) {
    const auto* s = v.if_string();
    if (s == nullptr) {
      throw SchemaError(SchemaError::Kind::invalid, "/$schema", "$schema must be a string");
    }
    if (*s != "http://json-schema.org/draft-07/schema#" &&
        *s != "http://json-schema.org/draft-07/schema") {
      throw SchemaError(SchemaError::Kind::unsupported, "/$schema",
                        "only draft-07 schemas are supported, not \"" + std::string(*s) + "\"");
    }
  }

  // The base URI inside `v`, which sits where `parent_base` is in effect.
  static std::string base_inside(const json::value& v, const std::string& parent_base) {
    if (const auto* object = v.if_object()) {
      if (object->contains("$ref")) return parent_base;  // $ref makes siblings, $id too, inert
      if (const auto* id = object->if_contains("$id"); id != nullptr && id->is_string()) {
        const auto& s = id->get_string();
        return resolve_uri(parent_base, std::string_view(s.data(), s.size()));
      }
    }
    return parent_base;
  }

  // Records every $id (a resource, or a plain-name anchor) reachable through schema keywords.
  void scan(const json::value& v, const std::string& parent_base, const std::string& pointer) {
    const auto* object = v.if_object();
    if (object == nullptr) return;
    const std::string base = base_inside(v, parent_base);
    if (base != parent_base) {
      const std::string_view resolved = base;
      const auto hash = resolved.find('#');
      const std::string document(without_fragment(resolved));
      if (document != without_fragment(parent_base)) {
        resources_.try_emplace(document, Resource{&v, parent_base, pointer});
      }
      if (hash != std::string_view::npos && hash + 1 < resolved.size() &&
          resolved[hash + 1] != '/') {
        anchors_.try_emplace(std::string(resolved), Resource{&v, parent_base, pointer});
      }
    }
    const std::string child_base(without_fragment(base));
    for (const auto& member : *object) {
      const std::string_view key(member.key().data(), member.key().size());
      const auto& value = member.value();
      if (object->contains("$ref") && key != "definitions") continue;
      const std::string here = child_pointer(pointer, key);
      if (is_one_of(key, kSchemaKeywords) && is_schema_value(value)) {
        scan(value, child_base, here);
      } else if (is_one_of(key, kSchemaArrayKeywords) && value.is_array()) {
        const auto& array = value.get_array();
        for (std::size_t i = 0; i < array.size(); ++i) {
          scan(array[i], child_base, child_pointer(here, i));
        }
      } else if (is_one_of(key, kSchemaMapKeywords) && value.is_object()) {
        for (const auto& entry : value.get_object()) {
          scan(entry.value(), child_base,
               child_pointer(here, std::string_view(entry.key().data(), entry.key().size())));
        }
      }
    }
  }

  // Finds the schema a $ref names. Returns the target and the base URI in effect around it.
  std::pair<const json::value*, Resource> resolve_reference(const std::string& reference,
                                                            const std::string& base,
                                                            const std::string& pointer) {
    const std::string resolved = resolve_uri(base, reference);
    const std::string document(without_fragment(resolved));
    const auto hash = resolved.find('#');
    const std::string fragment =
        hash == std::string::npos ? std::string() : percent_decode(resolved.substr(hash + 1));

    if (!fragment.empty() && fragment.front() != '/') {
      const auto anchor = anchors_.find(document + "#" + fragment);
      if (anchor == anchors_.end()) {
        throw_unresolved(pointer, reference, resources_.count(document) != 0);
      }
      return {anchor->second.root, anchor->second};
    }
    const auto resource = resources_.find(document);
    if (resource == resources_.end()) throw_unresolved(pointer, reference, false);

    std::vector<std::string> tokens;
    if (!split_pointer(fragment, tokens)) {
      invalid(pointer, "malformed JSON pointer in $ref \"" + reference + "\"");
    }
    const json::value* current = resource->second.root;
    std::string current_base = resource->second.parent_base;
    std::string current_pointer = resource->second.pointer;
    for (const auto& token : tokens) {
      current_base = std::string(without_fragment(base_inside(*current, current_base)));
      if (const auto* object = current->if_object()) {
        current = object->if_contains(token);
      } else if (const auto* array = current->if_array()) {
        std::size_t index = 0;
        current = parse_index(token, index) && index < array->size() ? &(*array)[index] : nullptr;
      } else {
        current = nullptr;
      }
      if (current == nullptr) throw_unresolved(pointer, reference, true);
      current_pointer = child_pointer(current_pointer, token);
    }
    return {current, Resource{current, current_base, current_pointer}};
  }

  [[noreturn]] void throw_unresolved(const std::string& pointer, const std::string& reference,
                                     bool local) const {
    if (local) invalid(pointer, "$ref \"" + reference + "\" names nothing in this document");
    throw SchemaError(
        SchemaError::Kind::remote_reference, pointer,
        "$ref \"" + reference + "\" leaves this document; only references within it are supported");
  }

  std::uint32_t compile(const json::value& v, const std::string& parent_base,
                        const std::string& pointer) {
    if (const auto found = memo_.find(&v); found != memo_.end()) return found->second;
    const auto index = static_cast<std::uint32_t>(nodes_.size());
    nodes_.emplace_back();
    memo_.emplace(&v, index);

    Node node;
    node.location = pointer;
    if (v.is_bool()) {
      node.kind = v.get_bool() ? Node::Kind::accept_all : Node::Kind::reject_all;
      nodes_[index] = std::move(node);
      return index;
    }
    const auto* object = v.if_object();
    if (object == nullptr) invalid(pointer, "a schema must be an object or a boolean");

    if (const auto* ref = object->if_contains("$ref")) {
      compile_reference(node, *object, *ref, parent_base, pointer);
    } else {
      const std::string base(without_fragment(base_inside(v, parent_base)));
      for (const auto& member : *object) {
        compile_keyword(node, std::string_view(member.key().data(), member.key().size()),
                        member.value(), base, pointer);
      }
      node.walks_members = !node.properties.empty() || !node.pattern_properties.empty() ||
                           node.additional_properties != kNoNode || node.property_names != kNoNode;
      // A required name with a property schema is seen during the member pass; only the others
      // need a lookup of their own.
      for (const auto& name : node.required) {
        const auto property =
            std::find_if(node.properties.begin(), node.properties.end(),
                         [&](const detail::Property& p) { return p.name == name; });
        if (property != node.properties.end()) {
          property->required = true;
          ++node.required_with_property;
        } else {
          node.required_elsewhere.push_back(name);
        }
      }
    }
    nodes_[index] = std::move(node);
    return index;
  }

  void compile_reference(Node& node, const json::object& object, const json::value& ref,
                         const std::string& parent_base, const std::string& pointer) {
    const std::string here = child_pointer(pointer, "$ref");
    if (!ref.is_string()) invalid(here, "$ref must be a string");
    // Draft-07 ignores everything beside $ref. In strict mode an assertion there is refused, as
    // whoever wrote it expected it to apply; definitions are still compiled (and checked).
    for (const auto& member : object) {
      const std::string_view key(member.key().data(), member.key().size());
      if (key == "$ref") continue;
      if (key == "definitions") {
        compile_map(member.value(), parent_base, child_pointer(pointer, key), nullptr);
        continue;
      }
      if (options_.reject_unknown_keywords && !is_one_of(key, kAnnotationKeywords) &&
          key.substr(0, 2) != "x-") {
        unsupported(
            child_pointer(pointer, key),
            "\"" + std::string(key) +
                "\" beside $ref is ignored in draft-07; move it into an allOf with the $ref");
      }
    }
    const auto& s = ref.get_string();
    auto [target, where] = resolve_reference(std::string(s.data(), s.size()), parent_base, here);
    node.ref = compile(*target, where.parent_base, where.pointer);
  }

  std::uint32_t compile_child(const json::value& v, const std::string& base,
                              const std::string& pointer) {
    if (!is_schema_value(v)) invalid(pointer, "a schema must be an object or a boolean");
    return compile(v, base, pointer);
  }

  // An object whose values are schemas (properties, definitions). Appends to `out` if given.
  void compile_map(const json::value& v, const std::string& base, const std::string& pointer,
                   std::vector<detail::Property>* out) {
    const auto* object = v.if_object();
    if (object == nullptr) invalid(pointer, "must be an object");
    for (const auto& member : *object) {
      const std::string_view key(member.key().data(), member.key().size());
      const auto child = compile_child(member.value(), base, child_pointer(pointer, key));
      if (out != nullptr) out->push_back({std::string(key), child, false});
    }
  }

  std::vector<std::uint32_t> compile_list(const json::value& v, const std::string& base,
                                          const std::string& pointer, bool non_empty) {
    const auto* array = v.if_array();
    if (array == nullptr || (non_empty && array->empty())) {
      invalid(pointer, non_empty ? "must be a non-empty array of schemas" : "must be an array");
    }
    std::vector<std::uint32_t> out;
    for (std::size_t i = 0; i < array->size(); ++i) {
      out.push_back(compile_child((*array)[i], base, child_pointer(pointer, i)));
    }
    return out;
  }

  std::uint64_t non_negative_integer(const json::value& v, const std::string& pointer) const {
    if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
    if (v.is_uint64()) return v.get_uint64();
    if (v.is_double() && v.get_double() >= 0 && std::trunc(v.get_double()) == v.get_double() &&
        v.get_double() < 1.8e19) {
      return static_cast<std::uint64_t>(v.get_double());
    }
    invalid(pointer, "must be a non-negative integer");
  }

  detail::Number number(const json::value& v, const std::string& pointer) const {
    if (!v.is_number()) invalid(pointer, "must be a number");
    return detail::Number::of(v);
  }

  std::vector<std::string> unique_strings(const json::value& v, const std::string& pointer) const {
    const auto* array = v.if_array();
    if (array == nullptr) invalid(pointer, "must be an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto* s = (*array)[i].if_string();
      if (s == nullptr) invalid(child_pointer(pointer, i), "must be a string");
      std::string name(s->data(), s->size());
      if (std::find(out.begin(), out.end(), name) != out.end()) {
        invalid(child_pointer(pointer, i), "repeats \"" + name + "\"");
      }
      out.push_back(std::move(name));
    }
    return out;
  }

  std::unique_ptr<RE2> regex(std::string_view pattern, const std::string& pointer) const {
    std::string error;
    const auto translated = ecma_to_re2(pattern, error);
    if (!translated) unsupported(pointer, "pattern \"" + std::string(pattern) + "\": " + error);
    RE2::Options re_options;
    re_options.set_log_errors(false);
    re_options.set_never_capture(true);
    auto re = std::make_unique<RE2>(*translated, re_options);
    if (!re->ok()) {
      unsupported(pointer, "pattern \"" + std::string(pattern) + "\": " + re->error());
    }
    return re;
  }

  static std::uint8_t type_bit(std::string_view name) {
    if (name == "null") return detail::kTypeNull;
    if (name == "boolean") return detail::kTypeBoolean;
    if (name == "object") return detail::kTypeObject;
    if (name == "array") return detail::kTypeArray;
    if (name == "number") return detail::kTypeNumber;
    if (name == "string") return detail::kTypeString;
    if (name == "integer") return detail::kTypeInteger;
    return 0;
  }

  void compile_type(Node& node, const json::value& v, const std::string& here) const {
    auto add = [&](const json::value& name, const std::string& at) {
      const auto* s = name.if_string();
      const std::uint8_t bit = s == nullptr ? 0 : type_bit(std::string_view(s->data(), s->size()));
      if (bit == 0) {
        invalid(at, "must be one of null, boolean, object, array, number, string, integer");
      }
      if ((node.types & bit) != 0) invalid(at, "repeats a type");
      node.types |= bit;
    };
    if (const auto* array = v.if_array()) {
      if (array->empty()) invalid(here, "must not be empty");
      for (std::size_t i = 0; i < array->size(); ++i)
        add((*array)[i], child_pointer(here, i));
    } else {
      add(v, here);
    }
  }

  void compile_keyword(Node& node, std::string_view key, const json::value& v,
                       const std::string& base, const std::string& pointer) {
    const std::string here = child_pointer(pointer, key);
    auto require_string = [&] {
      if (!v.is_string()) invalid(here, "must be a string");
    };

    if (key == "type") {
      compile_type(node, v, here);
    } else if (key == "enum") {
      const auto* array = v.if_array();
      if (array == nullptr || array->empty()) invalid(here, "must be a non-empty array");
      node.has_enum = true;
      node.enum_all_strings = true;
      for (const auto& e : *array) {
        node.enum_values.emplace_back(e);
        if (!e.is_string()) node.enum_all_strings = false;
      }
      if (node.enum_all_strings) {
        for (const auto& e : *array) {
          node.enum_strings.emplace_back(e.get_string().data(), e.get_string().size());
        }
        std::sort(node.enum_strings.begin(), node.enum_strings.end());
      }
    } else if (key == "const") {
      node.has_const = true;
      node.const_value = v;
    } else if (key == "multipleOf") {
      node.multiple_of = number(v, here);
      if (detail::compare(node.multiple_of, detail::Number{}) <= 0) {
        invalid(here, "must be greater than 0");
      }
      node.has_multiple_of = true;
    } else if (key == "minimum") {
      node.minimum = number(v, here);
      node.has_minimum = true;
    } else if (key == "maximum") {
      node.maximum = number(v, here);
      node.has_maximum = true;
    } else if (key == "exclusiveMinimum") {
      node.exclusive_minimum = number(v, here);
      node.has_exclusive_minimum = true;
    } else if (key == "exclusiveMaximum") {
      node.exclusive_maximum = number(v, here);
      node.has_exclusive_maximum = true;
    } else if (key == "minLength") {
      node.min_length = non_negative_integer(v, here);
    } else if (key == "maxLength") {
      node.max_length = non_negative_integer(v, here);
    } else if (key == "pattern") {
      require_string();
      node.pattern_source = std::string(v.get_string().data(), v.get_string().size());
      node.pattern = regex(node.pattern_source, here);
    } else if (key == "format") {
      require_string();
      const std::string_view name(v.get_string().data(), v.get_string().size());
      if (const auto format = format_from_name(name)) {
        node.format = *format;
        node.has_format = true;
      } else if (options_.reject_unknown_keywords) {
        unsupported(here, "format \"" + std::string(name) +
                              "\" is not enforced here (supported: date-time, date, time, email, "
                              "hostname, ipv4, ipv6, uri, uuid)");
      }
    } else if (key == "items") {
      if (v.is_array()) {
        node.items_is_tuple = true;
        node.tuple_items = compile_list(v, base, here, false);
      } else {
        node.items = compile_child(v, base, here);
      }
    } else if (key == "additionalItems") {
      node.additional_items = compile_child(v, base, here);
    } else if (key == "contains") {
      node.contains = compile_child(v, base, here);
    } else if (key == "minItems") {
      node.min_items = non_negative_integer(v, here);
    } else if (key == "maxItems") {
      node.max_items = non_negative_integer(v, here);
    } else if (key == "uniqueItems") {
      if (!v.is_bool()) invalid(here, "must be a boolean");
      node.unique_items = v.get_bool();
    } else if (key == "minProperties") {
      node.min_properties = non_negative_integer(v, here);
    } else if (key == "maxProperties") {
      node.max_properties = non_negative_integer(v, here);
    } else if (key == "required") {
      node.required = unique_strings(v, here);
    } else if (key == "properties") {
      compile_map(v, base, here, &node.properties);
      std::sort(node.properties.begin(), node.properties.end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
    } else if (key == "patternProperties") {
      const auto* map = v.if_object();
      if (map == nullptr) invalid(here, "must be an object");
      for (const auto& member : *map) {
        const std::string_view source(member.key().data(), member.key().size());
        const std::string at = child_pointer(here, source);
        detail::PatternSchema entry;
        entry.pattern = std::string(source);
        entry.re = regex(source, at);
        entry.schema = compile_child(member.value(), base, at);
        node.pattern_properties.push_back(std::move(entry));
      }
    } else if (key == "additionalProperties") {
      node.additional_properties = compile_child(v, base, here);
    } else if (key == "propertyNames") {
      node.property_names = compile_child(v, base, here);
    } else if (key == "dependencies") {
      const auto* map = v.if_object();
      if (map == nullptr) invalid(here, "must be an object");
      for (const auto& member : *map) {
        const std::string_view name(member.key().data(), member.key().size());
        const std::string at = child_pointer(here, name);
        detail::Dependency dependency;
        dependency.name = std::string(name);
        if (member.value().is_array()) {
          dependency.required = unique_strings(member.value(), at);
        } else {
          dependency.schema = compile_child(member.value(), base, at);
        }
        node.dependencies.push_back(std::move(dependency));
      }
    } else if (key == "allOf") {
      node.all_of = compile_list(v, base, here, true);
    } else if (key == "anyOf") {
      node.any_of = compile_list(v, base, here, true);
    } else if (key == "oneOf") {
      node.one_of = compile_list(v, base, here, true);
    } else if (key == "not") {
      node.not_schema = compile_child(v, base, here);
    } else if (key == "if") {
      node.if_schema = compile_child(v, base, here);
    } else if (key == "then") {
      node.then_schema = compile_child(v, base, here);
    } else if (key == "else") {
      node.else_schema = compile_child(v, base, here);
    } else if (key == "definitions") {
      compile_map(v, base, here, nullptr);
    } else if (key == "$id" || key == "$schema" || key == "$comment" || key == "title" ||
               key == "description") {
      require_string();
    } else if (key == "readOnly" || key == "writeOnly") {
      if (!v.is_bool()) invalid(here, "must be a boolean");
    } else if (key == "examples") {
      if (!v.is_array()) invalid(here, "must be an array");
    } else if (key == "default" || key.substr(0, 2) == "x-") {
      // annotations and vendor extensions
    } else if (options_.reject_unknown_keywords) {
      const bool known_unenforced = key == "contentMediaType" || key == "contentEncoding";
      unsupported(here, known_unenforced ? "\"" + std::string(key) + "\" is not enforced here"
                                         : "unknown keyword \"" + std::string(key) + "\"");
    }
  }

  // A loop through $ref, allOf, anyOf, oneOf, not, if/then/else or dependencies comes back to a
  // schema for the same instance, and would recurse for ever.
  static void check_cycles(const std::vector<Node>& nodes) {
    enum : std::uint8_t { kWhite, kGrey, kBlack };
    std::vector<std::uint8_t> colour(nodes.size(), kWhite);
    auto edges = [&](const Node& n) {
      std::vector<std::uint32_t> out;
      if (n.ref != kNoNode) out.push_back(n.ref);
      out.insert(out.end(), n.all_of.begin(), n.all_of.end());
      out.insert(out.end(), n.any_of.begin(), n.any_of.end());
      out.insert(out.end(), n.one_of.begin(), n.one_of.end());
      for (auto s : {n.not_schema, n.if_schema, n.then_schema, n.else_schema}) {
        if (s != kNoNode) out.push_back(s);
      }
      for (const auto& d : n.dependencies) {
        if (d.schema != kNoNode) out.push_back(d.schema);
      }
      return out;
    };
    struct Frame {
      std::uint32_t node;
      std::vector<std::uint32_t> next;
      std::size_t i;
    };
    for (std::uint32_t start = 0; start < nodes.size(); ++start) {
      if (colour[start] != kWhite) continue;
      std::vector<Frame> stack;
      stack.push_back({start, edges(nodes[start]), 0});
      colour[start] = kGrey;
      while (!stack.empty()) {
        auto& top = stack.back();
        if (top.i == top.next.size()) {
          colour[top.node] = kBlack;
          stack.pop_back();
          continue;
        }
        const std::uint32_t next = top.next[top.i++];
        if (colour[next] == kGrey) {
          throw SchemaError(SchemaError::Kind::reference_cycle, nodes[next].location,
                            "this schema refers back to itself (through $ref or an applicator) "
                            "without descending into the instance");
        }
        if (colour[next] == kWhite) {
          colour[next] = kGrey;
          stack.push_back({next, edges(nodes[next]), 0});
        }
      }
    }
  }

  const json::value& document_;
  const CompileOptions& options_;
  std::vector<Node> nodes_;
  std::unordered_map<const json::value*, std::uint32_t> memo_;
  std::map<std::string, Resource> resources_;
  std::map<std::string, Resource> anchors_;
};

// ---- locating a pointer in the text of a file ---------------------------------------------------

class TextLocator {
 public:
  explicit TextLocator(std::string_view text) : text_(text) {}

  // Offset of the value `pointer` names, or npos.
  std::size_t locate(std::string_view pointer) {
    std::vector<std::string> tokens;
    if (!split_pointer(pointer, tokens)) return std::string_view::npos;
    pos_ = 0;
    skip_ws();
    for (const auto& token : tokens) {
      if (!step(token)) return std::string_view::npos;
    }
    return pos_;
  }

 private:
  bool step(const std::string& token) {
    if (at('{')) {
      ++pos_;
      skip_ws();
      if (at('}')) return false;
      while (true) {
        std::string key;
        if (!read_string(&key)) return false;
        skip_ws();
        if (!at(':')) return false;
        ++pos_;
        skip_ws();
        if (key == token) return true;
        if (!skip_value()) return false;
        skip_ws();
        if (!at(',')) return false;
        ++pos_;
        skip_ws();
      }
    }
    if (at('[')) {
      std::size_t index = 0;
      if (!parse_index(token, index)) return false;
      ++pos_;
      skip_ws();
      for (std::size_t i = 0; i < index; ++i) {
        if (!skip_value()) return false;
        skip_ws();
        if (!at(',')) return false;
        ++pos_;
        skip_ws();
      }
      return !at(']');
    }
    return false;
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void skip_ws() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  // Reads a string at pos_ (decoding escapes into `out` when given).
  bool read_string(std::string* out) {
    if (!at('"')) return false;
    ++pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        if (out) *out += c;
        continue;
      }
      if (pos_ >= text_.size()) return false;
      const char e = text_[pos_++];
      if (e != 'u') {
        if (out) {
          switch (e) {
            case 'b':
              *out += '\b';
              break;
            case 'f':
              *out += '\f';
              break;
            case 'n':
              *out += '\n';
              break;
            case 'r':
              *out += '\r';
              break;
            case 't':
              *out += '\t';
              break;
            default:
              *out += e;
              break;
          }
        }
        continue;
      }
      unsigned long cp = 0;
      if (!read_hex4(cp)) return false;
      if (cp >= 0xD800 && cp <= 0xDBFF && text_.substr(pos_, 2) == "\\u") {
        pos_ += 2;
        unsigned long low = 0;
        if (!read_hex4(low)) return false;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      if (out) append_utf8(*out, cp);
    }
    return false;
  }

  bool read_hex4(unsigned long& cp) {
    if (pos_ + 4 > text_.size()) return false;
    cp = std::stoul(std::string(text_.substr(pos_, 4)), nullptr, 16);
    pos_ += 4;
    return true;
  }

  static void append_utf8(std::string& out, unsigned long cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool skip_value() {
    if (at('"')) return read_string(nullptr);
    if (at('{') || at('[')) {
      int depth = 0;
      while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c == '"') {
          if (!read_string(nullptr)) return false;
          continue;
        }
        ++pos_;
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') {
          if (--depth == 0) return true;
        }
      }
      return false;
    }
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '}' && text_[pos_] != ']' &&
           text_[pos_] != ' ' && text_[pos_] != '\t' && text_[pos_] != '\n' &&
           text_[pos_] != '\r') {
      ++pos_;
    }
    return pos_ > start;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

void line_and_column(std::string_view text, std::size_t offset, std::size_t& line,
                     std::size_t& column) {
  line = 1;
  column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
}

std::string build_what(const std::string& pointer, const std::string& message, std::size_t line,
                       std::size_t column) {
  if (line == 0) return pointer.empty() ? message : pointer + ": " + message;
  std::string out = std::to_string(line) + ":" + std::to_string(column) + ": " + message;
  if (!pointer.empty()) out += " (at " + pointer + ")";
  return out;
}

}  // namespace

SchemaError::SchemaError(Kind kind, std::string pointer, std::string message)
    : std::runtime_error(message),
      kind_(kind),
      pointer_(std::move(pointer)),
      message_(std::move(message)),
      what_(build_what(pointer_, message_, 0, 0)) {}

void SchemaError::set_position(std::size_t line, std::size_t column) {
  line_ = line;
  column_ = column;
  what_ = build_what(pointer_, message_, line, column);
}

JsonSchema JsonSchema::compile(const json::value& document, const CompileOptions& options) {
  return JsonSchema(Compiler(document, options).run());
}

JsonSchema JsonSchema::compile_file(const std::filesystem::path& path,
                                    const CompileOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SchemaError(SchemaError::Kind::not_json, "", "cannot read the file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  JsonLimits limits;
  limits.max_bytes = 16 * 1024 * 1024;
  limits.max_depth = 256;
  limits.max_string_bytes = 1024 * 1024;
  JsonBody body = parse_json_body(text, limits);
  if (!body.ok()) {
    SchemaError error(SchemaError::Kind::not_json, "",
                      body.reason == core::Reason::invalid_json
                          ? "not a JSON document, or a member name repeats in one object"
                          : "the document exceeds the limits for schema files");
    std::size_t line = 0, column = 0;
    line_and_column(text, body.error_offset, line, column);
    error.set_position(line, column);
    throw error;
  }
  try {
    return compile(body.value, options);
  } catch (SchemaError& error) {
    const std::size_t offset = TextLocator(text).locate(error.pointer());
    if (offset != std::string_view::npos) {
      std::size_t line = 0, column = 0;
      line_and_column(text, offset, line, column);
      error.set_position(line, column);
    }
    throw;
  }
}

std::size_t JsonSchema::node_count() const {
  return program_->nodes.size();
}

}  // namespace portcullis::validate
