#include "runner.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <openvino/frontend/manager.hpp>

#include "clock.h"
#include "errors.h"
#include "perf_callgrind.h"

namespace fff {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << "]";
  return out.str();
}

std::string device_base(const std::string& device) { return device.substr(0, device.find('.')); }

void check_device(ov::Core& core, const std::string& device) {
  std::vector<std::string> available = core.get_available_devices();
  bool found = std::any_of(available.begin(), available.end(), [&](const std::string& d) {
    return d == device || device_base(d) == device;
  });
  if (found) return;
  std::string names;
  for (const auto& d : available) names += (names.empty() ? "" : ", ") + d;
  throw Error(Error::Kind::Device, "device '" + device + "' is not available on this machine (available: " +
                                       (names.empty() ? "none" : names) + ")");
}

std::shared_ptr<ov::Model> read_model(ov::Core& core, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(Error::Kind::ModelFile, "model file not found: " + path);
  if (!fs::is_regular_file(path, ec)) throw Error(Error::Kind::ModelFile, "not a model file: " + path);
  const std::string extension = fs::path(path).extension().string();
  if (extension != ".xml" && extension != ".onnx") {
    throw Error(Error::Kind::ModelFile, "unsupported model format '" + extension + "' for " + path +
                                            " (the runner reads OpenVINO IR .xml and ONNX .onnx)");
  }
  // An IR is checked here because read_model would otherwise offer a non-IR .xml to every
  // frontend in turn, and some of them print parse errors of their own to stderr.
  if (extension == ".xml") {
    std::ifstream file(path);
    std::string head(4096, '\0');
    file.read(&head[0], static_cast<std::streamsize>(head.size()));
    if (head.find("<net") == std::string::npos) {
      throw Error(Error::Kind::ModelFile, "not an OpenVINO IR (no <net> element): " + path);
    }
    fs::path weights = fs::path(path).replace_extension(".bin");
    if (!fs::exists(weights, ec)) {
      throw Error(Error::Kind::ModelFile, "IR weights file missing: " + weights.string());
    }
  }
  try {
    if (extension == ".onnx") {
      // The ONNX frontend alone: read_model would also offer a corrupt file to the TensorFlow
      // frontend, which prints protobuf errors to stderr and hides the ONNX parser's reason.
      ov::frontend::FrontEndManager manager;
      ov::frontend::FrontEnd::Ptr onnx = manager.load_by_framework("onnx");
      // load() takes an empty file and returns a model with no inputs; supported() parses it.
      if (!onnx->supported(path)) throw Error(Error::Kind::ModelFile, "not an ONNX model: " + path);
      return onnx->convert(onnx->load(path));
    }
    return core.read_model(path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(Error::Kind::ModelFile, "cannot read model " + path + ": " + concise_reason(e));
  }
}

// A dynamic dimension left in a timed model is never allowed: infer() on an unset dynamic
// input does no work and "runs" in microseconds.
void make_static(const std::shared_ptr<ov::Model>& model, const std::vector<std::vector<int64_t>>& shapes) {
  const auto& params = model->inputs();
  if (!shapes.empty()) {
    if (shapes.size() != params.size()) {
      throw Error(Error::Kind::Shape, "model has " + std::to_string(params.size()) + " input(s) but " +
                                          std::to_string(shapes.size()) + " shape(s) were given");
    }
    std::map<size_t, ov::PartialShape> wanted;
    for (size_t i = 0; i < shapes.size(); ++i) {
      for (int64_t d : shapes[i]) {
        if (d <= 0) throw Error(Error::Kind::Shape, "input " + std::to_string(i) + " shape " +
                                                        shape_text(shapes[i]) + " has a non-positive dimension");
      }
      const ov::PartialShape& current = params[i].get_partial_shape();
      if (current.rank().is_static() && current.rank().get_length() != static_cast<int64_t>(shapes[i].size())) {
        throw Error(Error::Kind::Shape, "input " + std::to_string(i) + " has rank " +
                                            std::to_string(current.rank().get_length()) + " (" + current.to_string() +
                                            ") but shape " + shape_text(shapes[i]) + " was given");
      }
      wanted[i] = ov::PartialShape(std::vector<ov::Dimension>(shapes[i].begin(), shapes[i].end()));
    }
    try {
      model->reshape(wanted);
    } catch (const std::exception& e) {
      throw Error(Error::Kind::Shape, "model cannot be reshaped to the given input shape(s): " + concise_reason(e));
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].get_partial_shape().is_dynamic()) {
      throw Error(Error::Kind::Shape, "input " + std::to_string(i) + " ('" + params[i].get_any_name() +
                                          "') has dynamic shape " + params[i].get_partial_shape().to_string() +
                                          "; give a concrete input shape");
    }
  }
  for (const auto& out : model->outputs()) {
    if (out.get_partial_shape().is_dynamic()) {
      throw Error(Error::Kind::Shape, "output shape " + out.get_partial_shape().to_string() +
                                          " stays dynamic after reshaping; the model's output depends on data");
    }
  }
}

