// Counter names to perf_event_attr encodings: fff's named events, raw rHEX events, and
// pmu/term=value,.../ events resolved through /sys/bus/event_source/devices/<pmu>.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fff {

struct EventSpec {
  std::string name;      // as the user wrote it (named events lower-cased)
  std::string pmu;       // "software", "cpu" (generic hardware), or the sysfs PMU name
  uint32_t type = 0;     // perf_event_attr.type
  uint64_t config = 0;
  uint64_t config1 = 0;
  uint64_t config2 = 0;
  // Set when the name is well formed but cannot exist on this machine (a PMU it lacks):
  // that is a status of the counter, not a mistake of the user.
  std::string unavailable_reason;
};

// fff's named events with a one-line description each, in a stable order.
const std::vector<std::pair<std::string, std::string>>& known_counters();

// Throws fff::Error(Usage) for a name that is neither known nor a well-formed raw event;
// the message lists the known names.
EventSpec resolve_event(const std::string& name);

}  // namespace fff
