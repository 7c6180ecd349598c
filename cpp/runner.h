// The timed inference loop over OpenVINO's C++ runtime: a static-shape model compiled with an
// explicit config, fixed-seed inputs, synchronous infer() calls timed one by one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <openvino/openvino.hpp>

#include "perf_counters.h"

namespace fff {

struct RunnerConfig {
  std::string device = "CPU";
  // Empty means "the device's default": on CPUs with AVX512_BF16 or AMX that is bf16, which
  // is why fff asks for f32 unless the user chooses otherwise.
  std::string precision = "f32";
  int threads = 0;  // 0: the device's default
  int streams = 1;  // one stream: a single request owns all threads, the latency setting
};

struct PortInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string element_type;  // OpenVINO's name: f32, i64, ...
};

// What to count around the timed loop (warm-up excluded).
struct CountingOptions {
  std::vector<std::string> counters;  // perf counter names, summed over every thread
  bool per_iteration = false;         // also one reading per iteration, taken outside the timed bracket
  bool callgrind = false;             // cache simulation around the loop when run under callgrind
};

struct Timing {
  double first_inference_ns = -1.0;  // the first infer() ever on this request (lazy init included)
  std::vector<double> latencies_ns;  // one per timed iteration, warm-up excluded
  CounterReport counters;            // empty unless counters were asked for
};

class Runner {
 public:
  // input_shapes: one concrete shape per model input, in the model's input order; may be
  // empty when the model's inputs are already static. Throws fff::Error.
  Runner(const std::string& model_path, const std::vector<std::vector<int64_t>>& input_shapes,
         const RunnerConfig& config);

  const std::vector<PortInfo>& inputs() const { return inputs_; }
  const std::vector<PortInfo>& outputs() const { return outputs_; }

  // The input tensor's memory, to be filled by the caller (exactly byte_size bytes).
  void* input_data(size_t index, size_t* byte_size);
  ov::Tensor output(size_t index);

  // warmup untimed infer() calls, then `iterations` timed ones. Safe to call with the GIL
  // released: touches no Python object. Unknown counter names throw before any inference.
  Timing run(int warmup, int iterations, const CountingOptions& counting = {});

  // Every property the compiled model reports, as strings: what actually runs, not what was asked.
  std::map<std::string, std::string> effective_config() const;

 private:
  ov::Core core_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  std::vector<PortInfo> inputs_;
  std::vector<PortInfo> outputs_;
  bool first_done_ = false;
  double first_inference_ns_ = -1.0;
};

}  // namespace fff
