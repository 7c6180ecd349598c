#include "bind_counters.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "perf_callgrind.h"
#include "perf_events.h"

namespace py = pybind11;

namespace fff {
namespace {

py::list info_list(const std::vector<CounterInfo>& counters) {
  py::list out;
  for (const auto& info : counters) {
    py::dict d;
    d["name"] = info.name;
    d["status"] = info.status;
    d["reason"] = info.reason;
    d["pmu"] = info.pmu;
    d["user_space_only"] = info.user_space_only;
    out.append(d);
  }
  return out;
}

void copy_readings(const PerfCounterValues& values, uint64_t* out) {
  for (size_t i = 0; i < values.size(); ++i) {
    out[3 * i] = values[i].value;
    out[3 * i + 1] = values[i].time_enabled;
    out[3 * i + 2] = values[i].time_running;
  }
}

py::array_t<uint64_t> readings_array(const PerfCounterValues& values) {
  py::array_t<uint64_t> out({static_cast<py::ssize_t>(values.size()), py::ssize_t{3}});
  copy_readings(values, out.mutable_data());
  return out;
}

// Counters opened from Python, for code that is not the native loop (the PyTorch baseline).
class PyCounters {
 public:
  PyCounters(const std::vector<std::string>& names, bool group_reads) {
    PerfCountersOptions options;
    options.group_reads = group_reads;
    counters_ = PerfCounters::create(names, options);
  }
  py::array_t<uint64_t> read() {
    counters_.read(&values_);
    return readings_array(values_);
  }
  py::list info() const { return info_list(counters_.counters()); }
  size_t threads() const { return counters_.threads(); }
  bool group_reads() const { return counters_.group_reads(); }
  void close() { counters_ = PerfCounters(); }

 private:
  PerfCounters counters_;
  PerfCounterValues values_;
};

}  // namespace

py::dict counter_report_dict(const CounterReport& report) {
  py::dict d;
  d["counters"] = info_list(report.counters);
  d["totals"] = readings_array(report.totals);
  if (report.per_iteration.empty()) {
    d["per_iteration"] = py::none();
  } else {
    const auto n = static_cast<py::ssize_t>(report.counters.size());
    py::array_t<uint64_t> per({static_cast<py::ssize_t>(report.per_iteration.size()), n, py::ssize_t{3}});
    uint64_t* out = per.mutable_data();
    for (const auto& sample : report.per_iteration) {
      copy_readings(sample, out);
      out += 3 * n;
    }
    d["per_iteration"] = per;
  }
  d["threads"] = report.threads;
  d["group_reads"] = report.group_reads;
  return d;
}

void bind_counters(py::module_& m) {
  m.def("known_counters", &known_counters, "fff's named counters as (name, description) pairs");
  m.def("resolve_counter", [](const std::string& name) {
    EventSpec spec = resolve_event(name);
    py::dict d;
    d["name"] = spec.name;
    d["pmu"] = spec.pmu;
    d["type"] = spec.type;
    d["config"] = spec.config;
    d["config1"] = spec.config1;
    d["config2"] = spec.config2;
    d["unavailable_reason"] = spec.unavailable_reason;
    return d;
  }, py::arg("name"), "The perf_event encoding of a counter name; UsageError for an unknown one");

  py::class_<PyCounters>(m, "Counters")
      .def(py::init<const std::vector<std::string>&, bool>(), py::arg("names"), py::arg("group_reads") = true)
      .def("read", &PyCounters::read, "Cumulative readings summed over threads: n x 3 (value, enabled, running)")
      .def_property_readonly("info", &PyCounters::info)
      .def_property_readonly("threads", &PyCounters::threads)
      .def_property_readonly("group_reads", &PyCounters::group_reads)
      .def("close", &PyCounters::close);

  m.def("callgrind_available", &callgrind::available, "Whether callgrind client requests were compiled in");
  m.def("running_on_valgrind", &callgrind::running_on_valgrind);
  m.def("callgrind_start_instrumentation", &callgrind::start_instrumentation);
  m.def("callgrind_zero_stats", &callgrind::zero_stats);
  m.def("callgrind_dump_stats", [](const std::string& label) { callgrind::dump_stats(label.c_str()); },
        py::arg("label"));
  m.def("callgrind_stop_instrumentation", &callgrind::stop_instrumentation);
}

}  // namespace fff
