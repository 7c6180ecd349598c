// The clock the timed loop reads: the invariant TSC where the CPU has one, else steady_clock.
#pragma once

#include <cstdint>
#include <string>

namespace fff {

class Clock {
 public:
  // Decided and calibrated once per process: calibration spins for a few milliseconds.
  static const Clock& instance();

  // A raw timestamp; only differences converted by to_ns() mean anything.
  uint64_t now() const;
  double to_ns(uint64_t ticks) const { return static_cast<double>(ticks) / ticks_per_ns_; }

  // "tsc" or "steady_clock", and why that one was chosen.
  const std::string& source() const { return source_; }
  const std::string& reason() const { return reason_; }
  double ticks_per_ns() const { return ticks_per_ns_; }

 private:
  Clock();
  bool use_tsc_ = false;
  double ticks_per_ns_ = 1.0;
  std::string source_;
  std::string reason_;
};

}  // namespace fff
