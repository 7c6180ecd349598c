#include "perf_callgrind.h"

#if defined(FFF_HAVE_CALLGRIND)
#include <valgrind/callgrind.h>
#endif

namespace fff::callgrind {

#if defined(FFF_HAVE_CALLGRIND)
bool available() { return true; }
bool running_on_valgrind() { return RUNNING_ON_VALGRIND != 0; }
void start_instrumentation() { CALLGRIND_START_INSTRUMENTATION; }
void zero_stats() { CALLGRIND_ZERO_STATS; }
void dump_stats(const char* label) { CALLGRIND_DUMP_STATS_AT(label); }
void stop_instrumentation() { CALLGRIND_STOP_INSTRUMENTATION; }
#else
bool available() { return false; }
bool running_on_valgrind() { return false; }
void start_instrumentation() {}
void zero_stats() {}
void dump_stats(const char*) {}
void stop_instrumentation() {}
#endif

}  // namespace fff::callgrind
