// The reference the runner is held to: the plainest possible timed loop of infer(), with the
// same compile configuration. Prints one latency in nanoseconds per line.
// Usage: bare_loop MODEL.xml THREADS WARMUP ITERATIONS N,C,H,W
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <openvino/openvino.hpp>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s MODEL.xml THREADS WARMUP ITERATIONS N,C,H,W\n", argv[0]);
    return 2;
  }
  std::vector<int64_t> shape;
  std::stringstream dims(argv[5]);
  for (std::string d; std::getline(dims, d, ',');) shape.push_back(std::stoll(d));

  ov::Core core;
  auto model = core.read_model(argv[1]);
  model->reshape(ov::PartialShape(std::vector<ov::Dimension>(shape.begin(), shape.end())));
  auto compiled = core.compile_model(model, "CPU", ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY),
                                     ov::hint::inference_precision(ov::element::f32),
                                     ov::inference_num_threads(std::atoi(argv[2])), ov::num_streams(1));
  auto request = compiled.create_infer_request();
  float* input = request.get_input_tensor().data<float>();
  for (size_t i = 0; i < request.get_input_tensor().get_size(); ++i) input[i] = static_cast<float>(i % 7) / 7.0f;

  const int warmup = std::atoi(argv[3]), iterations = std::atoi(argv[4]);
  for (int i = 0; i < warmup; ++i) request.infer();
  std::vector<long long> ns(iterations);
  for (auto& t : ns) {
    auto start = std::chrono::steady_clock::now();
    request.infer();
    t = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  }
  for (long long t : ns) std::printf("%lld\n", t);
  return 0;
}
