// ferry-replica: parses options and runs the Replica node of one site.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "common/log.h"
#include "common/node_main.h"
#include "replica/replica.h"

namespace po = boost::program_options;

namespace {
// ferry-worker beside this executable: they are built and installed into one folder.
std::string WorkerBesideUs() {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? "ferry-worker" : (self.parent_path() / "ferry-worker").string();
}
}  // namespace

int main(int argc, char** argv) {
  ferry::ReplicaOptions options;
  options.worker_program = WorkerBesideUs();
  std::string ready_file;
  int retry_ms = static_cast<int>(options.retry_delay.count());
  int master_timeout_ms = static_cast<int>(options.master_timeout.count());
  po::options_description described(
      "ferry-replica: a replica site of a Ferry deployment.\n"
      "Options (also as key=value lines in --config)");
  described.add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>(), "INI file with any of the options below")(
      "site", po::value(&options.site)->required(),
      "this replica site's name, as in the master configuration")(
      "master", po::value(&options.master_endpoint)->required(), "the master's stream endpoint")(
      "db", po::value(&options.db_path)->default_value(options.db_path),
      "SQLite replica database file")(
      "control-endpoint",
      po::value(&options.control_endpoint)->default_value(options.control_endpoint),
      "ZeroMQ endpoint for status requests")(
      "worker-endpoint",
      po::value(&options.worker_endpoint)->default_value(options.worker_endpoint),
      "ZeroMQ endpoint the worker processes connect to")(
      "worker-program", po::value(&options.worker_program)->default_value(options.worker_program),
      "path of the ferry-worker executable")("worker-log", po::value(&options.worker_log),
                                             "append the workers' output to this file")(
      "retry-ms", po::value(&retry_ms)->default_value(retry_ms),
      "wait before a failed job is tried again, milliseconds")(
      "master-timeout-ms", po::value(&master_timeout_ms)->default_value(master_timeout_ms),
      "silence from the master after which the replica says hello again, milliseconds")(
      "ready-file", po::value(&ready_file),
      "once bound, write the endpoints here (control=..., worker=...)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, described), vm);
    if (vm.count("help")) {
      std::cout << described << "\n";
      return 0;
    }
    if (vm.count("config")) {
      po::store(po::parse_config_file<char>(vm["config"].as<std::string>().c_str(), described), vm);
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "ferry-replica: " << e.what() << "\n(see ferry-replica --help)\n";
    return 2;
  }
  if (retry_ms <= 0 || master_timeout_ms <= 0) {
    std::cerr << "ferry-replica: --retry-ms and --master-timeout-ms must be positive\n";
    return 2;
  }
  options.retry_delay = std::chrono::milliseconds(retry_ms);
  options.master_timeout = std::chrono::milliseconds(master_timeout_ms);
  ferry::SetLogProgram("ferry-replica[" + options.site + "]");

  const auto& stop = ferry::StopFlagOnSignals();
  zmq::context_t context;
  auto replica = ferry::Replica::Create(context, options, ferry::SystemClock::Default());
  if (!replica.ok()) {
    ferry::LogError(replica.status().message());
    return 1;
  }
  ferry::Status ready = ferry::WriteReadyFile(
      ready_file,
      {"control=" + (*replica)->control_endpoint(), "worker=" + (*replica)->worker_endpoint()});
  if (!ready.ok()) {
    ferry::LogError(ready.message());
    return 1;
  }
  ferry::Status run = (*replica)->Run(stop);
  if (!run.ok()) {
    ferry::LogError(run.message());
    return 1;
  }
  return 0;
}
