#include "bench/orders_bench.h"

#include <google/protobuf/text_format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/local_deployment.h"
#include "common/catalog.h"
#include "common/clock.h"
#include "common/cpus.h"
#include "common/node_client.h"
#include "common/site_rows.h"
#include "common/sqlite.h"
#include "common/workload.h"

namespace ferry {
namespace {

constexpr char kSite[] = "BENCH";
constexpr int kMemoryTargetMb = 50;  // the target for each Ferry process
using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The deployed catalog with one replica site, BENCH, that gets every row of every company.
StatusOr<std::string> WriteBenchConfiguration(const std::string& deployed, const std::string& dir) {
  auto catalog = Catalog::Load(deployed);
  if (!catalog.ok()) return catalog.status();
  config::MasterConfiguration config = (*catalog)->proto();
  config.clear_replicas();
  config::ReplicaSite* site = config.add_replicas();
  site->set_name(kSite);
  for (const char* company : {"C1", "C2"}) site->add_companies(company);
  for (int s = 0; s < OrdersWorkload::kSites; ++s) site->add_sites(OrdersWorkload::SiteName(s));
  for (const auto& lu : config.lus()) site->add_lus(lu.name());
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  const std::string path = dir + "/bench_configuration.txtpb";
  std::ofstream out(path);
  out << text;
  if (!out) return Status::IoError("cannot write " + path);
  return path;
}

Percentiles Summarize(std::vector<double> samples_ms) {
  Percentiles p;
  p.samples = samples_ms.size();
  if (samples_ms.empty()) return p;
  std::sort(samples_ms.begin(), samples_ms.end());
  auto at = [&](double q) {
    return samples_ms[std::min(samples_ms.size() - 1, static_cast<size_t>(q * samples_ms.size()))];
  };
  p.p50_ms = at(0.50);
  p.p99_ms = at(0.99);
  p.max_ms = samples_ms.back();
  return p;
}

// One run: a fresh folder, a master and (when asked) the BENCH replica.
class Run {
 public:
  Run(const BenchOptions& options, const std::string& name, const std::string& config,
      BenchResult* result)
      : name_(name),
        result_(result),
        dir_(options.work_dir + "/" + name),
        deployment_((std::filesystem::remove_all(dir_), std::filesystem::create_directories(dir_),
                     options.bin_dir),
                    dir_, config) {
    deployment_.PlaceOnCpus(result->master_cpus, result->replica_cpus);
  }

  LocalDeployment& deployment() { return deployment_; }

  // Submits the set-up transactions; with `wait`, until the replica applied them.
  Status SetUp(bool wait) {
    FERRY_RETURN_IF_ERROR(deployment_.SubmitWorkload(workload_, 1, 0, /*setup=*/true));
    if (wait && !deployment_.WaitUntilApplied(std::chrono::minutes(5))) {
      return Status::Unavailable(name_ + ": the replica did not apply the set-up");
    }
    return Status::Ok();
  }

  // Transactions 1..T of the workload, serialized, in order (prices follow their updates).
  std::vector<std::string> Transactions(uint64_t count) {
    std::vector<std::string> out;
    out.reserve(count);
    for (uint64_t i = 1; i <= count; ++i)
      out.push_back(workload_.Transaction(i).SerializeAsString());
    return out;
  }

