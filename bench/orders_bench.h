#ifndef FERRY_BENCH_ORDERS_BENCH_H_
#define FERRY_BENCH_ORDERS_BENCH_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ferry {

struct BenchOptions {
  uint64_t transactions = 100000;  // T of shared/WORKLOAD.md
  int clients = 8;                 // for the concurrent end-to-end run
  int latency_rate = 1000;         // transactions per second offered in the latency run
  int latency_seconds = 30;
  std::string bin_dir;        // where ferry-master, ferry-replica and ferry-worker are
  std::string master_config;  // its catalog is used; its replica sites are replaced by BENCH
  std::string work_dir;       // databases and logs, one folder per run
  std::vector<std::string> runs = {"e2e-1", "e2e-n", "catch-up", "latency"};
  // Where the processes of a deployment started here run. "split": half of the CPUs this
  // process may use for the master and the clients (this process), the other half for the
  // replica site and its workers, as if master and replica were sites on hosts of their own
  // (each side's threads then wake each other on their own CPUs); the master's half is the one
  // with the CPU that handles the interrupts of the disk holding work_dir, if the machine says.
  // "shared": any process on any CPU.
  std::string placement = "split";
  // Set: a deployment that runs already, with empty databases, instead of one started here.
  // master_config is then that deployment's own; `site` one of its replica sites.
  struct Attached {
    std::string master_endpoint;   // the master's submit endpoint
    std::string master_db;         // its database file, read for the row check
    std::string site;              // the replica site measured
    std::string replica_endpoint;  // that replica's control endpoint
    std::string replica_db;        // its database file, read for the row check and latency
  };
  std::optional<Attached> attached;
};

struct Percentiles {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t samples = 0;
};

struct BenchResult {
  std::map<std::string, double> throughput;      // run -> transactions per second
  Percentiles commit_to_commit;                  // master commit -> replica commit
  Percentiles submit_to_commit;                  // client submit -> replica commit
  std::map<std::string, double> peak_memory_mb;  // process -> most VmHWM seen in any run
  // run (e2e-1, e2e-n) -> process kind (ferry-master, ferry-replica, ferry-worker, and
  // ferry-bench: the clients) -> CPU microseconds per transaction of the timed part
  std::map<std::string, std::map<std::string, double>> cpu_us_per_tx;
  // run -> of the master's, the CPU microseconds per transaction it polled for its fsyncs,
  // yielding the CPU to any thread that wanted it (MasterStatus.sync_poll_cpu_us)
  std::map<std::string, double> master_poll_us_per_tx;
  // The CPUs of each side with placement "split" (both empty: every process on any CPU), and
  // what /proc said each kind of process (ferry-bench too) may run on during the runs.
  std::string master_cpus, replica_cpus;
  std::map<std::string, std::string> cpus_seen;
  // Split: the CPU that had handled the most interrupts of the disk holding the runs' folder
  // (its half is the master's), if /proc and sysfs said.
  std::optional<int> disk_interrupt_cpu;
  bool converged = true;           // every run ended with equal rows
  std::vector<std::string> notes;  // what did not converge, and why; peaks over 50 MB, by run
};

// ferry-bench: the `orders` workload of shared/WORKLOAD.md against a deployment it starts
// itself on 127.0.0.1 (ferry-master and one ferry-replica site, BENCH, that gets every row;
// SQLite; see docs/benchmarks.md for what is fsynced when), or against one that runs already
// (BenchOptions::attached: one run, as its databases must start empty). Each run starts from
// empty databases: set-up (not timed), then the timed part, then a row-by-row check that the
// replica equals the master.
class OrdersBench {
 public:
  explicit OrdersBench(BenchOptions options) : options_(std::move(options)) {}
  // Runs the requested runs; an error means a run could not be made (a process did not
  // start, a submit failed); a run that does not converge is reported in the result.
  StatusOr<BenchResult> Run();

 private:
  BenchOptions options_;
};

// Adds one run's peaks (LocalDeployment::PeakMemoryMb) to `result`: the most per kind of
// process ("ferry-replica", whatever the site), and a note naming the run and the process for
// each peak over the 50 MB target, which the table alone would not say.
void RecordPeakMemory(const std::string& run, const std::map<std::string, double>& peaks_mb,
                      BenchResult* result);

// Each kind of process's CPU per transaction, in µs, between two readings of CPU seconds by
// kind. A kind whose total fell (a worker exited and took its CPU time with it) gets no figure
// rather than a wrong one; a kind new in `after` counts from 0.
std::map<std::string, double> CpuMicrosPerTransaction(const std::map<std::string, double>& before,
                                                      const std::map<std::string, double>& after,
                                                      uint64_t transactions);

// Of `cpus`, the one that has handled the most interrupts `irqs` so far, by the text of
// /proc/interrupts; none if none of them has handled any.
std::optional<int> BusiestCpu(const std::string& proc_interrupts, const std::vector<int>& irqs,
                              const std::vector<int>& cpus);

// The table ferry-bench prints, and its --json form.
std::string FormatTable(const BenchOptions& options, const BenchResult& result);
std::string FormatJson(const BenchOptions& options, const BenchResult& result);

}  // namespace ferry

#endif  // FERRY_BENCH_ORDERS_BENCH_H_
