// Python bindings of the counter layer (fff/counters.py and fff/cache_sim.py use them).
#pragma once

#include <pybind11/pybind11.h>

#include "perf_counters.h"

namespace fff {

void bind_counters(pybind11::module_& m);

// A timed loop's counter report as plain data: "counters" (name, status, reason, pmu,
// user_space_only), "totals" (n x 3 uint64: value, time_enabled, time_running),
// "per_iteration" (iterations x n x 3, or None), "threads", "group_reads".
pybind11::dict counter_report_dict(const CounterReport& report);

}  // namespace fff
