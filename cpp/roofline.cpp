// Peak f32 FMA throughput and triad bandwidth, measured the way STREAM and peak-FLOPs
// microbenchmarks do: many independent FMA chains in registers (enough to cover the FMA latency
// on two pipes), and a bandwidth-bound loop over arrays far larger than the last-level cache.
#include "roofline.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace fff {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kChunk = 1 << 16;  // FMA iterations between clock checks
volatile float g_sink = 0;        // keeps the chains' results alive

template <typename Body>
double run_threads(int threads, Body body) {
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> flops(threads, 0);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      flops[t] = body(t);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true);
  for (auto& thread : pool) thread.join();
  double total = 0;
  for (double f : flops) total += f;
  return total;
}

__attribute__((target("avx512f"))) double fma_chains_avx512(double seconds) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  double iterations = 0;
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (int k = 0; k < kChunk; ++k)
      for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    iterations += kChunk;
  } while (Clock::now() < end);
  __m512 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
  g_sink = g_sink + _mm512_reduce_add_ps(sum);
  return iterations * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma_chains_avx2(double seconds) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  double iterations = 0;
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (int k = 0; k < kChunk; ++k)
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    iterations += kChunk;
  } while (Clock::now() < end);
  alignas(32) float out[8];
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  _mm256_store_ps(out, sum);
  g_sink = g_sink + out[0];
  return iterations * 12 * 8 * 2;
}

double fma_chains_scalar(double seconds) {
  float acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = 1.0f + i * 1e-3f;
  double iterations = 0;
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (int k = 0; k < kChunk; ++k)
      for (int i = 0; i < 8; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
    iterations += kChunk;
  } while (Clock::now() < end);
  g_sink = g_sink + acc[0] + acc[7];
  return iterations * 8 * 2;
}

}  // namespace

KernelMeasure fma_peak(int threads, double seconds) {
  KernelMeasure m;
  m.threads = std::max(threads, 1);
  double (*kernel)(double) = fma_chains_scalar;
  m.isa = "scalar";
  m.lanes = 1;
  if (__builtin_cpu_supports("avx512f")) {
    kernel = fma_chains_avx512, m.isa = "avx512f", m.lanes = 16;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernel = fma_chains_avx2, m.isa = "avx2+fma", m.lanes = 8;
  }
  auto start = Clock::now();
  double flops = run_threads(m.threads, [&](int) { return kernel(seconds); });
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.per_second = flops / m.seconds;
  return m;
}

KernelMeasure triad_bandwidth(int threads, std::size_t bytes_per_array, int repeats) {
  KernelMeasure m;
  m.threads = std::max(threads, 1);
  const std::size_t n = std::max<std::size_t>(bytes_per_array / sizeof(double), 1024);
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  auto part = [&](int t, std::size_t* lo, std::size_t* hi) {
    *lo = n * t / m.threads;
    *hi = n * (t + 1) / m.threads;
  };
  run_threads(m.threads, [&](int t) {  // first touch by the thread that will stream the part
    std::size_t lo, hi;
    part(t, &lo, &hi);
    for (std::size_t i = lo; i < hi; ++i) a[i] = 0, b[i] = 1, c[i] = 2;
    return 0.0;
  });
  const double scalar = 3.0;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    auto start = Clock::now();
    run_threads(m.threads, [&](int t) {
      std::size_t lo, hi;
      part(t, &lo, &hi);
      double* __restrict pa = a.get();
      const double* __restrict pb = b.get();
      const double* __restrict pc = c.get();
      for (std::size_t i = lo; i < hi; ++i) pa[i] = pb[i] + scalar * pc[i];
      return 0.0;
    });
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    double rate = 3.0 * sizeof(double) * n / seconds;
    if (rate > m.per_second) m.per_second = rate, m.seconds = seconds;
  }
  g_sink = g_sink + static_cast<float>(a[n / 2]);
  return m;
}

}  // namespace fff
