#include "portcullis/filters/request_phases.hpp"

namespace portcullis::filters {

std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules) {
  std::vector<RequestPhase> phases;
  if (has_rules) phases.push_back(RequestPhase::request_rules);
  if (route.auth) {
    phases.push_back(RequestPhase::jwt);
    phases.push_back(RequestPhase::authorize);
  }
  return phases;
}

}  // namespace portcullis::filters
