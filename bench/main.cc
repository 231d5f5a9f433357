// ferry-bench: parses options and runs the orders benchmark.
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "bench/orders_bench.h"
#include "common/command_line.h"
#include "common/log.h"
#include "common/node_main.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  ferry::BenchOptions options;
  options.bin_dir = std::filesystem::path(ferry::BesideThisExecutable("ferry-master"))
                        .parent_path()
                        .string();  // "" (the current folder's programs) if /proc does not say
  options.master_config = FERRY_SOURCE_DIR "/deploy/master_configuration.txtpb";
  options.work_dir = (std::filesystem::temp_directory_path() / "ferry-bench").string();
  std::string runs = "e2e-1,e2e-n,catch-up,latency";
  bool json = false;
  ferry::BenchOptions::Attached attached;
  po::options_description described(
      "ferry-bench: the orders workload of shared/WORKLOAD.md measured on a local deployment\n"
      "(ferry-master + one replica site, SQLite, 127.0.0.1), each run on fresh databases, or\n"
      "on a deployment that runs already (--master ...), one run.\n"
      "Options");
  described.add_options()("help,h", "print this help and exit")(
      "transactions,T", po::value(&options.transactions)->default_value(options.transactions),
      "timed transactions per run")(
      "clients", po::value(&options.clients)->default_value(options.clients),
      "concurrent clients of the e2e-n run (and of the catch-up run's load)")(
      "latency-rate", po::value(&options.latency_rate)->default_value(options.latency_rate),
      "transactions per second offered in the latency run")(
      "latency-seconds",
      po::value(&options.latency_seconds)->default_value(options.latency_seconds),
      "length of the latency run")("runs", po::value(&runs)->default_value(runs),
                                   "which runs, comma-separated")(
      "dir", po::value(&options.work_dir)->default_value(options.work_dir),
      "folder for the runs' databases and logs (emptied per run)")(
      "bin-dir", po::value(&options.bin_dir)->default_value(options.bin_dir),
      "folder of ferry-master, ferry-replica and ferry-worker")(
      "placement", po::value(&options.placement)->default_value(options.placement),
      "split: the master and the clients on one half of the CPUs (the half with the CPU that "
      "handles the interrupts of the disk holding --dir, if the machine says), the replica site "
      "and its workers on the other, like two sites on hosts of their own (needs two CPUs); "
      "shared: every process on any CPU. See docs/benchmarks.md, \"Placement\"")(
      "master-config", po::value(&options.master_config)->default_value(options.master_config),
      "master configuration whose LU catalog is used (with --master: that deployment's own)")(
      "json", po::bool_switch(&json), "print the figures as JSON")(
      "master", po::value(&attached.master_endpoint),
      "measure a deployment that runs already, with empty databases: its master's submit "
      "endpoint (then also --master-db, --site, --replica and --replica-db; one run)")(
      "master-db", po::value(&attached.master_db), "with --master: the master's database file")(
      "site", po::value(&attached.site), "with --master: the replica site measured")(
      "replica", po::value(&attached.replica_endpoint),
      "with --master: that site's control endpoint")("replica-db", po::value(&attached.replica_db),
                                                     "with --master: that site's database file");
  po::variables_map vm;
  ferry::CommandLine line;
  line.program = "ferry-bench";
  line.check = [&] {
    if (options.transactions == 0 || options.clients < 1 || options.latency_rate < 1 ||
        options.latency_seconds < 1) {
      throw po::error(
          "--transactions, --clients, --latency-rate and --latency-seconds must be positive");
    }
    options.runs.clear();
    for (size_t start = 0; start <= runs.size();) {
      size_t comma = runs.find(',', start);
      std::string run = runs.substr(start, comma - start);
      if (run != "e2e-1" && run != "e2e-n" && run != "catch-up" && run != "latency") {
        throw po::error("unknown run '" + run + "' (e2e-1, e2e-n, catch-up, latency)");
      }
      options.runs.push_back(run);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (options.placement != "split" && options.placement != "shared") {
      throw po::error("--placement is split or shared, not '" + options.placement + "'");
    }
    const bool any_attached = !attached.master_endpoint.empty() || !attached.master_db.empty() ||
                              !attached.site.empty() || !attached.replica_endpoint.empty() ||
                              !attached.replica_db.empty();
    if (!any_attached) return;
    if (attached.master_endpoint.empty() || attached.master_db.empty() || attached.site.empty() ||
        attached.replica_endpoint.empty() || attached.replica_db.empty()) {
      throw po::error(
          "a running deployment needs all of --master, --master-db, --site, --replica and "
          "--replica-db");
    }
    if (vm["runs"].defaulted() || options.runs.size() != 1 || options.runs.front() == "catch-up") {
      throw po::error(
          "against a running deployment, name one run with --runs: e2e-1, e2e-n or latency "
          "(each needs empty databases)");
    }
    if (!vm["placement"].defaulted()) {
      throw po::error(
          "--placement places the processes ferry-bench starts; a running deployment's are "
          "placed by their own --cpus");
    }
    options.attached = attached;
  };
  if (auto exit_code = ferry::ParseCommandLine(line, argc, argv, described, &vm)) return *exit_code;
  ferry::SetLogProgram("ferry-bench");
  auto result = ferry::OrdersBench(options).Run();
  if (!result.ok()) {
    ferry::LogError(result.status().message() + " (logs under " + options.work_dir + ")");
    return 1;
  }
  std::cout << (json ? ferry::FormatJson(options, *result) : ferry::FormatTable(options, *result));
  return result->converged ? 0 : 1;
}
