// Hardware and software counters over every thread of this process, in three small layers
// (as google/benchmark's perf_counters): a values buffer, a move-only RAII set of perf_event
// groups created from names, and a start/sample/stop measurement.
//
// Counts come back raw with time_enabled/time_running summed over threads; scaling and the
// "not counted" rule (running == 0) are applied by fff/counters.py, as perf's evsel.c does.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "perf_events.h"

namespace fff {

struct CounterReading {
  uint64_t value = 0;
  uint64_t time_enabled = 0;  // ns the event was enabled while its threads ran
  uint64_t time_running = 0;  // ns it was actually on the PMU; < enabled means multiplexed
};

// Layer 1: one reading per counter, in the order the counters were named.
class PerfCounterValues {
 public:
  explicit PerfCounterValues(size_t counters = 0) : readings_(counters) {}
  size_t size() const { return readings_.size(); }
  CounterReading& operator[](size_t i) { return readings_[i]; }
  const CounterReading& operator[](size_t i) const { return readings_[i]; }
  // Counts are cumulative: an interval is the difference of two readings.
  PerfCounterValues since(const PerfCounterValues& earlier) const;

 private:
  std::vector<CounterReading> readings_;
};

// Why a counter is (not) being counted. The spelling is what Python reports.
struct CounterInfo {
  std::string name;
  std::string status;  // "ok", "not supported", "no permission", "error"
  std::string reason;  // plain language; also set for "ok" when counting is restricted (user space only)
  std::string pmu;
  bool user_space_only = false;
};

struct PerfCountersOptions {
  // Read a whole group with one read() (PERF_FORMAT_GROUP). Kernels before 4.x refuse it
  // together with inherit; then each fd is read on its own, which is also what false forces.
  bool group_reads = true;
  // Hardware events per group: groups larger than the PMU's counters are never scheduled
  // (perf reports "<not counted>"), so core events are split into groups this small, which
  // the kernel multiplexes and fff scales.
  size_t max_hardware_group = 4;
};

// Layer 2: perf_event groups (one per PMU, hardware ones split by size) opened with inherit on
// every thread in /proc/self/task, so pools created before counting (TBB, OpenMP) and threads
// they create later both count. Move-only; closes its fds.
class PerfCounters {
 public:
  // Throws fff::Error(Usage) for an unknown name; a counter that cannot be opened gets a
  // status and a reason instead, and the others still count.
  static PerfCounters create(const std::vector<std::string>& names, const PerfCountersOptions& options = {});
  static PerfCounters open(const std::vector<EventSpec>& events, const PerfCountersOptions& options = {});

  PerfCounters() = default;
  PerfCounters(PerfCounters&& other) noexcept;
  PerfCounters& operator=(PerfCounters&& other) noexcept;
  PerfCounters(const PerfCounters&) = delete;
  PerfCounters& operator=(const PerfCounters&) = delete;
  ~PerfCounters();

  const std::vector<CounterInfo>& counters() const { return info_; }
  size_t size() const { return info_.size(); }
  size_t threads() const { return threads_; }
  bool group_reads() const { return group_reads_; }
  bool any_open() const { return !groups_.empty(); }

  // Sums every thread's counts; a counter that is not open reads 0/0/0 (running 0: not counted).
  // A failed read marks the counters it covers as errors and leaves their readings at zero.
  void read(PerfCounterValues* values);

 private:
  struct Group {
    std::vector<size_t> counters;     // indices into info_; the first is the leader
    std::vector<std::vector<int>> fds;  // per thread, in the order of `counters`
  };

  void close_all();

  std::vector<CounterInfo> info_;
  std::vector<Group> groups_;
  std::unordered_map<uint64_t, size_t> id_to_counter_;
  std::vector<char> buffer_;
  size_t threads_ = 0;
  bool group_reads_ = true;
};

// Layer 3: readings at start, between iterations (optional) and at stop, as differences.
class PerfCountersMeasurement {
 public:
  explicit PerfCountersMeasurement(PerfCounters* counters);
  void start();
  // The interval since start() or the previous sample(), appended to per_sample().
  void sample();
  // The interval since start().
  PerfCounterValues stop();
  const std::vector<PerfCounterValues>& per_sample() const { return samples_; }
  void reserve_samples(size_t n) { samples_.reserve(n); }

 private:
  PerfCounters* counters_;
  PerfCounterValues first_, last_, now_;
  std::vector<PerfCounterValues> samples_;
};

// What a timed loop hands back: per-counter status, totals, and optionally one reading per iteration.
struct CounterReport {
  std::vector<CounterInfo> counters;
  PerfCounterValues totals;
  std::vector<PerfCounterValues> per_iteration;
  size_t threads = 0;
  bool group_reads = true;
};

}  // namespace fff
