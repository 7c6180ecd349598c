// fff._native: the private compiled module. Plain data in and out; the public API is in fff/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "bind_counters.h"
#include "clock.h"
#include "errors.h"
#include "roofline.h"
#include "runner.h"

namespace py = pybind11;

namespace {

const char* python_class(fff::Error::Kind kind) {
  switch (kind) {
    case fff::Error::Kind::Usage: return "UsageError";
    case fff::Error::Kind::ModelFile: return "ModelFileError";
    case fff::Error::Kind::Shape: return "ShapeError";
    case fff::Error::Kind::Device: return "DeviceError";
    case fff::Error::Kind::Compile: return "CompileError";
  }
  return "FffError";
}

py::dtype numpy_dtype(const ov::element::Type& type) {
  if (type == ov::element::f32) return py::dtype::of<float>();
  if (type == ov::element::f64) return py::dtype::of<double>();
  if (type == ov::element::f16) return py::dtype("float16");
  if (type == ov::element::i64) return py::dtype::of<int64_t>();
  if (type == ov::element::i32) return py::dtype::of<int32_t>();
  if (type == ov::element::i8) return py::dtype::of<int8_t>();
  if (type == ov::element::u8) return py::dtype::of<uint8_t>();
  if (type == ov::element::boolean) return py::dtype::of<bool>();
  throw fff::Error(fff::Error::Kind::Usage, "element type " + type.get_type_name() + " has no numpy equivalent");
}

py::dict port_dict(const fff::PortInfo& port) {
  py::dict d;
  d["name"] = port.name;
  d["shape"] = py::tuple(py::cast(port.shape));
  d["element_type"] = port.element_type;
  return d;
}

void set_input(fff::Runner& runner, size_t index, const py::array& array) {
  size_t byte_size = 0;
  void* data = runner.input_data(index, &byte_size);  // validates index first
  const fff::PortInfo& port = runner.inputs()[index];
  py::dtype expected = numpy_dtype(ov::element::Type(port.element_type));
  if (!array.dtype().equal(expected)) {
    throw fff::Error(fff::Error::Kind::Shape, "input " + std::to_string(index) + " expects " +
                                                  py::str(expected).cast<std::string>() + ", got " +
                                                  py::str(array.dtype()).cast<std::string>());
  }
  std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
  if (shape != port.shape) {
    throw fff::Error(fff::Error::Kind::Shape, "input " + std::to_string(index) + " expects shape " +
                                                  py::str(py::cast(port.shape)).cast<std::string>() + ", got " +
                                                  py::str(py::cast(shape)).cast<std::string>());
  }
  auto contiguous = py::array::ensure(array, py::array::c_style);
  std::memcpy(data, contiguous.data(), byte_size);
}

py::array get_output(fff::Runner& runner, size_t index) {
  ov::Tensor tensor = runner.output(index);
  std::vector<py::ssize_t> shape(tensor.get_shape().begin(), tensor.get_shape().end());
  py::array out(numpy_dtype(tensor.get_element_type()), shape);
  std::memcpy(out.mutable_data(), tensor.data(), tensor.get_byte_size());
  return out;
}

py::dict run(fff::Runner& runner, int warmup, int iterations, const std::vector<std::string>& counters,
             bool per_iteration_counters, bool callgrind) {
  fff::CountingOptions counting;
  counting.counters = counters;
  counting.per_iteration = per_iteration_counters;
  counting.callgrind = callgrind;
  fff::Timing timing;
  {
    py::gil_scoped_release no_gil;  // the timed loop never touches Python
    timing = runner.run(warmup, iterations, counting);
  }
  py::dict result;
  result["latencies_ns"] = py::array_t<double>(timing.latencies_ns.size(), timing.latencies_ns.data());
  result["first_inference_ns"] = timing.first_inference_ns;
  result["counters"] = counters.empty() ? py::object(py::none()) : py::object(fff::counter_report_dict(timing.counters));
  return result;
}

py::dict profile_layers(fff::Runner& runner, int warmup, int iterations) {
  fff::LayerProfile profile;
  {
    py::gil_scoped_release no_gil;
    profile = runner.profile_layers(warmup, iterations);
  }
  py::list iterations_list;
  for (const auto& nodes : profile.iterations) {
    py::list rows;
    for (const auto& node : nodes) {
      py::dict row;
      row["node_name"] = node.node_name;
      row["node_type"] = node.node_type;
      row["exec_type"] = node.exec_type;
      row["status"] = node.status;
      row["real_time_ns"] = node.real_time_ns;
      row["cpu_time_ns"] = node.cpu_time_ns;
      rows.append(row);
    }
    iterations_list.append(rows);
  }
  py::dict result;
  result["iterations"] = iterations_list;
  result["latencies_ns"] = profile.latencies_ns;
  result["original_names"] = profile.original_names;
  return result;
}

py::dict clock_info() {
  const fff::Clock& clock = fff::Clock::instance();
  py::dict d;
  d["source"] = clock.source();
  d["reason"] = clock.reason();
  d["ticks_per_ns"] = clock.ticks_per_ns();
  return d;
}

py::dict roofline_dict(const fff::KernelMeasure& m) {
  py::dict d;
  d["per_second"] = m.per_second;
  d["seconds"] = m.seconds;
  d["threads"] = m.threads;
  d["isa"] = m.isa;
  d["lanes"] = m.lanes;
  return d;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "fff's native layer: OpenVINO runner, clock (private; use the fff package)";

  // fff::Error becomes the fff.errors class of the same kind, so callers see one family.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fff::Error& e) {
      py::object cls = py::module_::import("fff.errors").attr(python_class(e.kind()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });

  py::class_<fff::RunnerConfig>(m, "RunnerConfig")
      .def(py::init<>())
      .def_readwrite("device", &fff::RunnerConfig::device)
      .def_readwrite("precision", &fff::RunnerConfig::precision)
      .def_readwrite("threads", &fff::RunnerConfig::threads)
      .def_readwrite("streams", &fff::RunnerConfig::streams);

  py::class_<fff::Runner>(m, "Runner")
      .def(py::init<const std::string&, const std::vector<std::vector<int64_t>>&, const fff::RunnerConfig&>(),
           py::arg("model_path"), py::arg("input_shapes"), py::arg("config"))
      .def_property_readonly("inputs", [](const fff::Runner& r) {
        py::list l;
        for (const auto& p : r.inputs()) l.append(port_dict(p));
        return l;
      })
      .def_property_readonly("outputs", [](const fff::Runner& r) {
        py::list l;
        for (const auto& p : r.outputs()) l.append(port_dict(p));
        return l;
      })
      .def("set_input", &set_input, py::arg("index"), py::arg("array"))
      .def("output", &get_output, py::arg("index"))
      .def("run", &run, py::arg("warmup"), py::arg("iterations"), py::arg("counters") = std::vector<std::string>{},
           py::arg("per_iteration_counters") = false, py::arg("callgrind") = false)
      .def("profile_layers", &profile_layers, py::arg("warmup"), py::arg("iterations"))
      .def("effective_config", &fff::Runner::effective_config);

  fff::bind_counters(m);

  m.def("clock_info", &clock_info, "Which clock times the loop, why, and its calibration");
  m.def("fma_peak", [](int threads, double seconds) {
        return roofline_dict([&] { py::gil_scoped_release no_gil; return fff::fma_peak(threads, seconds); }()); },
        py::arg("threads"), py::arg("seconds"), "Peak f32 FMA FLOP/s of `threads` threads (fff.roofline)");
  m.def("triad_bandwidth", [](int threads, size_t bytes, int repeats) {
        return roofline_dict([&] { py::gil_scoped_release no_gil; return fff::triad_bandwidth(threads, bytes, repeats); }()); },
        py::arg("threads"), py::arg("bytes_per_array"), py::arg("repeats"), "STREAM triad bytes/s (fff.roofline)");
  m.attr("openvino_build") = std::string(ov::get_openvino_version().buildNumber);
}