  // Submits `transactions` from `clients` concurrent clients, client c taking every c-th.
  // A transaction that finds a row another client has not committed yet is tried again.
  Status SubmitAll(const std::vector<std::string>& transactions, int clients) {
    std::atomic<bool> failed{false};
    std::string failure;
    std::mutex failure_mutex;
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        NodeClient client(deployment_.context(), deployment_.submit_endpoint());
        wire::SubmitRequest request;
        for (size_t i = c; i < transactions.size() && !failed; i += clients) {
          request.ParseFromString(transactions[i]);
          for (int attempt = 0;; ++attempt) {
            auto reply = client.Submit(request);
            if (reply.ok()) break;
            if (reply.status().code() == Status::Code::kNotFound && clients > 1 && attempt < 2000) {
              std::this_thread::sleep_for(std::chrono::microseconds(200));
              continue;
            }
            std::lock_guard<std::mutex> lock(failure_mutex);
            failure = "transaction " + std::to_string(i + 1) + ": " + reply.status().ToString();
            failed = true;
            return;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    if (failed) return Status::Internal(name_ + ": " + failure);
    return Status::Ok();
  }

  Status WaitApplied() {
    if (!deployment_.WaitUntilApplied(std::chrono::minutes(30))) {
      return Status::Unavailable(name_ + ": the replica did not catch up in 30 minutes");
    }
    return Status::Ok();
  }

  // Row-by-row check of `site` and memory sample; records a run that does not converge.
  void Finish(const Catalog& catalog, const std::string& site = kSite) {
    RecordPeakMemory(name_, deployment_.PeakMemoryMb(), result_);
    for (const auto& [process, cpus] : deployment_.CpusAllowed()) {
      result_->cpus_seen[process] = cpus;
    }
    result_->cpus_seen["ferry-bench"] = FormatCpuList(AllowedCpus());
    auto comparisons =
        CompareSiteRows(catalog, deployment_.master_db(), deployment_.db(site), site);
    if (!comparisons.ok()) {
      result_->converged = false;
      result_->notes.push_back(name_ + ": " + comparisons.status().message());
      return;
    }
    for (const auto& c : *comparisons) {
      if (!c.equal()) {
        result_->converged = false;
        result_->notes.push_back(name_ + ": " + c.lu + " differs: " + c.first_difference);
      }
    }
  }

 private:
  std::string name_;
  BenchResult* result_;
  std::string dir_;
  LocalDeployment deployment_;
  OrdersWorkload workload_;
};

// CPU seconds used so far by each kind of process of the deployment, and by this one (the
// clients, and the wait for the replica) as "ferry-bench".
std::map<std::string, double> CpuSecondsByProcess(LocalDeployment& deployment) {
  std::map<std::string, double> seconds = deployment.CpuSeconds();
  rusage self;
  if (getrusage(RUSAGE_SELF, &self) == 0) {
    seconds["ferry-bench"] = self.ru_utime.tv_sec + self.ru_stime.tv_sec +
                             (self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  }
  return seconds;
}

}  // namespace

std::map<std::string, double> CpuMicrosPerTransaction(const std::map<std::string, double>& before,
                                                      const std::map<std::string, double>& after,
                                                      uint64_t transactions) {
  std::map<std::string, double> per_transaction;
  if (transactions == 0) return per_transaction;
  for (const auto& [process, seconds] : after) {
    auto was = before.find(process);
    const double used = seconds - (was == before.end() ? 0.0 : was->second);
    if (used >= 0) per_transaction[process] = used * 1e6 / static_cast<double>(transactions);
  }
  return per_transaction;
}

namespace {

// The timed part from `clients` clients until the replica holds the same rows.
Status TimedSubmit(Run& run, const BenchOptions& options, const std::string& name, int clients,
                   BenchResult* result) {
  FERRY_RETURN_IF_ERROR(run.SetUp(/*wait=*/true));
  const auto transactions = run.Transactions(options.transactions);
  auto master_before = run.deployment().MasterStatus();
  if (!master_before.ok()) return master_before.status();
  const auto cpu_before = CpuSecondsByProcess(run.deployment());
  const auto start = SteadyClock::now();
  FERRY_RETURN_IF_ERROR(run.SubmitAll(transactions, clients));
  FERRY_RETURN_IF_ERROR(run.WaitApplied());
  result->throughput[name] = options.transactions / Seconds(SteadyClock::now() - start);
  auto master_after = run.deployment().MasterStatus();
  if (!master_after.ok()) return master_after.status();
  result->master_poll_us_per_tx[name] =
      static_cast<double>(master_after->sync_poll_cpu_us() - master_before->sync_poll_cpu_us()) /
      options.transactions;
  result->cpu_us_per_tx[name] = CpuMicrosPerTransaction(
      cpu_before, CpuSecondsByProcess(run.deployment()), options.transactions);
  return Status::Ok();
}

// A steady offered rate, open loop, from one client; the commit times of `site`'s jobs.
Status Latency(Run& run, const BenchOptions& options, const std::string& site,
               BenchResult* result) {
  LocalDeployment& d = run.deployment();
  FERRY_RETURN_IF_ERROR(run.SetUp(/*wait=*/true));
  const uint64_t count = static_cast<uint64_t>(options.latency_rate) * options.latency_seconds;
  const auto transactions = run.Transactions(count);
  std::map<uint64_t, int64_t> submitted_at_us;  // by the site's sequence
  NodeClient client(d.context(), d.submit_endpoint());
  const auto start = SteadyClock::now();
  const auto interval = std::chrono::nanoseconds(1000000000LL / options.latency_rate);
  wire::SubmitRequest request;
  for (uint64_t k = 0; k < count; ++k) {
    std::this_thread::sleep_until(start + k * interval);  // open loop: late ones go at once
    request.ParseFromString(transactions[k]);
    const int64_t sent_us = SystemClock::Default()->NowMicros();
    auto reply = client.Submit(request);
    if (!reply.ok())
      return reply.status().Annotate("latency run, transaction " + std::to_string(k + 1));
    for (const auto& p : reply->published()) {
      if (p.site() == site) submitted_at_us[p.sequence()] = sent_us;
    }
  }
  FERRY_RETURN_IF_ERROR(run.WaitApplied());
  // Both commit times are stamped on this machine's clock: the master's in the message, the
  // replica's by the worker inside its transaction, just before its COMMIT.
  auto db = sqlite::Db::Open(d.db(site), {.create = false});
  if (!db.ok()) return db.status();
  auto rows = db->Prepare(
      "SELECT j.sequence, i.commit_time_us, j.finished_at_us FROM ferry_jobs j "
      "JOIN ferry_inbox i USING (sequence) WHERE j.sequence >= ? AND j.state = 'Ready'");
  if (!rows.ok()) return rows.status();
  rows->Bind(1, static_cast<int64_t>(submitted_at_us.empty() ? 0 : submitted_at_us.begin()->first));
  std::vector<double> commit_ms, submit_ms;
  while (true) {
    auto step = rows->Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) break;
    auto it = submitted_at_us.find(rows->ColumnInt(0));
    if (it == submitted_at_us.end()) continue;
    commit_ms.push_back((rows->ColumnInt(2) - rows->ColumnInt(1)) / 1000.0);
    submit_ms.push_back((rows->ColumnInt(2) - it->second) / 1000.0);
  }
  result->commit_to_commit = Summarize(std::move(commit_ms));
  result->submit_to_commit = Summarize(std::move(submit_ms));
  return Status::Ok();
}

// The interrupts (IRQ numbers) of the disk that holds `path`, as sysfs lists them for its
// device or the nearest parent that has any (a PCI device's msi_irqs, or an irq file); none if
// sysfs does not say.
std::vector<int> DiskInterrupts(const std::string& path) {
  std::vector<int> irqs;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return irqs;
  std::error_code error;
  std::filesystem::path device = std::filesystem::canonical(
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)),
      error);
  if (error) return irqs;
  for (; device.has_relative_path(); device = device.parent_path()) {
    std::error_code absent;
    if (std::filesystem::is_directory(device / "msi_irqs", absent)) {
      for (const auto& entry : std::filesystem::directory_iterator(device / "msi_irqs", absent)) {
        irqs.push_back(std::atoi(entry.path().filename().c_str()));
      }
      return irqs;
    }
    std::ifstream irq_file(device / "irq");
    int irq = 0;
    if (irq_file >> irq && irq > 0) return {irq};
  }
  return irqs;
}

// Placement "split" (BenchOptions::placement): sets result->master_cpus and replica_cpus and
// restricts this process, the clients, to the master's. Before any thread starts: threads
// inherit it. With fewer than two CPUs it notes why every process runs on any.
Status PlaceSides(const BenchOptions& options, BenchResult* result) {
  const std::vector<int> cpus = AllowedCpus();
  if (cpus.size() < 2) {
    result->notes.push_back("placement split needs two CPUs, and this process may run on " +
                            FormatCpuList(cpus) + " only: every process ran on any CPU");
    return Status::Ok();
  }
  const auto half = cpus.begin() + static_cast<std::ptrdiff_t>(cpus.size() / 2);
  std::vector<int> master_side(cpus.begin(), half), replica_side(half, cpus.end());
  // The master's commit log fsyncs are on its clients' path: its side takes the half with the
  // CPU that handles the disk's interrupts, where the fsyncs' completions wake its fsync thread
  // without a second CPU's help (docs/benchmarks.md, "Placement").
  std::ifstream interrupts_file("/proc/interrupts");
  const std::string interrupts((std::istreambuf_iterator<char>(interrupts_file)),
                               std::istreambuf_iterator<char>());
  result->disk_interrupt_cpu = BusiestCpu(interrupts, DiskInterrupts(options.work_dir), cpus);
  if (result->disk_interrupt_cpu &&
      std::count(replica_side.begin(), replica_side.end(), *result->disk_interrupt_cpu)) {
    std::swap(master_side, replica_side);
  }
  const std::string master_cpus = FormatCpuList(master_side);
  FERRY_RETURN_IF_ERROR(RunOnlyOnCpus(master_cpus));
  result->master_cpus = master_cpus;
  result->replica_cpus = FormatCpuList(replica_side);
  return Status::Ok();
}

// One run against a deployment that runs already.
StatusOr<BenchResult> RunAttached(const BenchOptions& options) {
  const BenchOptions::Attached& target = *options.attached;
  if (options.runs.size() != 1 || options.runs.front() == "catch-up") {
    return Status::InvalidArgument(
        "against a running deployment ferry-bench makes one run, e2e-1, e2e-n or latency: the "
        "workload's keys are fixed, so every run needs empty databases, and catch-up needs a "
        "replica that ferry-bench starts and stops itself");
  }
  auto catalog = Catalog::Load(options.master_config);
  if (!catalog.ok()) return catalog.status();
  if (!(*catalog)->FindReplica(target.site)) {
    return Status::NotFound("site '" + target.site + "' is not a replica site of " +
                            options.master_config);
  }
  BenchResult result;
  const std::string name = options.runs.front();
  Run run(options, name, options.master_config, &result);
  run.deployment().Attach(target.master_endpoint, target.master_db, target.site,
                          target.replica_endpoint, target.replica_db);
  auto master = run.deployment().MasterStatus();
  if (!master.ok()) return master.status().Annotate("master at " + target.master_endpoint);
  if (master->last_transaction_id() != 0) {
    return Status::InvalidArgument(
        "the master at " + target.master_endpoint + " holds " +
        std::to_string(master->last_transaction_id()) +
        " transactions already: the workload's keys are fixed, so it needs empty databases");
  }
  auto replica = run.deployment().ReplicaStatus(target.site);
  if (!replica.ok()) return replica.status().Annotate("replica at " + target.replica_endpoint);
  if (name == "latency") {
    FERRY_RETURN_IF_ERROR(Latency(run, options, target.site, &result));
  } else {
    FERRY_RETURN_IF_ERROR(
        TimedSubmit(run, options, name, name == "e2e-1" ? 1 : options.clients, &result));
  }
  run.Finish(**catalog, target.site);
  return result;
}

}  // namespace

std::optional<int> BusiestCpu(const std::string& proc_interrupts, const std::vector<int>& irqs,
                              const std::vector<int>& cpus) {
  std::istringstream lines(proc_interrupts);
  std::string line;
  std::vector<int> columns;  // the CPU of each count column, from the header "CPU0 CPU1 ..."
  if (std::getline(lines, line)) {
    std::istringstream header(line);
    std::string name;
    while (header >> name) {
      if (name.rfind("CPU", 0) == 0) columns.push_back(std::atoi(name.c_str() + 3));
    }
  }
  std::map<int, uint64_t> handled;  // CPU -> interrupts of `irqs`
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string label;
    if (!(fields >> label) || label.back() != ':') continue;
    const int irq = std::atoi(label.c_str());
    if (std::find(irqs.begin(), irqs.end(), irq) == irqs.end()) continue;
    for (int cpu : columns) {
      uint64_t count = 0;
      if (!(fields >> count)) break;
      handled[cpu] += count;
    }
  }
  std::optional<int> busiest;
  for (int cpu : cpus) {
    if (handled[cpu] > 0 && (!busiest || handled[cpu] > handled[*busiest])) busiest = cpu;
  }
  return busiest;
}

