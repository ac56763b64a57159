#include "portcullis/http/headers.hpp"

#include "char_class.hpp"

namespace portcullis::http {

bool is_hop_by_hop(std::string_view name) {
  // Dispatch on length first: most names are rejected by one comparison.
  switch (name.size()) {
    case 2:
      return iequals(name, "TE");
    case 7:
      return iequals(name, "Trailer") || iequals(name, "Upgrade");
    case 10:
      return iequals(name, "Connection") || iequals(name, "Keep-Alive");
    case 16:
      return iequals(name, "Proxy-Connection");
    case 17:
      return iequals(name, "Transfer-Encoding");
    case 18:
      return iequals(name, "Proxy-Authenticate");
    case 19:
      return iequals(name, "Proxy-Authorization");
    default:
      return false;
  }
}

bool list_contains(std::string_view value, std::string_view token) {
  bool found = false;
  for_each_list_element(value, [&](std::string_view element) {
    if (!found && iequals(element, token)) found = true;
  });
  return found;
}

bool named_by_connection(std::string_view name, const std::vector<std::string_view>& connection) {
  for (const std::string_view value : connection) {
    if (list_contains(value, name)) return true;
  }
  return false;
}

bool is_token_char(char c) {
  return detail::is(c, detail::kToken);
}

}  // namespace portcullis::http
