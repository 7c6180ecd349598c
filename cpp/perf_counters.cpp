#include "perf_counters.h"

#include <dirent.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace fff {
namespace {

constexpr uint64_t kBaseReadFormat = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID;

pid_t current_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Returns the fd, or -errno.
int open_event(const EventSpec& event, bool user_only, uint64_t read_format, pid_t tid, int group_fd) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = event.type;
  attr.config = event.config;
  attr.config1 = event.config1;
  attr.config2 = event.config2;
  attr.read_format = read_format;
  // Threads (and processes) a counted thread creates later are counted too, and their counts
  // are folded into this fd's reads by the kernel.
  attr.inherit = 1;
  attr.exclude_kernel = user_only;
  attr.exclude_hv = user_only;
  const long fd = syscall(SYS_perf_event_open, &attr, tid, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

// As perf does on EMFILE: the soft limit on open files is often far below the hard one, and
// counting every thread of a big pool takes threads x events descriptors.
bool raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return false;
  limit.rlim_cur = limit.rlim_max;
  return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

int open_event_retrying(const EventSpec& event, bool user_only, uint64_t read_format, pid_t tid, int group_fd) {
  int fd = open_event(event, user_only, read_format, tid, group_fd);
  if (fd == -EMFILE && raise_open_file_limit()) fd = open_event(event, user_only, read_format, tid, group_fd);
  return fd;
}

std::string paranoid_level() {
  std::ifstream in("/proc/sys/kernel/perf_event_paranoid");
  std::string level;
  in >> level;
  return level.empty() ? "unknown" : level;
}

bool has_hardware_pmu() {
  // x86 names its core PMU "cpu" (hybrid parts: cpu_core, cpu_atom); Arm's are armv8_*.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/event_source/devices", ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "cpu" || name.rfind("cpu_", 0) == 0 || name.rfind("armv", 0) == 0) return true;
  }
  return false;
}

void classify_failure(int err, const EventSpec& event, CounterInfo* info) {
  switch (err) {
    case ENOENT:
    case EOPNOTSUPP:
    case ENODEV:
      info->status = "not supported";
      if (event.type == PERF_TYPE_SOFTWARE) {
        info->reason = "the kernel does not provide this software event";
      } else if (event.pmu == "cpu" && !has_hardware_pmu()) {
        info->reason = "this machine exposes no hardware PMU (a virtual machine without PMU passthrough, "
                       "for example); cache counts can be simulated instead (--simulate-cache, or fff.simulate_cache)";
      } else {
        info->reason = "PMU '" + event.pmu + "' does not support this event (" + std::strerror(err) + ")";
      }
      return;
    case EACCES:
    case EPERM:
      info->status = "no permission";
      info->reason = "perf_event_open refused (" + std::string(std::strerror(err)) + ") at kernel.perf_event_paranoid=" +
                     paranoid_level() + "; grant CAP_PERFMON (or run as root), or lower it: "
                     "sudo sysctl kernel.perf_event_paranoid=2 counts your own processes in user space; "
                     "in a container, its seccomp profile must also allow perf_event_open";
      return;
    case EMFILE:
    case ENFILE:
      info->status = "error";
      info->reason = "too many open files: each counter takes one descriptor per thread; raise `ulimit -n` "
                     "or count fewer events";
      return;
    case EBUSY:
      info->status = "error";
      info->reason = "the PMU is in exclusive use by another process";
      return;
    case EINVAL:
      info->status = "error";
      info->reason = "the kernel rejected the event's encoding (EINVAL)";
      return;
    default:
      info->status = "error";
      info->reason = std::string("perf_event_open failed: ") + std::strerror(err);
  }
}

std::vector<pid_t> list_threads() {
  std::vector<pid_t> tids;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return {current_tid()};
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') tids.push_back(static_cast<pid_t>(std::atoi(entry->d_name)));
  }
  closedir(dir);
  return tids;
}

uint64_t minus(uint64_t later, uint64_t earlier) { return later > earlier ? later - earlier : 0; }

}  // namespace

PerfCounterValues PerfCounterValues::since(const PerfCounterValues& earlier) const {
  PerfCounterValues out(readings_.size());
  for (size_t i = 0; i < readings_.size(); ++i) {
    out[i].value = minus(readings_[i].value, earlier[i].value);
    out[i].time_enabled = minus(readings_[i].time_enabled, earlier[i].time_enabled);
    out[i].time_running = minus(readings_[i].time_running, earlier[i].time_running);
  }
  return out;
}