void RecordPeakMemory(const std::string& run, const std::map<std::string, double>& peaks_mb,
                      BenchResult* result) {
  for (const auto& [process, mb] : peaks_mb) {
    // Per kind of process: the site and queue do not matter for the table.
    double& peak = result->peak_memory_mb[process.substr(0, process.find(' '))];
    peak = std::max(peak, mb);
    if (mb > kMemoryTargetMb) {
      char note[160];
      std::snprintf(note, sizeof(note), ": %s peaked at %.1f MB (VmHWM), over the %d MB target",
                    process.c_str(), mb, kMemoryTargetMb);
      result->notes.push_back(run + note);
    }
  }
}

StatusOr<BenchResult> OrdersBench::Run() {
  std::filesystem::create_directories(options_.work_dir);
  if (options_.attached) return RunAttached(options_);
  auto config = WriteBenchConfiguration(options_.master_config, options_.work_dir);
  if (!config.ok()) return config.status();
  auto catalog = Catalog::Load(*config);
  if (!catalog.ok()) return catalog.status();
  BenchResult result;
  if (options_.placement == "split") FERRY_RETURN_IF_ERROR(PlaceSides(options_, &result));
  auto wanted = [&](const std::string& run) {
    return std::find(options_.runs.begin(), options_.runs.end(), run) != options_.runs.end();
  };

  for (const auto& [name, clients] :
       {std::pair<std::string, int>{"e2e-1", 1}, {"e2e-n", options_.clients}}) {
    if (!wanted(name)) continue;
    ferry::Run run(options_, name, *config, &result);
    FERRY_RETURN_IF_ERROR(run.deployment().StartMaster());
    FERRY_RETURN_IF_ERROR(run.deployment().StartReplica(kSite));
    FERRY_RETURN_IF_ERROR(TimedSubmit(run, options_, name, clients, &result));
    run.Finish(**catalog);
  }

  if (wanted("catch-up")) {
    ferry::Run run(options_, "catch-up", *config, &result);
    FERRY_RETURN_IF_ERROR(run.deployment().StartMaster());
    FERRY_RETURN_IF_ERROR(run.SetUp(/*wait=*/false));
    const auto transactions = run.Transactions(options_.transactions);
    const auto load_start = SteadyClock::now();
    FERRY_RETURN_IF_ERROR(run.SubmitAll(transactions, options_.clients));
    // The master alone: what the end-to-end runs would be with a replica that cost nothing.
    result.throughput["master-alone"] =
        options_.transactions / Seconds(SteadyClock::now() - load_start);
    // The replica starts with every message still to come: the set-up and all T.
    const auto start = SteadyClock::now();
    FERRY_RETURN_IF_ERROR(run.deployment().StartReplica(kSite));
    FERRY_RETURN_IF_ERROR(run.WaitApplied());
    result.throughput["catch-up"] = options_.transactions / Seconds(SteadyClock::now() - start);
    run.Finish(**catalog);
  }

  if (wanted("latency")) {
    ferry::Run run(options_, "latency", *config, &result);
    FERRY_RETURN_IF_ERROR(run.deployment().StartMaster());
    FERRY_RETURN_IF_ERROR(run.deployment().StartReplica(kSite));
    FERRY_RETURN_IF_ERROR(Latency(run, options_, kSite, &result));
    run.Finish(**catalog);
  }
  return result;
}

