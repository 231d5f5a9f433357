// ferry-replica: parses options and runs the Replica node of one site.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>

#include "common/command_line.h"
#include "common/log.h"
#include "common/node_main.h"
#include "replica/replica.h"

namespace po = boost::program_options;

namespace {

constexpr char kQueueHelp[] = R"(
Batch queues: in the --config file, one section per queue,
  [queue.REPLICATION]
  processes = 2                  # 1..64 jobs of the queue at once
  ordering = dependency          # strict | dependency | none
  classes = Receive_Message      # message classes routed here
  retry-attempts = 5             # attempts before a failed job is held
  retry-delay-ms = 1000          # wait before the 2nd attempt ...
  retry-multiplier = 2           # ... each next wait this much longer ...
  retry-max-delay-ms = 60000     # ... up to this
or on the command line: --queue REPLICATION.processes=2. Defaults: REPLICATION (1 process,
strict) gets Receive_Message; DEFAULT (1 process, strict) gets Receive_Configuration and
every class without a route. 'ferryctl queue set-processes' overrides processes at run time.
)";

}  // namespace

int main(int argc, char** argv) {
  ferry::ReplicaOptions options;
  options.worker_program = ferry::BesideThisExecutable("ferry-worker");
  std::string ready_file, cpus;
  int master_timeout_ms = static_cast<int>(options.master_timeout.count());
  int64_t retention_s = options.job_retention.count();
  int sync_interval_ms = static_cast<int>(options.sync_interval.count());
  int db_lock_timeout_ms = static_cast<int>(options.db_lock_timeout.count());
  std::vector<std::string> queue_args;
  po::options_description described(
      "ferry-replica: a replica site of a Ferry deployment.\n"
      "Options (also as key = value lines in --config)");
  described.add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>(),
      "INI file with any of the options below and [queue.NAME] sections")(
      "site", po::value(&options.site)->required(),
      "this replica site's name, as in the master configuration")(
      "master", po::value(&options.master_endpoint)->required(), "the master's stream endpoint")(
      "db", po::value(&options.db_path)->default_value(options.db_path),
      "SQLite replica database file")(
      "control-endpoint",
      po::value(&options.control_endpoint)->default_value(options.control_endpoint),
      "ZeroMQ endpoint for status and operator commands (ferryctl)")(
      "worker-endpoint",
      po::value(&options.worker_endpoint)->default_value(options.worker_endpoint),
      "ZeroMQ endpoint the worker processes connect to")(
      "worker-program", po::value(&options.worker_program)->default_value(options.worker_program),
      "path of the ferry-worker executable")("worker-log", po::value(&options.worker_log),
                                             "append the workers' output to this file")(
      "worker-arg", po::value(&options.worker_args),
      "an extra argument for every ferry-worker started (repeatable)")(
      "queue", po::value(&queue_args), "NAME.KEY=VALUE: a queue setting (repeatable; see below)")(
      "job-retention-s", po::value(&retention_s)->default_value(retention_s),
      "keep finished jobs this many seconds, then prune them")(
      "master-timeout-ms", po::value(&master_timeout_ms)->default_value(master_timeout_ms),
      "silence from the master after which the replica says hello again, milliseconds")(
      "sync-interval-ms", po::value(&sync_interval_ms)->default_value(sync_interval_ms),
      "received messages are stored, made durable (one fsync) and acknowledged at most this "
      "many milliseconds after they arrive, or at once past 256 of them; 0: every batch at "
      "once. Their jobs do not wait for it")(
      "db-lock-timeout-ms", po::value(&db_lock_timeout_ms)->default_value(db_lock_timeout_ms),
      "how long a write of the replica waits for another connection's write lock on --db (a "
      "worker's commit, an operator's transaction) before it fails, milliseconds: a store of "
      "received messages is tried again at the next sync, an operator's command answers with "
      "the error")("ready-file", po::value(&ready_file),
                   "once bound, write the endpoints here (control=..., worker=...)")(
      "cpus", po::value(&cpus),
      "run only on these CPUs (a Linux CPU list: 0, 0-3, 0,2-3), the replica and the workers it "
      "starts; default: any it may use. See docs/benchmarks.md, \"Placement\"");
  std::vector<std::pair<std::string, std::string>> queue_settings;
  ferry::CommandLine line;
  line.program = "ferry-replica";
  line.help_tail = kQueueHelp;
  line.config_option = "config";
  line.other_setting = [&](const std::string& key, const std::string& value) {
    if (key.rfind("queue.", 0) != 0) return false;
    queue_settings.emplace_back(key, value);
    return true;
  };
  line.check = [&] {
    for (const auto& arg : queue_args) {
      size_t eq = arg.find('=');
      if (eq == std::string::npos) throw po::error("--queue '" + arg + "' is not NAME.KEY=VALUE");
      queue_settings.emplace_back("queue." + arg.substr(0, eq), arg.substr(eq + 1));
    }
    if (master_timeout_ms <= 0 || db_lock_timeout_ms <= 0 || retention_s < 0 ||
        sync_interval_ms < 0) {
      throw po::error(
          "--master-timeout-ms and --db-lock-timeout-ms must be positive, --job-retention-s and "
          "--sync-interval-ms not negative");
    }
    auto queues = ferry::QueueSet::FromSettings(queue_settings);
    if (!queues.ok()) throw po::error("queue configuration: " + queues.status().message());
    options.queues = std::move(queues).value();
    options.master_timeout = std::chrono::milliseconds(master_timeout_ms);
    options.job_retention = std::chrono::seconds(retention_s);
    options.sync_interval = std::chrono::milliseconds(sync_interval_ms);
    options.db_lock_timeout = std::chrono::milliseconds(db_lock_timeout_ms);
  };
  line.cpus = &cpus;
  po::variables_map vm;
  if (auto exit_code = ferry::ParseCommandLine(line, argc, argv, described, &vm)) return *exit_code;
  ferry::SetLogProgram("ferry-replica[" + options.site + "]");

  const auto& stop = ferry::StopFlagOnSignals();
  zmq::context_t context;
  auto replica = ferry::Replica::Create(context, options, ferry::SystemClock::Default());
  if (!replica.ok()) return ferry::ExitCode(replica.status());
  ferry::Status ready = ferry::WriteReadyFile(
      ready_file,
      {"control=" + (*replica)->control_endpoint(), "worker=" + (*replica)->worker_endpoint()});
  if (!ready.ok()) return ferry::ExitCode(ready);
  return ferry::ExitCode((*replica)->Run(stop));
}
