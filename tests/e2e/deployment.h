#ifndef FERRY_TESTS_E2E_DEPLOYMENT_H_
#define FERRY_TESTS_E2E_DEPLOYMENT_H_

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/catalog.h"
#include "common/child_process.h"
#include "common/status.h"
#include "common/workload.h"
#include "proto/ferry.pb.h"
#include "test_util.h"

namespace ferry::testing {

// A master and replica sites as real processes on 127.0.0.1 ("tcp://127.0.0.1:*" ports read
// back from ready files), with databases and logs in a TempDir. Destroying it stops them all.
class Deployment {
 public:
  explicit Deployment(const TempDir& dir) : dir_(dir) {}

  // Starts the master; after a first start, on the same ports (so replicas and clients find
  // it again). `config` defaults to the deployed master configuration.
  Status StartMaster(const std::vector<std::string>& extra_args = {},
                     const std::string& config = DeployedMasterConfiguration());
  void KillMaster();  // SIGKILL, no warning
  // SIGKILL to the replica of `site`, which stays down until started again.
  void KillReplica(const std::string& site);
  int ReplicaPid(const std::string& site) const;
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

  std::string master_db() const { return dir_.File("master.db"); }
  std::string db(const std::string& site) const { return dir_.File(site + ".db"); }
  std::string log(const std::string& site) const { return dir_.File(site + ".log"); }
  const std::string& submit_endpoint() const { return submit_endpoint_; }
  const std::string& control_endpoint(const std::string& site) { return control_endpoints_[site]; }
  const std::string& worker_endpoint(const std::string& site) { return worker_endpoints_[site]; }
  zmq::context_t& context() { return context_; }

 private:
  const TempDir& dir_;
  zmq::context_t context_;
  std::optional<ChildProcess> master_;
  std::vector<std::string> master_args_;          // of the last start, for a restart
  std::map<std::string, ChildProcess> replicas_;  // by site
  std::string submit_endpoint_, stream_endpoint_;
  std::map<std::string, std::string> control_endpoints_, worker_endpoints_;  // by site
};

// Expects (gtest) every LU of `site` in `replica_db` to equal the master's rows routed to it;
// returns the rows compared.
size_t ExpectRowsEqualMaster(const Catalog& catalog, const std::string& master_db,
                             const std::string& replica_db, const std::string& site);

// The whole text of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace ferry::testing

#endif  // FERRY_TESTS_E2E_DEPLOYMENT_H_