namespace {

size_t CpuCount(const std::string& list) {
  auto cpus = ParseCpuList(list);
  return cpus.ok() ? cpus->size() : 0;
}

// "split: ..." or "shared: ...", and the CPUs /proc said each kind of process may run on.
std::string Placement(const BenchResult& result) {
  std::string text = result.master_cpus.empty()
                         ? "shared: every process on any CPU"
                         : "split: master and clients on CPUs " + result.master_cpus +
                               ", the replica site on CPUs " + result.replica_cpus;
  if (!result.master_cpus.empty() && result.disk_interrupt_cpu) {
    text +=
        "; CPU " + std::to_string(*result.disk_interrupt_cpu) + " handles the disk's interrupts";
  }
  std::string seen;
  for (const auto& [process, cpus] : result.cpus_seen) {
    seen += (seen.empty() ? "" : ", ") + process.substr(process.find('-') + 1) + " " + cpus;
  }
  return seen.empty() ? text : text + " (seen: " + seen + ")";
}

}  // namespace

std::string FormatTable(const BenchOptions& options, const BenchResult& result) {
  std::ostringstream out;
  char line[200];
  out << "ferry-bench: the orders workload (shared/WORKLOAD.md), T = " << options.transactions;
  if (options.attached) {
    out << ", the deployment at " << options.attached->master_endpoint << ", site "
        << options.attached->site;
  } else {
    out << ", master + 1 replica site on 127.0.0.1, SQLite";
  }
  out << "; every master commit fsynced before its reply, replica acknowledgements only after "
         "an fsync (see docs/benchmarks.md); "
      << std::thread::hardware_concurrency() << " cores\n";
  auto row = [&](const char* what, const std::string& value) {
    std::snprintf(line, sizeof(line), "  %-46s %s\n", what, value.c_str());
    out << line;
  };
  auto rate = [&](const std::string& run) {
    auto it = result.throughput.find(run);
    if (it == result.throughput.end()) return std::string("not run");
    std::snprintf(line, sizeof(line), "%.0f tx/s", it->second);
    return std::string(line);
  };
  auto latency = [&](const Percentiles& p) {
    if (!p.samples) return std::string("not run");
    std::snprintf(line, sizeof(line), "p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu samples)",
                  p.p50_ms, p.p99_ms, p.max_ms, p.samples);
    return std::string(line);
  };
  if (!options.attached) row("placement", Placement(result));
  const std::string clients =
      std::to_string(options.clients) + (options.clients == 1 ? " client" : " clients");
  row("end-to-end, 1 client", rate("e2e-1"));
  // With --clients 1 the e2e-n run has one client too: its row says which run it is.
  row(("end-to-end, " + clients + (options.clients == 1 ? " (the e2e-n run)" : "")).c_str(),
      rate("e2e-n"));
  row("catch-up (replica started after the load)", rate("catch-up"));
  row(("the master alone (that load, " + clients + ")").c_str(), rate("master-alone"));
  const std::string at = "at " + std::to_string(options.latency_rate) + " tx/s for " +
                         std::to_string(options.latency_seconds) + " s: ";
  row((at + "master commit -> replica commit").c_str(), latency(result.commit_to_commit));
  row((at + "submit -> replica commit").c_str(), latency(result.submit_to_commit));
  for (const auto& [process, mb] : result.peak_memory_mb) {
    std::snprintf(line, sizeof(line), "%.1f MB", mb);
    row(("peak memory, " + process).c_str(), line);
  }
  // What the cores allow: with the CPU every process needs per transaction, no run on this
  // machine can go faster. The master's polling is left out: it yields to any other thread.
  // Split, each side has its own CPUs: the master's side (the master and the clients) and the
  // replica's side (the replica and its workers) each bound the rate.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const bool split = !result.master_cpus.empty();
  for (const auto& [run, processes] : result.cpu_us_per_tx) {
    const auto poll = result.master_poll_us_per_tx.find(run);
    const double polled = poll == result.master_poll_us_per_tx.end() ? 0.0 : poll->second;
    double all = 0, replica_side = 0;
    std::string each;
    for (const auto& [process, us] : processes) {
      all += us;
      if (process == "ferry-replica" || process == "ferry-worker") replica_side += us;
      std::snprintf(line, sizeof(line), "%s%s %.0f", each.empty() ? "" : ", ",
                    process.substr(process.find('-') + 1).c_str(), us);
      each += line;
      if (process == "ferry-master" && polled > 0) {
        std::snprintf(line, sizeof(line), " (%.0f polling)", polled);
        each += line;
      }
    }
    row(("CPU per transaction, " + run).c_str(), each + " us");
    const double needed = all - polled;
    if (split) {
      const double master_side = needed - replica_side;
      const size_t master_cores = CpuCount(result.master_cpus);
      const size_t replica_cores = CpuCount(result.replica_cpus);
      const double bound = std::min(master_side > 0 ? master_cores * 1e6 / master_side : 0.0,
                                    replica_side > 0 ? replica_cores * 1e6 / replica_side : 0.0);
      std::snprintf(line, sizeof(line),
                    "at most %.0f tx/s (a transaction needed %.0f us of CPUs %s, %.0f of CPUs %s)",
                    bound, master_side, result.master_cpus.c_str(), replica_side,
                    result.replica_cpus.c_str());
      row(("  what each side's CPUs allow, " + run).c_str(), line);
      continue;
    }
    std::snprintf(line, sizeof(line), "at most %.0f tx/s (%.0f us needed a transaction)",
                  needed > 0 ? cores * 1e6 / needed : 0.0, needed);
    row(("  what " + std::to_string(cores) + " cores allow, " + run).c_str(), line);
  }
  row("replica rows equal the master's", result.converged ? "yes, in every run" : "NO");
  for (const auto& note : result.notes) out << "  ! " << note << "\n";
  return out.str();
}

