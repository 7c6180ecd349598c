// The machine's own limits for the roofline: peak f32 FMA throughput and STREAM-style triad bandwidth.
#pragma once

#include <cstddef>
#include <string>

namespace fff {

struct KernelMeasure {
  double per_second = 0;  // FLOP/s (fma_peak) or bytes/s (triad_bandwidth), the best repeat
  double seconds = 0;     // wall time of that repeat
  int threads = 0;
  std::string isa;        // "avx512f", "avx2+fma" or "scalar" (fma_peak); "" for the triad
  int lanes = 0;          // f32 lanes per FMA instruction
};

// Every thread runs independent chains of f32 FMAs on registers (no memory traffic) for about
// `seconds`; FLOPs = 2 per lane per FMA. The widest ISA this CPU has is used.
KernelMeasure fma_peak(int threads, double seconds);

// a[i] = b[i] + s * c[i] over three double arrays of `bytes_per_array` each, split across
// `threads`, each thread first-touching its own part; bytes = 3 x 8 per element (STREAM's count,
// without the write-allocate read). Best of `repeats`.
KernelMeasure triad_bandwidth(int threads, std::size_t bytes_per_array, int repeats);

}  // namespace fff