ov::AnyMap compile_config(ov::Core& core, const RunnerConfig& config) {
  ov::AnyMap properties{{ov::hint::performance_mode.name(), ov::hint::PerformanceMode::LATENCY}};
  std::vector<ov::PropertyName> supported = core.get_property(config.device, ov::supported_properties);
  auto supports = [&](const std::string& name) {
    return std::find(supported.begin(), supported.end(), name) != supported.end();
  };
  if (!config.precision.empty()) {
    static const std::set<std::string> precisions{"f32", "bf16", "f16"};
    if (!precisions.count(config.precision)) {
      throw Error(Error::Kind::Usage, "invalid precision '" + config.precision + "' (choose f32, bf16 or f16)");
    }
    properties[ov::hint::inference_precision.name()] = ov::element::Type(config.precision);
  }
  if (config.threads < 0) throw Error(Error::Kind::Usage, "threads must be >= 0 (0: the device's default)");
  if (config.threads > 0) {
    if (!supports(ov::inference_num_threads.name())) {
      throw Error(Error::Kind::Device, "device '" + config.device + "' does not take a thread count");
    }
    properties[ov::inference_num_threads.name()] = config.threads;
  }
  if (config.streams < 0) throw Error(Error::Kind::Usage, "streams must be >= 0 (0: the device's default)");
  if (config.streams > 0) properties[ov::num_streams.name()] = ov::streams::Num(config.streams);
  return properties;
}

PortInfo port_info(const ov::Output<const ov::Node>& port) {
  PortInfo info;
  info.name = port.get_names().empty() ? std::string() : port.get_any_name();
  for (size_t d : port.get_shape()) info.shape.push_back(static_cast<int64_t>(d));
  info.element_type = port.get_element_type().get_type_name();
  return info;
}

// Fixed-seed inputs, as benchmark_app does: never uninitialised memory, the same every run.
void fill_deterministic(ov::Tensor& tensor, uint32_t seed) {
  std::mt19937 rng(seed);
  const ov::element::Type type = tensor.get_element_type();
  const size_t n = tensor.get_size();
  if (type == ov::element::f32) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    float* data = tensor.data<float>();
    for (size_t i = 0; i < n; ++i) data[i] = dist(rng);
  } else if (type == ov::element::i64) {
    std::uniform_int_distribution<int64_t> dist(0, 9);
    int64_t* data = tensor.data<int64_t>();
    for (size_t i = 0; i < n; ++i) data[i] = dist(rng);
  } else if (type == ov::element::i32) {
    std::uniform_int_distribution<int32_t> dist(0, 9);
    int32_t* data = tensor.data<int32_t>();
    for (size_t i = 0; i < n; ++i) data[i] = dist(rng);
  } else {
    std::uniform_int_distribution<int> dist(0, 1);
    auto* data = static_cast<uint8_t*>(tensor.data());
    for (size_t i = 0; i < tensor.get_byte_size(); ++i) data[i] = static_cast<uint8_t>(dist(rng));
  }
}

}  // namespace

