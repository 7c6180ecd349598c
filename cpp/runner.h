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

// One executed (or fused away, or not run) node of the compiled model, as
// InferRequest::get_profiling_info() reports it for one inference.
struct ProfiledNode {
  std::string node_name;  // the runtime node's name: after fusion, the name of the node that absorbed others
  std::string node_type;  // the layer type (Convolution, Eltwise, ...)
  std::string exec_type;  // the kernel that ran, e.g. brgconv_avx512_f32; "undef" when it did not run
  std::string status;     // EXECUTED, NOT_RUN or OPTIMIZED_OUT
  double real_time_ns = 0.0;
  double cpu_time_ns = 0.0;
};

// Per-node times over a few inferences of a second, profiling-enabled compilation of the same
// model (the timed one never has profiling on), with what the runtime graph says each node absorbed.
struct LayerProfile {
  std::vector<std::vector<ProfiledNode>> iterations;  // one list per inference, warm-up excluded
  std::vector<double> latencies_ns;                   // end-to-end infer() time of those inferences
  // runtime node name -> its rt_info "originalLayersNames": the model's nodes fused into it, the absorbing one first
  std::map<std::string, std::string> original_names;
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

  // Compiles the model again with ov::enable_profiling(true), runs `warmup` then `iterations`
  // inferences on the same input tensors, and returns each one's per-node profile. Safe with the
  // GIL released. The timed request and its compiled model are untouched.
  LayerProfile profile_layers(int warmup, int iterations);

  // Every property the compiled model reports, as strings: what actually runs, not what was asked.
  std::map<std::string, std::string> effective_config() const;

 private:
  ov::Core core_;
  std::shared_ptr<ov::Model> model_;  // kept for profile_layers' second compilation
  ov::AnyMap properties_;
  std::string device_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  std::vector<PortInfo> inputs_;
  std::vector<PortInfo> outputs_;
  bool first_done_ = false;
  double first_inference_ns_ = -1.0;
};

}  // namespace fff
