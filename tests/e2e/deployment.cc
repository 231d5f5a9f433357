#include "e2e/deployment.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/node_client.h"
#include "common/site_rows.h"

namespace ferry::testing {

Status Deployment::StartMaster(const std::vector<std::string>& extra_args,
                               const std::string& config) {
  master_.reset();
  const bool restart = !submit_endpoint_.empty();
  std::filesystem::remove(dir_.File("master.ready"));
  std::vector<std::string> argv = {Executable("ferry-master"),
                                   "--master-config",
                                   config,
                                   "--db",
                                   master_db(),
                                   "--submit-endpoint",
                                   restart ? submit_endpoint_ : "tcp://127.0.0.1:*",
                                   "--stream-endpoint",
                                   restart ? stream_endpoint_ : "tcp://127.0.0.1:*",
                                   "--heartbeat-ms",
                                   "200",
                                   "--ready-file",
                                   dir_.File("master.ready")};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto master = ChildProcess::Start(argv, dir_.File("master.log"));
  if (!master.ok()) return master.status();
  master_.emplace(std::move(master).value());
  auto ready = ReadReadyFile(dir_.File("master.ready"), std::chrono::seconds(10));
  if (!ready.count("submit")) {
    return Status::Unavailable("the master did not start; see " + dir_.File("master.log"));
  }
  submit_endpoint_ = ready["submit"];
  stream_endpoint_ = ready["stream"];
  return Status::Ok();
}

void Deployment::KillMaster() {
  if (master_) master_->Signal(SIGKILL);
  master_.reset();
}

void Deployment::KillReplica(const std::string& site) {
  auto it = replicas_.find(site);
  if (it == replicas_.end()) return;
  it->second.Signal(SIGKILL);
  replicas_.erase(it);
}

int Deployment::ReplicaPid(const std::string& site) const {
  auto it = replicas_.find(site);
  return it == replicas_.end() ? 0 : it->second.pid();
}

Status Deployment::StartReplica(const std::string& site,
                                const std::vector<std::string>& extra_args) {
  StopReplica(site);
  const std::string ready_file = dir_.File(site + ".ready");
  std::filesystem::remove(ready_file);
  std::vector<std::string> argv = {Executable("ferry-replica"),
                                   "--site",
                                   site,
                                   "--master",
                                   stream_endpoint_,
                                   "--db",
                                   db(site),
                                   "--control-endpoint",
                                   "tcp://127.0.0.1:*",
                                   "--ready-file",
                                   ready_file,
                                   "--worker-log",
                                   dir_.File(site + ".workers.log")};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto replica = ChildProcess::Start(argv, log(site));
  if (!replica.ok()) return replica.status();
  replicas_.emplace(site, std::move(replica).value());
  auto ready = ReadReadyFile(ready_file, std::chrono::seconds(10));
  if (!ready.count("control")) {
    return Status::Unavailable(site + " did not start; see " + log(site));
  }
  control_endpoints_[site] = ready["control"];
  worker_endpoints_[site] = ready["worker"];
  return Status::Ok();
}

void Deployment::StopReplica(const std::string& site) { replicas_.erase(site); }

StatusOr<wire::Envelope> Deployment::Control(const std::string& site, wire::Envelope request) {
  NodeClient client(context_, control_endpoints_.at(site), 5000);
  return client.Call(std::move(request));
}

StatusOr<wire::ReplicaStatus> Deployment::ReplicaStatus(const std::string& site) {
  NodeClient client(context_, control_endpoints_.at(site), 2000);
  auto status = client.GetStatus();
  if (!status.ok()) return status.status();
  return status->replica();
}

StatusOr<wire::MasterStatus> Deployment::MasterStatus() {
  NodeClient client(context_, submit_endpoint_, 2000);
  auto status = client.GetStatus();
  if (!status.ok()) return status.status();
  return status->master();
}

bool Deployment::WaitUntilApplied(std::chrono::milliseconds timeout) {
  return WaitFor(
      [this] {
        auto master = MasterStatus();
        if (!master.ok()) return false;
        for (const auto& stream : master->streams()) {
          if (!replicas_.count(stream.site())) continue;
          auto replica = ReplicaStatus(stream.site());
          if (!replica.ok() || replica->last_applied_sequence() != stream.latest_sequence()) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

StatusOr<wire::SubmitReply> Deployment::Submit(const wire::SubmitRequest& request) {
  NodeClient client(context_, submit_endpoint_);
  return client.Submit(request);
}

Status Deployment::SubmitWorkload(OrdersWorkload& workload, uint64_t from, uint64_t to,
                                  bool setup) {
  NodeClient client(context_, submit_endpoint_);
  if (setup) {
    for (const auto& request : workload.SetUp()) {
      FERRY_RETURN_IF_ERROR(client.Submit(request).status());
    }
  }
  for (uint64_t i = from; i <= to; ++i) {
    FERRY_RETURN_IF_ERROR(client.Submit(workload.Transaction(i)).status());
  }
  return Status::Ok();
}

size_t ExpectRowsEqualMaster(const Catalog& catalog, const std::string& master_db,
                             const std::string& replica_db, const std::string& site) {
  auto comparisons = CompareSiteRows(catalog, master_db, replica_db, site);
  EXPECT_TRUE(comparisons.ok()) << comparisons.status().ToString();
  if (!comparisons.ok()) return 0;
  size_t rows = 0;
  for (const auto& c : *comparisons) {
    EXPECT_TRUE(c.equal()) << site << " " << c.lu << ": " << c.first_difference;
    rows += c.replica_rows;
  }
  return rows;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace ferry::testing
