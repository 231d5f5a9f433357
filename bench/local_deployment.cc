#include "bench/local_deployment.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "common/node_client.h"
#include "common/node_main.h"

namespace ferry {
namespace {

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace

void LocalDeployment::Attach(const std::string& submit_endpoint, const std::string& master_db,
                             const std::string& site, const std::string& control_endpoint,
                             const std::string& replica_db) {
  submit_endpoint_ = submit_endpoint;
  attached_master_db_ = master_db;
  control_endpoints_[site] = control_endpoint;
  attached_dbs_[site] = replica_db;
}

Status LocalDeployment::StartMaster(const std::vector<std::string>& extra_args,
                                    const std::string& config) {
  master_.reset();
  const bool restart = !submit_endpoint_.empty();
  std::filesystem::remove(File("master.ready"));
  std::vector<std::string> argv = {Executable("ferry-master"),
                                   "--master-config",
                                   config.empty() ? master_config_ : config,
                                   "--db",
                                   master_db(),
                                   "--submit-endpoint",
                                   restart ? submit_endpoint_ : "tcp://127.0.0.1:*",
                                   "--stream-endpoint",
                                   restart ? stream_endpoint_ : "tcp://127.0.0.1:*",
                                   "--heartbeat-ms",
                                   "200",
                                   "--ready-file",
                                   File("master.ready")};
  if (!master_cpus_.empty()) argv.insert(argv.end(), {"--cpus", master_cpus_});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto master = ChildProcess::Start(argv, File("master.log"));
  if (!master.ok()) return master.status();
  master_.emplace(std::move(master).value());
  auto ready = ReadReadyFile(File("master.ready"), std::chrono::seconds(10));
  if (!ready.count("submit")) {
    return Status::Unavailable("the master did not start; see " + File("master.log"));
  }
  submit_endpoint_ = ready["submit"];
  stream_endpoint_ = ready["stream"];
  return Status::Ok();
}

void LocalDeployment::KillMaster() {
  if (master_) master_->Signal(SIGKILL);
  master_.reset();
}

void LocalDeployment::KillReplica(const std::string& site) {
  auto it = replicas_.find(site);
  if (it == replicas_.end()) return;
  it->second.Signal(SIGKILL);
  replicas_.erase(it);
}

Status LocalDeployment::StartReplica(const std::string& site,
                                     const std::vector<std::string>& extra_args) {
  StopReplica(site);
  const std::string ready_file = File(site + ".ready");
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
                                   File(site + ".workers.log")};
  if (!replica_cpus_.empty()) argv.insert(argv.end(), {"--cpus", replica_cpus_});
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

void LocalDeployment::StopReplica(const std::string& site) { replicas_.erase(site); }

StatusOr<wire::Envelope> LocalDeployment::Control(const std::string& site, wire::Envelope request) {
  NodeClient client(context_, control_endpoints_.at(site), 5000);
  return client.Call(std::move(request));
}

StatusOr<wire::ReplicaStatus> LocalDeployment::ReplicaStatus(const std::string& site) {
  NodeClient client(context_, control_endpoints_.at(site), 2000);
  auto status = client.GetStatus();
  if (!status.ok()) return status.status();
  return status->replica();
}

StatusOr<wire::MasterStatus> LocalDeployment::MasterStatus() {
  NodeClient client(context_, submit_endpoint_, 2000);
  auto status = client.GetStatus();
  if (!status.ok()) return status.status();
  return status->master();
}

bool LocalDeployment::WaitUntilApplied(std::chrono::milliseconds timeout) {
  return WaitUntil(
      [this] {
        auto master = MasterStatus();
        if (!master.ok()) return false;
        for (const auto& stream : master->streams()) {
          if (!replicas_.count(stream.site()) && !attached_dbs_.count(stream.site())) continue;
          auto replica = ReplicaStatus(stream.site());
          if (!replica.ok() || replica->last_applied_sequence() != stream.latest_sequence()) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

StatusOr<wire::SubmitReply> LocalDeployment::Submit(const wire::SubmitRequest& request) {
  NodeClient client(context_, submit_endpoint_);
  return client.Submit(request);
}

Status LocalDeployment::SubmitWorkload(OrdersWorkload& workload, uint64_t from, uint64_t to,
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

namespace {

// The value after `key` ("VmHWM:") in /proc/PID/status, if the process's name still contains
// `name`; nothing otherwise.
std::optional<std::string> StatusField(int pid, const std::string& name, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  bool same_process = false;
  while (std::getline(status, line)) {
    if (line.rfind("Name:", 0) == 0) same_process = line.find(name) != std::string::npos;
    if (line.rfind(key, 0) == 0 && same_process) {
      const size_t value = line.find_first_not_of(" \t", key.size());
      return value == std::string::npos ? "" : line.substr(value);
    }
  }
  return std::nullopt;
}

}  // namespace

double PeakResidentMb(int pid, const std::string& name) {
  auto kb = StatusField(pid, name, "VmHWM:");
  return kb && !kb->empty() ? std::stod(*kb) / 1024.0 : 0.0;
}

std::string CpusAllowed(int pid, const std::string& name) {
  return StatusField(pid, name, "Cpus_allowed_list:").value_or("");
}

std::optional<double> CpuSeconds(int pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // "pid (comm) state ..." where comm may hold spaces: the fields follow the last ')'.
  const size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  if (stat.substr(open + 1, close - open - 1).find(name.substr(0, 15)) == std::string::npos) {
    return std::nullopt;  // comm is the name cut to 15 characters
  }
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<LocalDeployment::Process> LocalDeployment::Processes() {
  std::vector<Process> processes;
  if (master_) {
    processes.push_back({"ferry-master", "ferry-master", master_->pid()});
  } else if (auto status = MasterStatus(); status.ok() && status->pid() > 0) {
    processes.push_back({"ferry-master", "ferry-master", status->pid()});  // attached
  }
  std::set<std::string> sites;
  for (const auto& [site, replica] : replicas_) sites.insert(site);
  for (const auto& [site, db] : attached_dbs_) sites.insert(site);
  for (const auto& site : sites) {
    auto status = ReplicaStatus(site);
    auto ours = replicas_.find(site);
    if (ours != replicas_.end()) {
      processes.push_back({"ferry-replica " + site, "ferry-replica", ours->second.pid()});
    } else if (status.ok() && status->pid() > 0) {
      processes.push_back({"ferry-replica " + site, "ferry-replica", status->pid()});
    }
    if (!status.ok()) continue;
    for (const auto& worker : status->workers()) {
      processes.push_back(
          {"ferry-worker " + site + " " + worker.queue(), "ferry-worker", worker.pid()});
    }
  }
  return processes;
}

std::map<std::string, double> LocalDeployment::PeakMemoryMb() {
  std::map<std::string, double> peaks;
  for (const Process& p : Processes()) {
    double& peak = peaks[p.label];  // a queue's workers: the most of them
    peak = std::max(peak, PeakResidentMb(p.pid, p.name));
  }
  // A process on another machine (attached) has no /proc entry here: no figure, not 0 MB.
  std::erase_if(peaks, [](const auto& peak) { return peak.second <= 0; });
  return peaks;
}

std::map<std::string, std::string> LocalDeployment::CpusAllowed() {
  std::map<std::string, std::set<std::string>> lists;
  for (const Process& p : Processes()) {
    const std::string cpus = ferry::CpusAllowed(p.pid, p.name);
    if (!cpus.empty()) lists[p.name].insert(cpus);
  }
  std::map<std::string, std::string> allowed;
  for (const auto& [name, distinct] : lists) {
    for (const auto& cpus : distinct) {
      allowed[name] += (allowed[name].empty() ? "" : " and ") + cpus;
    }
  }
  return allowed;
}

std::map<std::string, double> LocalDeployment::CpuSeconds() {
  std::map<std::string, double> seconds;
  for (const Process& p : Processes()) {
    if (auto used = ferry::CpuSeconds(p.pid, p.name)) seconds[p.name] += *used;
  }
  return seconds;
}

}  // namespace ferry
