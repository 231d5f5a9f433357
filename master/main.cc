// ferry-master: parses options and runs the Master node.
#include <boost/program_options.hpp>

#include "common/command_line.h"
#include "common/log.h"
#include "common/node_main.h"
#include "master/master.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  ferry::SetLogProgram("ferry-master");
  ferry::MasterOptions options;
  std::string catalog_path, ini_path, ready_file, cpus;
  int heartbeat_ms = static_cast<int>(options.heartbeat_interval.count());
  po::options_description described(
      "ferry-master: the master site of a Ferry deployment.\n"
      "Options (also as key=value lines in --config)");
  described.add_options()("help,h", "print this help and exit")(
      "config", po::value(&ini_path), "INI file with any of the options below")(
      "master-config", po::value(&catalog_path)->required(),
      "master configuration (text-format ferry.config.MasterConfiguration): LUs and replica sites")(
      "db", po::value(&options.db_path)->default_value(options.db_path),
      "SQLite master database file")(
      "submit-endpoint",
      po::value(&options.submit_endpoint)->default_value(options.submit_endpoint),
      "ZeroMQ endpoint for submit and status requests")(
      "stream-endpoint",
      po::value(&options.stream_endpoint)->default_value(options.stream_endpoint),
      "ZeroMQ endpoint replica sites connect to")(
      "heartbeat-ms", po::value(&heartbeat_ms)->default_value(heartbeat_ms),
      "interval of heartbeats to replicas, milliseconds")(
      "stream-window", po::value(&options.stream_window)->default_value(options.stream_window),
      "messages sent to a replica ahead of its acknowledgements")(
      "outbox-quota", po::value(&options.outbox_quota)->default_value(options.outbox_quota),
      "unacknowledged messages kept per replica site; past it the oldest are dropped and the "
      "site gets a snapshot")("ready-file", po::value(&ready_file),
                              "once bound, write the endpoints here (submit=..., stream=...)")(
      "cpus", po::value(&cpus),
      "run only on these CPUs (a Linux CPU list: 0, 0-3, 0,2-3), every thread of the master; "
      "default: any it may use. See docs/benchmarks.md, \"Placement\"");
  ferry::CommandLine line;
  line.program = "ferry-master";
  line.config_option = "config";
  line.check = [&] {
    if (heartbeat_ms <= 0 || options.stream_window == 0 || options.outbox_quota == 0) {
      throw po::error("--heartbeat-ms, --stream-window and --outbox-quota must be positive");
    }
    options.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  };
  line.cpus = &cpus;
  po::variables_map vm;
  if (auto exit_code = ferry::ParseCommandLine(line, argc, argv, described, &vm)) return *exit_code;

  const auto& stop = ferry::StopFlagOnSignals();
  auto catalog = ferry::Catalog::Load(catalog_path);
  if (!catalog.ok()) return ferry::ExitCode(catalog.status());
  zmq::context_t context;
  auto master = ferry::Master::Create(context, options, *catalog, ferry::SystemClock::Default());
  if (!master.ok()) return ferry::ExitCode(master.status());
  ferry::Status ready = ferry::WriteReadyFile(
      ready_file,
      {"submit=" + (*master)->submit_endpoint(), "stream=" + (*master)->stream_endpoint()});
  if (!ready.ok()) return ferry::ExitCode(ready);
  return ferry::ExitCode((*master)->Run(stop));
}
