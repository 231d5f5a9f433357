#ifndef FERRY_COMMON_CPUS_H_
#define FERRY_COMMON_CPUS_H_

#include <string>
#include <vector>

#include "common/status.h"

namespace ferry {

// Which CPUs a node runs on (--cpus). Two threads that hand work to each other wake each other
// up; on a virtual machine, waking a thread on another CPU that sleeps costs 30-70 µs (the
// other vCPU must be woken by the host), on the same CPU a few. So on a small host that runs
// several nodes, keeping each node's threads (its poll loop, ZeroMQ's I/O thread, the commit
// log's fsync thread) and the workers a replica starts on CPUs of their own pays
// (docs/benchmarks.md, "Placement").

// The CPUs of a Linux CPU list ("0", "0-3", "0,2-3"), ascending, each once. An error names the
// text and what is wrong with it.
StatusOr<std::vector<int>> ParseCpuList(const std::string& text);

// `cpus` written as a CPU list ("0-2,5").
std::string FormatCpuList(const std::vector<int>& cpus);

// The CPUs this process may run on now (its affinity; all online CPUs unless restricted).
std::vector<int> AllowedCpus();

// Restricts this process to the CPUs of `list`, each of which must be online and in its cpuset;
// an error names those that are not, and leaves the CPUs as they were. It sets the calling
// thread's affinity, which threads and processes started afterwards inherit: call it before any
// thread starts (before a ZeroMQ context exists).
Status RunOnlyOnCpus(const std::string& list);

}  // namespace ferry

#endif  // FERRY_COMMON_CPUS_H_