PerfCounters PerfCounters::create(const std::vector<std::string>& names, const PerfCountersOptions& options) {
  std::vector<EventSpec> events;
  for (const auto& name : names) events.push_back(resolve_event(name));  // unknown names throw before any open
  return open(events, options);
}

PerfCounters PerfCounters::open(const std::vector<EventSpec>& events, const PerfCountersOptions& options) {
  PerfCounters set;
  set.group_reads_ = options.group_reads;
  std::vector<bool> usable(events.size(), false);

  // Probe each event alone on this thread first, so that one unsupported event never takes
  // the rest of its group down with it, and so that the paranoid fallback is decided once.
  for (size_t i = 0; i < events.size(); ++i) {
    const EventSpec& event = events[i];
    CounterInfo info{event.name, "ok", "", event.pmu, false};
    if (!event.unavailable_reason.empty()) {
      info.status = "not supported";
      info.reason = event.unavailable_reason;
    } else {
      int fd = open_event_retrying(event, false, kBaseReadFormat, 0, -1);
      if (fd == -EACCES || fd == -EPERM) {
        // Counting kernel code needs perf_event_paranoid < 2 or CAP_PERFMON; user space of our
        // own process is allowed at 2, so count that and say so.
        const int user_fd = open_event_retrying(event, true, kBaseReadFormat, 0, -1);
        if (user_fd >= 0) {
          fd = user_fd;
          info.user_space_only = true;
          info.reason = "user space only: kernel.perf_event_paranoid=" + paranoid_level() +
                        " forbids counting kernel code; CAP_PERFMON or kernel.perf_event_paranoid=1 includes it";
        }
      }
      if (fd >= 0) {
        close(fd);
        usable[i] = true;
      } else {
        classify_failure(-fd, event, &info);
      }
    }
    set.info_.push_back(info);
  }

  // One group per PMU; hardware groups no larger than the PMU can hold at once.
  std::map<std::string, std::vector<size_t>> by_pmu;
  std::vector<std::string> pmu_order;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!usable[i]) continue;
    if (!by_pmu.count(events[i].pmu)) pmu_order.push_back(events[i].pmu);
    by_pmu[events[i].pmu].push_back(i);
  }
  for (const auto& pmu : pmu_order) {
    const std::vector<size_t>& members = by_pmu[pmu];
    const size_t chunk = pmu == "software" ? members.size() : std::max<size_t>(1, options.max_hardware_group);
    for (size_t start = 0; start < members.size(); start += chunk) {
      Group group;
      group.counters.assign(members.begin() + start, members.begin() + std::min(members.size(), start + chunk));
      set.groups_.push_back(std::move(group));
    }
  }

  // Open every group on every thread. Threads may start while we work, so list again until
  // no new one appears; a thread that exits in between (ESRCH) simply has nothing to count.
  std::set<pid_t> seen;
  std::vector<bool> failed(set.groups_.size(), false);
  const pid_t self = current_tid();
  for (int pass = 0; pass < 16; ++pass) {
    std::vector<pid_t> tids = list_threads();
    if (pass == 0) tids.insert(tids.begin(), self);  // this thread first: its errors speak for all
    bool any_new = false;
    for (pid_t tid : tids) {
      if (!seen.insert(tid).second) continue;
      any_new = true;
      bool thread_gone = false;
      std::vector<std::vector<int>> opened(set.groups_.size());
      for (size_t g = 0; g < set.groups_.size() && !thread_gone; ++g) {
        if (failed[g]) continue;
        Group& group = set.groups_[g];
        int leader = -1;
        for (size_t k = 0; k < group.counters.size(); ++k) {
          const size_t index = group.counters[k];
          const bool user_only = set.info_[index].user_space_only;
          uint64_t format = kBaseReadFormat | (set.group_reads_ ? PERF_FORMAT_GROUP : 0);
          int fd = open_event_retrying(events[index], user_only, format, tid, leader);
          if (fd == -EINVAL && set.group_reads_ && k == 0 && tid == self && g == 0) {
            // Older kernels refuse PERF_FORMAT_GROUP together with inherit: read fds one by one.
            fd = open_event_retrying(events[index], user_only, kBaseReadFormat, tid, leader);
            if (fd >= 0) set.group_reads_ = false;
          }
          if (fd == -ESRCH) {
            thread_gone = true;
            break;
          }
          if (fd < 0) {
            CounterInfo why;
            classify_failure(-fd, events[index], &why);
            for (size_t member : group.counters) {
              set.info_[member].status = "error";
              set.info_[member].reason = "could not be opened " +
                                         (tid == self ? std::string("as a group") : "on thread " + std::to_string(tid)) +
                                         " (" + why.reason + "); a total without it would undercount";
            }
            failed[g] = true;
            break;
          }
          if (leader < 0) leader = fd;
          opened[g].push_back(fd);
          uint64_t id = 0;
          if (ioctl(fd, PERF_EVENT_IOC_ID, &id) == 0) set.id_to_counter_[id] = index;
        }
      }
      for (size_t g = 0; g < set.groups_.size(); ++g) {
        const bool complete = !thread_gone && !failed[g] && opened[g].size() == set.groups_[g].counters.size();
        if (complete) {
          set.groups_[g].fds.push_back(std::move(opened[g]));
        } else {
          for (int fd : opened[g]) close(fd);
        }
      }
      if (!thread_gone) ++set.threads_;
    }
    if (!any_new) break;
  }

  // Groups that failed anywhere are dropped whole: their counters already say why.
  std::vector<Group> kept;
  for (size_t g = 0; g < set.groups_.size(); ++g) {
    if (failed[g]) {
      for (auto& fds : set.groups_[g].fds) {
        for (int fd : fds) close(fd);
      }
    } else {
      kept.push_back(std::move(set.groups_[g]));
    }
  }
  set.groups_ = std::move(kept);
  size_t widest = 1;
  for (const auto& group : set.groups_) widest = std::max(widest, group.counters.size());
  set.buffer_.resize((3 + 2 * widest) * sizeof(uint64_t));
  return set;
}

