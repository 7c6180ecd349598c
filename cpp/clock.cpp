#include "clock.h"

#include <time.h>

#include <chrono>
#include <fstream>
#include <sstream>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define FFF_HAVE_RDTSC 1
#endif

namespace fff {
namespace {

// The TSC is a usable clock only if it ticks at a constant rate (constant_tsc) and keeps
// ticking in deep C-states (nonstop_tsc); otherwise its ticks are not time.
bool cpu_has_invariant_tsc() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    bool constant = false, nonstop = false;
    std::string word;
    while (words >> word) {
      constant |= word == "constant_tsc";
      nonstop |= word == "nonstop_tsc";
    }
    return constant && nonstop;
  }
  return false;
}

uint64_t monotonic_raw_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

#ifdef FFF_HAVE_RDTSC
// lfence on both sides keeps the read from drifting into or out of the timed work.
inline uint64_t fenced_rdtsc() {
  _mm_lfence();
  uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

// Ticks per nanosecond against CLOCK_MONOTONIC_RAW (not slewed by NTP). Each end is the
// TSC read closest to a clock_gettime call, so a preemption there costs at most one retry.
double calibrate_tsc() {
  auto paired_read = [](uint64_t& tsc, uint64_t& ns) {
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 5; ++i) {
      uint64_t before = fenced_rdtsc();
      uint64_t t = monotonic_raw_ns();
      uint64_t after = fenced_rdtsc();
      if (after - before < best_gap) {
        best_gap = after - before;
        tsc = before + (after - before) / 2;
        ns = t;
      }
    }
  };
  uint64_t tsc0, ns0, tsc1, ns1;
  paired_read(tsc0, ns0);
  while (monotonic_raw_ns() - ns0 < 20000000ull) {
  }
  paired_read(tsc1, ns1);
  return static_cast<double>(tsc1 - tsc0) / static_cast<double>(ns1 - ns0);
}
#endif

}  // namespace

Clock::Clock() {
#ifdef FFF_HAVE_RDTSC
  if (cpu_has_invariant_tsc()) {
    use_tsc_ = true;
    ticks_per_ns_ = calibrate_tsc();
    source_ = "tsc";
    reason_ = "invariant TSC (constant_tsc, nonstop_tsc), calibrated against CLOCK_MONOTONIC_RAW";
    return;
  }
  reason_ = "CPU lacks constant_tsc or nonstop_tsc";
#else
  reason_ = "not an x86 CPU";
#endif
  source_ = "steady_clock";
}

const Clock& Clock::instance() {
  static const Clock clock;
  return clock;
}

uint64_t Clock::now() const {
#ifdef FFF_HAVE_RDTSC
  if (use_tsc_) return fenced_rdtsc();
#endif
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace fff
