#ifndef FERRY_BENCH_LOCAL_DEPLOYMENT_H_
#define FERRY_BENCH_LOCAL_DEPLOYMENT_H_

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/child_process.h"
#include "common/status.h"
#include "common/workload.h"
#include "proto/ferry.pb.h"

namespace ferry {

// The peak resident memory (VmHWM) in MB of process `pid`, if its name (/proc status) still
// contains `name`; 0 otherwise (gone, on another machine, or a later process with that pid).
double PeakResidentMb(int pid, const std::string& name);
// The CPUs process `pid` may run on ("0-1", /proc status), if its name still contains `name`;
// "" otherwise.
std::string CpusAllowed(int pid, const std::string& name);
// The CPU time in seconds (user and system, all threads; /proc stat) process `pid` has used,
// if its name still contains `name`; nothing otherwise.
std::optional<double> CpuSeconds(int pid, const std::string& name);

// A master and replica sites as real processes on 127.0.0.1 ("tcp://127.0.0.1:*" ports read
// back from ready files), with databases and logs in one folder: what the process-level tests
// and ferry-bench run. Destroying it stops them all. Not thread-safe, but for Submit and
// SubmitWorkload, which open a client of their own on the caller's context.
class LocalDeployment {
 public:
  // `bin_dir` holds the executables; `dir` (existing) gets the databases and logs;
  // `master_config` is the master configuration file StartMaster uses by default.
  LocalDeployment(std::string bin_dir, std::string dir, std::string master_config)
      : bin_dir_(std::move(bin_dir)),
        dir_(std::move(dir)),
        master_config_(std::move(master_config)) {}

  // Uses a deployment that runs already instead of starting one: its master's submit
  // endpoint and database file, and one replica site's control endpoint and database file.
  // The processes are not ours: nothing is stopped, and memory is read by the pids their
  // status reports (on this machine).
  void Attach(const std::string& submit_endpoint, const std::string& master_db,
              const std::string& site, const std::string& control_endpoint,
              const std::string& replica_db);

  // The CPUs (--cpus lists) the master and the replicas started from now on run on; empty:
  // any.
  void PlaceOnCpus(std::string master_cpus, std::string replica_cpus) {
    master_cpus_ = std::move(master_cpus);
    replica_cpus_ = std::move(replica_cpus);
  }

  // Starts the master; after a first start, on the same ports (so replicas and clients find
  // it again). `config` defaults to the deployed master configuration.
  Status StartMaster(const std::vector<std::string>& extra_args = {},
                     const std::string& config = {});
  void KillMaster();  // SIGKILL, no warning
  // SIGKILL to the replica of `site`, which stays down until started again.
  void KillReplica(const std::string& site);
  // Starts (or restarts: the running one is stopped first) the replica of `site`, with
  // `extra_args` for ferry-replica.
  Status StartReplica(const std::string& site, const std::vector<std::string>& extra_args = {});
  void StopReplica(const std::string& site);

  StatusOr<wire::ReplicaStatus> ReplicaStatus(const std::string& site);
  StatusOr<wire::MasterStatus> MasterStatus();
  // A request to a replica's control port; an Error reply comes back as a Status.
  StatusOr<wire::Envelope> Control(const std::string& site, wire::Envelope request);
  // Waits until every running replica has applied everything on its stream.
  bool WaitUntilApplied(std::chrono::milliseconds timeout);

  StatusOr<wire::SubmitReply> Submit(const wire::SubmitRequest& request);
  // The workload's set-up (with `setup`) and its transactions from..to.
  Status SubmitWorkload(OrdersWorkload& workload, uint64_t from, uint64_t to, bool setup);

  // The peak resident memory (VmHWM) so far, in MB, of the master ("ferry-master"), each
  // replica ("ferry-replica SITE") and each of its workers ("ferry-worker SITE QUEUE").
  std::map<std::string, double> PeakMemoryMb();
  // The CPU seconds used so far by the same processes, summed per kind: "ferry-master",
  // "ferry-replica", "ferry-worker". A process on another machine (attached) counts nothing.
  std::map<std::string, double> CpuSeconds();
  // The CPUs each kind of process may run on, as /proc says ("0-1"); distinct lists of one
  // kind are joined with " and ".
  std::map<std::string, std::string> CpusAllowed();

  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  std::string master_db() const {
    return attached_master_db_.empty() ? File("master.db") : attached_master_db_;
  }
  std::string db(const std::string& site) const {
    auto it = attached_dbs_.find(site);
    return it == attached_dbs_.end() ? File(site + ".db") : it->second;
  }
  std::string log(const std::string& site) const { return File(site + ".log"); }
  const std::string& submit_endpoint() const { return submit_endpoint_; }
  const std::string& control_endpoint(const std::string& site) { return control_endpoints_[site]; }
  const std::string& worker_endpoint(const std::string& site) { return worker_endpoints_[site]; }
  zmq::context_t& context() { return context_; }

 private:
  std::string Executable(const std::string& name) const { return bin_dir_ + "/" + name; }
  struct Process {
    std::string label;  // "ferry-master", "ferry-replica SITE", "ferry-worker SITE QUEUE"
    std::string name;   // its executable's name
    int pid;
  };
  // The master, each replica and each replica's workers, as far as their pids are known.
  std::vector<Process> Processes();

  std::string bin_dir_, dir_, master_config_;
  std::string master_cpus_, replica_cpus_;
  zmq::context_t context_;
  std::optional<ChildProcess> master_;
  std::map<std::string, ChildProcess> replicas_;  // by site
  std::string submit_endpoint_, stream_endpoint_;
  std::map<std::string, std::string> control_endpoints_, worker_endpoints_;  // by site
  std::string attached_master_db_;                                           // with Attach
  std::map<std::string, std::string> attached_dbs_;                          // by site, with Attach
};

}  // namespace ferry

#endif  // FERRY_BENCH_LOCAL_DEPLOYMENT_H_