PerfCounters::PerfCounters(PerfCounters&& other) noexcept { *this = std::move(other); }

PerfCounters& PerfCounters::operator=(PerfCounters&& other) noexcept {
  if (this != &other) {
    close_all();
    info_ = std::move(other.info_);
    groups_ = std::move(other.groups_);
    id_to_counter_ = std::move(other.id_to_counter_);
    buffer_ = std::move(other.buffer_);
    threads_ = other.threads_;
    group_reads_ = other.group_reads_;
    other.groups_.clear();
  }
  return *this;
}

PerfCounters::~PerfCounters() { close_all(); }

void PerfCounters::close_all() {
  for (auto& group : groups_) {
    for (auto& fds : group.fds) {
      for (int fd : fds) close(fd);
    }
  }
  groups_.clear();
}

void PerfCounters::read(PerfCounterValues* values) {
  if (values->size() != info_.size()) {
    *values = PerfCounterValues(info_.size());
  } else {
    for (size_t i = 0; i < values->size(); ++i) (*values)[i] = CounterReading{};
  }
  auto* words = reinterpret_cast<uint64_t*>(buffer_.data());
  std::vector<bool> broken(groups_.size(), false);
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (const auto& fds : groups_[g].fds) {
      if (group_reads_) {
        // { nr, time_enabled, time_running, { value, id } x nr }
        const ssize_t want = static_cast<ssize_t>((3 + 2 * fds.size()) * sizeof(uint64_t));
        if (::read(fds[0], words, buffer_.size()) < want) {
          broken[g] = true;
          continue;
        }
        for (uint64_t k = 0; k < words[0]; ++k) {
          auto it = id_to_counter_.find(words[3 + 2 * k + 1]);
          if (it == id_to_counter_.end()) continue;
          CounterReading& reading = (*values)[it->second];
          reading.value += words[3 + 2 * k];
          reading.time_enabled += words[1];
          reading.time_running += words[2];
        }
      } else {
        for (int fd : fds) {
          // { value, time_enabled, time_running, id }
          if (::read(fd, words, 4 * sizeof(uint64_t)) < static_cast<ssize_t>(4 * sizeof(uint64_t))) {
            broken[g] = true;
            continue;
          }
          auto it = id_to_counter_.find(words[3]);
          if (it == id_to_counter_.end()) continue;
          CounterReading& reading = (*values)[it->second];
          reading.value += words[0];
          reading.time_enabled += words[1];
          reading.time_running += words[2];
        }
      }
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!broken[g]) continue;
    for (size_t index : groups_[g].counters) {
      info_[index].status = "error";
      info_[index].reason = "reading the counter failed: " + std::string(std::strerror(errno));
      (*values)[index] = CounterReading{};
    }
  }
}

PerfCountersMeasurement::PerfCountersMeasurement(PerfCounters* counters) : counters_(counters) {}

void PerfCountersMeasurement::start() {
  samples_.clear();
  counters_->read(&first_);
  last_ = first_;
}

void PerfCountersMeasurement::sample() {
  counters_->read(&now_);
  samples_.push_back(now_.since(last_));
  std::swap(last_, now_);
}

PerfCounterValues PerfCountersMeasurement::stop() {
  counters_->read(&now_);
  return now_.since(first_);
}

}  // namespace fff