std::string concise_reason(const std::exception& e) {
  std::istringstream lines(e.what());
  std::string line, kept;
  std::set<std::string> seen;
  while (std::getline(lines, line)) {
    line.erase(0, line.find_first_not_of(" \t"));
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line.rfind("Exception from ", 0) == 0) continue;
    // "Check 'cond' failed at src/...:NN:" is a breadcrumb too; the reason follows it.
    if (line.rfind("Check '", 0) == 0 && line.find(" failed at ") != std::string::npos) continue;
    if (line.rfind("FrontEnd API failed", 0) == 0) continue;  // the kind of failure; the reason follows
    if (line.rfind("[ GENERAL_ERROR ]", 0) == 0) line = line.substr(17);
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.empty() || !seen.insert(line).second) continue;
    kept += (kept.empty() ? "" : "; ") + line;
  }
  return kept.empty() ? std::string(e.what()) : kept;
}

Runner::Runner(const std::string& model_path, const std::vector<std::vector<int64_t>>& input_shapes,
               const RunnerConfig& config) {
  check_device(core_, config.device);
  std::shared_ptr<ov::Model> model = read_model(core_, model_path);
  make_static(model, input_shapes);
  ov::AnyMap properties = compile_config(core_, config);
  model_ = model;
  properties_ = properties;
  device_ = config.device;
  try {
    compiled_ = core_.compile_model(model, config.device, properties);
  } catch (const std::exception& e) {
    throw Error(Error::Kind::Compile, "cannot compile " + model_path + " for " + config.device + ": " +
                                          concise_reason(e));
  }
  request_ = compiled_.create_infer_request();
  for (const auto& port : compiled_.inputs()) inputs_.push_back(port_info(port));
  for (const auto& port : compiled_.outputs()) outputs_.push_back(port_info(port));
  for (size_t i = 0; i < inputs_.size(); ++i) {
    ov::Tensor tensor = request_.get_input_tensor(i);
    fill_deterministic(tensor, static_cast<uint32_t>(i));
  }
}

void* Runner::input_data(size_t index, size_t* byte_size) {
  if (index >= inputs_.size()) {
    throw Error(Error::Kind::Usage, "input index " + std::to_string(index) + " out of range (model has " +
                                        std::to_string(inputs_.size()) + " input(s))");
  }
  ov::Tensor tensor = request_.get_input_tensor(index);
  *byte_size = tensor.get_byte_size();
  return tensor.data();
}

ov::Tensor Runner::output(size_t index) {
  if (index >= outputs_.size()) {
    throw Error(Error::Kind::Usage, "output index " + std::to_string(index) + " out of range (model has " +
                                        std::to_string(outputs_.size()) + " output(s))");
  }
  return request_.get_output_tensor(index);
}

Timing Runner::run(int warmup, int iterations, const CountingOptions& counting) {
  if (warmup < 0) throw Error(Error::Kind::Usage, "warm-up count must be >= 0");
  if (iterations < 1) throw Error(Error::Kind::Usage, "iterations must be >= 1");
  std::vector<EventSpec> events;
  for (const auto& name : counting.counters) events.push_back(resolve_event(name));
  const Clock& clock = Clock::instance();
  if (!first_done_) {
    uint64_t start = clock.now();
    request_.infer();
    first_inference_ns_ = clock.to_ns(clock.now() - start);
    first_done_ = true;
  }
  if (counting.callgrind) callgrind::start_instrumentation();
  for (int i = 0; i < warmup; ++i) request_.infer();

  // Raw ticks only inside the loop; conversion to nanoseconds happens after it. Counter reads
  // (per iteration: after each one) stay outside the bracket the clock times.
  std::vector<uint64_t> ticks(static_cast<size_t>(iterations));
  auto timed_loop = [&](auto&& after_each) {
    for (auto& t : ticks) {
      uint64_t start = clock.now();
      request_.infer();
      t = clock.now() - start;
      after_each();
    }
  };
  Timing timing;
  if (events.empty()) {
    if (counting.callgrind) callgrind::zero_stats();
    timed_loop([] {});
    if (counting.callgrind) callgrind::dump_stats("fff-measured");
  } else {
    // Opened after the warm-up, when the runtime's worker threads exist.
    PerfCounters counters = PerfCounters::open(events);
    PerfCountersMeasurement measurement(&counters);
    if (counting.per_iteration) measurement.reserve_samples(ticks.size());
    measurement.start();
    if (counting.callgrind) callgrind::zero_stats();
    if (counting.per_iteration) {
      timed_loop([&] { measurement.sample(); });
    } else {
      timed_loop([] {});
    }
    if (counting.callgrind) callgrind::dump_stats("fff-measured");
    timing.counters.totals = measurement.stop();
    timing.counters.per_iteration = measurement.per_sample();
    timing.counters.counters = counters.counters();
    timing.counters.threads = counters.threads();
    timing.counters.group_reads = counters.group_reads();
  }
  if (counting.callgrind) callgrind::stop_instrumentation();

  timing.first_inference_ns = first_inference_ns_;
  timing.latencies_ns.reserve(ticks.size());
  for (uint64_t t : ticks) timing.latencies_ns.push_back(clock.to_ns(t));
  return timing;
}

