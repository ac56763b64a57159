// `ip_rules`: CIDR blocks (or bare addresses) always refused, and, when `allow` is not empty,
// the only ones that may connect.

#include "sections.hpp"

namespace portcullis::config {

void parse_ip_rules(Reader& reader, const Entry& entry, IpRules& rules) {
  const auto fields = reader.section(entry, {"deny", "allow"});
  if (!fields) return;
  const auto read_list = [&](const char* key, std::vector<core::Cidr>& out) {
    const Entry* list = fields->find(key);
    if (!list) return;
    for (const auto& item : reader.items(*list)) {
      if (auto cidr = reader.cidr(item)) out.push_back(*cidr);
    }
  };
  read_list("deny", rules.deny);
  read_list("allow", rules.allow);
}

}  // namespace portcullis::config
