#include "perf_events.h"

#include <linux/perf_event.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "errors.h"

namespace fff {
namespace {

constexpr uint64_t hw_cache(uint64_t cache, uint64_t op, uint64_t result) {
  return cache | (op << 8) | (result << 16);
}

struct NamedEvent {
  const char* name;
  uint32_t type;
  uint64_t config;
  const char* description;
};

// Generic events the kernel maps to each CPU's own encoding. The llc-* events are the
// PERF_TYPE_HW_CACHE last-level-cache ones (reads unless named otherwise), not the vaguer
// cache-references/cache-misses pair whose meaning differs between vendors.
const NamedEvent kNamedEvents[] = {
    {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, "CPU cycles (hardware PMU)"},
    {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, "instructions retired (hardware PMU)"},
    {"cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES,
     "cache accesses as the CPU vendor defines them (usually last level; hardware PMU)"},
    {"cache-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES,
     "cache misses as the CPU vendor defines them (usually last level; hardware PMU)"},
    {"llc-loads", PERF_TYPE_HW_CACHE,
     hw_cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_ACCESS),
     "last-level cache read accesses (hardware PMU; simulated: LL read accesses)"},
    {"llc-misses", PERF_TYPE_HW_CACHE,
     hw_cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS),
     "last-level cache read misses (hardware PMU; simulated: LL data + instruction read misses)"},
    {"llc-store-misses", PERF_TYPE_HW_CACHE,
     hw_cache(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_WRITE, PERF_COUNT_HW_CACHE_RESULT_MISS),
     "last-level cache write misses (hardware PMU; simulated: LL data write misses)"},
    {"branch-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES, "mispredicted branches (hardware PMU)"},
    {"l1d-misses", PERF_TYPE_HW_CACHE,
     hw_cache(PERF_COUNT_HW_CACHE_L1D, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS),
     "L1 data cache read misses (hardware PMU; simulated: D1 read misses)"},
    {"task-clock", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, "CPU time of all threads, in ns (software)"},
    {"page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS, "page faults (software)"},
    {"context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES, "context switches (software)"},
    {"cpu-migrations", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS, "moves of a thread to another CPU (software)"},
};

const char kSysfsPmus[] = "/sys/bus/event_source/devices/";

[[noreturn]] void unknown(const std::string& name, const std::string& why) {
  std::string names;
  for (const auto& event : known_counters()) names += (names.empty() ? "" : ", ") + event.first;
  throw Error(Error::Kind::Usage, "unknown counter '" + name + "'" + (why.empty() ? "" : " (" + why + ")") +
                                      "; known counters: " + names +
                                      ", or a raw event rHEX or pmu/event=0x..,umask=0x../");
}

bool parse_hex(const std::string& text, uint64_t* value) {
  std::string digits = text;
  if (digits.rfind("0x", 0) == 0 || digits.rfind("0X", 0) == 0) digits = digits.substr(2);
  if (digits.empty() || digits.size() > 16) return false;
  for (char c : digits) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *value = std::stoull(digits, nullptr, 16);
  return true;
}

bool parse_number(const std::string& text, uint64_t* value) {
  if (text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0) return parse_hex(text, value);
  if (text.empty() || text.size() > 20 || !std::all_of(text.begin(), text.end(), ::isdigit)) return false;
  *value = std::stoull(text);
  return true;
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A sysfs format file says where a term's bits go, e.g. "config:0-7,32-35": the value's
// low bits fill the ranges in order.
void place_bits(const std::string& name, const std::string& term, const std::string& format, uint64_t value,
                EventSpec* spec) {
  const size_t colon = format.find(':');
  const std::string field = format.substr(0, colon);
  uint64_t* target = field == "config" ? &spec->config : field == "config1" ? &spec->config1
                     : field == "config2" ? &spec->config2 : nullptr;
  if (colon == std::string::npos || target == nullptr) {
    throw Error(Error::Kind::Usage, "counter '" + name + "': term '" + term + "' has a format fff cannot place (" +
                                        format + ")");
  }
  std::istringstream ranges(format.substr(colon + 1));
  std::string range;
  unsigned used = 0;
  while (std::getline(ranges, range, ',')) {
    const size_t dash = range.find('-');
    const unsigned lo = static_cast<unsigned>(std::stoul(range.substr(0, dash)));
    const unsigned hi = dash == std::string::npos ? lo : static_cast<unsigned>(std::stoul(range.substr(dash + 1)));
    for (unsigned bit = lo; bit <= hi && bit < 64; ++bit, ++used) {
      if (used < 64 && ((value >> used) & 1u)) *target |= uint64_t{1} << bit;
    }
  }
  if (used < 64 && (value >> used) != 0) {
    throw Error(Error::Kind::Usage, "counter '" + name + "': value of '" + term + "' does not fit its " +
                                        std::to_string(used) + " bits");
  }
}

EventSpec resolve_pmu_event(const std::string& name) {
  namespace fs = std::filesystem;
  const size_t slash = name.find('/');
  EventSpec spec;
  spec.name = name;
  spec.pmu = name.substr(0, slash);
  if (spec.pmu.empty() || name.back() != '/' || name.size() < slash + 2) {
    unknown(name, "a PMU event is written pmu/term=value,.../");
  }
  const std::string terms = name.substr(slash + 1, name.size() - slash - 2);
  const fs::path pmu_dir = fs::path(kSysfsPmus) / spec.pmu;
  std::error_code ec;
  if (!fs::exists(pmu_dir / "type", ec)) {
    // Well formed, but this machine has no such PMU (AMD's amd_l3 on an Intel CPU, any PMU in
    // a VM): a counter that cannot be counted here, not a typo to refuse.
    spec.unavailable_reason = "this machine has no PMU named '" + spec.pmu + "' (see " + kSysfsPmus + ")";
    return spec;
  }
  spec.type = static_cast<uint32_t>(std::stoul(read_line((pmu_dir / "type").string())));
  std::istringstream list(terms);
  std::string term;
  while (std::getline(list, term, ',')) {
    if (term.empty()) continue;
    const size_t eq = term.find('=');
    const std::string key = term.substr(0, eq);
    uint64_t value = 1;  // a bare term sets a flag, as perf reads "pmu/edge/"
    if (eq != std::string::npos && !parse_number(term.substr(eq + 1), &value)) {
      throw Error(Error::Kind::Usage, "counter '" + name + "': '" + term + "' needs a number (decimal or 0x hex)");
    }
    if (key == "config" || key == "config1" || key == "config2") {
      (key == "config" ? spec.config : key == "config1" ? spec.config1 : spec.config2) |= value;
      continue;
    }
    const fs::path format = pmu_dir / "format" / key;
    if (key.find('/') != std::string::npos || key.find("..") != std::string::npos || !fs::exists(format, ec)) {
      std::string known;
      for (const auto& entry : fs::directory_iterator(pmu_dir / "format", ec)) {
        known += (known.empty() ? "" : ", ") + entry.path().filename().string();
      }
      throw Error(Error::Kind::Usage, "counter '" + name + "': PMU '" + spec.pmu + "' has no term '" + key +
                                          "' (its terms: " + (known.empty() ? "none" : known) + ")");
    }
    place_bits(name, term, read_line(format.string()), value, &spec);
  }
  return spec;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& known_counters() {
  static const std::vector<std::pair<std::string, std::string>> names = [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& event : kNamedEvents) out.emplace_back(event.name, event.description);
    return out;
  }();
  return names;
}

EventSpec resolve_event(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& event : kNamedEvents) {
    if (lower == event.name) {
      EventSpec spec;
      spec.name = event.name;
      spec.pmu = event.type == PERF_TYPE_SOFTWARE ? "software" : "cpu";
      spec.type = event.type;
      spec.config = event.config;
      return spec;
    }
  }
  if (name.size() > 1 && name[0] == 'r' && name.find('/') == std::string::npos) {
    EventSpec spec;
    spec.name = name;
    spec.pmu = "cpu";
    spec.type = PERF_TYPE_RAW;
    if (!parse_hex(name.substr(1), &spec.config)) unknown(name, "a raw event is r followed by hex digits");
    return spec;
  }
  if (name.find('/') != std::string::npos) return resolve_pmu_event(name);
  unknown(name, "");
}

}  // namespace fff
