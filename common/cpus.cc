#include "common/cpus.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace ferry {
namespace {

// A whole non-negative number below CPU_SETSIZE, or -1.
int CpuNumber(const std::string& text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  const int cpu = std::stoi(text);
  return cpu < CPU_SETSIZE ? cpu : -1;
}

}  // namespace

StatusOr<std::vector<int>> ParseCpuList(const std::string& text) {
  auto wrong = [&](const std::string& what) {
    return Status::InvalidArgument("'" + text +
                                   "' is not a CPU list (like 0, 0-3 or 0,2-3): " + what);
  };
  if (text.empty()) return wrong("it is empty");
  std::vector<int> cpus;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    const int first = CpuNumber(item.substr(0, dash));
    const int last = dash == std::string::npos ? first : CpuNumber(item.substr(dash + 1));
    if (first < 0 || last < 0) {
      return wrong("'" + item + "' is not a CPU number below " + std::to_string(CPU_SETSIZE) +
                   " or a range of them");
    }
    if (last < first) return wrong("the range '" + item + "' ends before it starts");
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

Status RunOnlyOnCpus(const std::string& list) {
  auto cpus = ParseCpuList(list);
  if (!cpus.ok()) return cpus.status();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : *cpus) CPU_SET(cpu, &set);
  cpu_set_t before;
  CPU_ZERO(&before);
  const bool had_before = sched_getaffinity(0, sizeof(before), &before) == 0;
  // The kernel refuses a set with no CPU this process's cpuset holds (EINVAL), and quietly
  // drops the ones it lacks from any other: read back what it took.
  const bool set_at_all = sched_setaffinity(0, sizeof(set), &set) == 0;
  const int error = errno;
  const std::vector<int> now = AllowedCpus();
  std::vector<int> missing;
  std::set_difference(cpus->begin(), cpus->end(), now.begin(), now.end(),
                      std::back_inserter(missing));
  if (set_at_all && missing.empty()) return Status::Ok();
  if (set_at_all && had_before) (void)sched_setaffinity(0, sizeof(before), &before);
  if (!set_at_all && error != EINVAL) {
    return Status::IoError("cannot run on CPUs " + list + ": " + std::strerror(error));
  }
  std::ifstream online_file("/sys/devices/system/cpu/online");
  std::string online;
  std::getline(online_file, online);
  return Status::InvalidArgument(
      "'" + list + "' names CPUs this process may not run on: " +
      FormatCpuList(missing.empty() ? *cpus : missing) +
      " (this machine's online CPUs: " + (online.empty() ? "unknown" : online) + ")");
}

}  // namespace ferry