std::string FormatJson(const BenchOptions& options, const BenchResult& result) {
  std::ostringstream out;
  out << "{\"transactions\":" << options.transactions << ",\"clients\":" << options.clients
      << ",\"throughput_tx_per_s\":{";
  bool first = true;
  for (const auto& [run, value] : result.throughput) {
    out << (first ? "" : ",") << "\"" << run << "\":" << value;
    first = false;
  }
  auto percentiles = [&](const Percentiles& p) {
    std::ostringstream o;
    o << "{\"p50_ms\":" << p.p50_ms << ",\"p99_ms\":" << p.p99_ms << ",\"max_ms\":" << p.max_ms
      << ",\"samples\":" << p.samples << "}";
    return o.str();
  };
  out << "},\"latency\":{\"rate_tx_per_s\":" << options.latency_rate
      << ",\"seconds\":" << options.latency_seconds
      << ",\"master_commit_to_replica_commit\":" << percentiles(result.commit_to_commit)
      << ",\"submit_to_replica_commit\":" << percentiles(result.submit_to_commit)
      << "},\"peak_memory_mb\":{";
  first = true;
  for (const auto& [process, mb] : result.peak_memory_mb) {
    out << (first ? "" : ",") << "\"" << process << "\":" << mb;
    first = false;
  }
  out << "},\"cpu_us_per_tx\":{";
  first = true;
  for (const auto& [run, processes] : result.cpu_us_per_tx) {
    out << (first ? "" : ",") << "\"" << run << "\":{";
    bool first_process = true;
    for (const auto& [process, us] : processes) {
      out << (first_process ? "" : ",") << "\"" << process << "\":" << us;
      first_process = false;
    }
    out << "}";
    first = false;
  }
  out << "},\"master_sync_poll_cpu_us_per_tx\":{";
  first = true;
  for (const auto& [run, us] : result.master_poll_us_per_tx) {
    out << (first ? "" : ",") << "\"" << run << "\":" << us;
    first = false;
  }
  out << "},\"placement\":{\"mode\":\"" << (result.master_cpus.empty() ? "shared" : "split")
      << "\",\"master_cpus\":\"" << result.master_cpus << "\",\"replica_cpus\":\""
      << result.replica_cpus << "\",\"disk_interrupt_cpu\":"
      << (result.disk_interrupt_cpu ? std::to_string(*result.disk_interrupt_cpu) : "null")
      << ",\"seen\":{";
  first = true;
  for (const auto& [process, cpus] : result.cpus_seen) {
    out << (first ? "" : ",") << "\"" << process << "\":\"" << cpus << "\"";
    first = false;
  }
  out << "}},\"converged\":" << (result.converged ? "true" : "false") << "}\n";
  return out.str();
}

}  // namespace ferry
