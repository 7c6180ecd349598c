// Callgrind client requests around the measured inferences: no-ops outside valgrind, and
// compiled out (available() false) where valgrind's headers were missing at build time.
#pragma once

namespace fff::callgrind {

// Whether this build carries the client requests at all.
bool available();
// Whether this process runs under valgrind right now.
bool running_on_valgrind();

// Cache simulation starts before the warm-up so the simulated caches are warm, like real ones,
// when the measured inferences begin; costs are zeroed after it. Instrumentation and zeroing are
// global, unlike callgrind's collect toggle, which only affects the calling thread.
void start_instrumentation();
void zero_stats();
// Writes a profile part whose description is "Trigger: Client Request: <label>".
void dump_stats(const char* label);
void stop_instrumentation();

}  // namespace fff::callgrind