LayerProfile Runner::profile_layers(int warmup, int iterations) {
  if (warmup < 0) throw Error(Error::Kind::Usage, "warm-up count must be >= 0");
  if (iterations < 1) throw Error(Error::Kind::Usage, "iterations must be >= 1");
  ov::AnyMap properties = properties_;
  properties[ov::enable_profiling.name()] = true;
  ov::CompiledModel profiled;
  try {
    profiled = core_.compile_model(model_, device_, properties);
  } catch (const std::exception& e) {
    throw Error(Error::Kind::Compile, "cannot compile the model with profiling on for " + device_ + ": " +
                                          concise_reason(e));
  }
  ov::InferRequest request = profiled.create_infer_request();
  for (size_t i = 0; i < inputs_.size(); ++i) request.set_input_tensor(i, request_.get_input_tensor(i));

  LayerProfile profile;
  // Which model nodes each runtime node absorbed: the reliable attribution of fused nodes, whose
  // own name is only that of the node that absorbed the others.
  for (const auto& node : profiled.get_runtime_model()->get_ordered_ops()) {
    const auto& info = node->get_rt_info();
    auto names = info.find("originalLayersNames");
    if (names != info.end()) profile.original_names[node->get_friendly_name()] = names->second.as<std::string>();
  }
  for (int i = 0; i < warmup; ++i) request.infer();
  const Clock& clock = Clock::instance();
  for (int i = 0; i < iterations; ++i) {
    uint64_t start = clock.now();
    request.infer();
    profile.latencies_ns.push_back(clock.to_ns(clock.now() - start));
    std::vector<ProfiledNode> nodes;
    for (const ov::ProfilingInfo& info : request.get_profiling_info()) {
      ProfiledNode node;
      node.node_name = info.node_name;
      node.node_type = info.node_type;
      node.exec_type = info.exec_type;
      switch (info.status) {
        case ov::ProfilingInfo::Status::EXECUTED: node.status = "EXECUTED"; break;
        case ov::ProfilingInfo::Status::NOT_RUN: node.status = "NOT_RUN"; break;
        case ov::ProfilingInfo::Status::OPTIMIZED_OUT: node.status = "OPTIMIZED_OUT"; break;
      }
      node.real_time_ns = static_cast<double>(info.real_time.count()) * 1e3;  // microseconds
      node.cpu_time_ns = static_cast<double>(info.cpu_time.count()) * 1e3;
      nodes.push_back(std::move(node));
    }
    profile.iterations.push_back(std::move(nodes));
  }
  return profile;
}

std::map<std::string, std::string> Runner::effective_config() const {
  std::map<std::string, std::string> config;
  for (const auto& name : compiled_.get_property(ov::supported_properties)) {
    if (name == ov::supported_properties.name()) continue;
    try {
      config[name] = compiled_.get_property(name).as<std::string>();
    } catch (const std::exception&) {
      // A property the plugin lists but cannot render as text (a nested map, say) is left out.
    }
  }
  return config;
}

}  // namespace fff
