// ferry-worker: parses options and runs the Worker. Normally started by ferry-replica.
#include <boost/program_options.hpp>

#include "common/command_line.h"
#include "common/log.h"
#include "common/node_main.h"
#include "worker/worker.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  ferry::WorkerOptions options;
  po::options_description described(
      "ferry-worker: applies the jobs of one batch queue of a replica site.\n"
      "Started and restarted by ferry-replica; can also be started by hand.\nOptions");
  described.add_options()("help,h", "print this help and exit")(
      "replica", po::value(&options.replica_endpoint)->required(),
      "the replica's worker endpoint (tcp://127.0.0.1:PORT)")(
      "db", po::value(&options.db_path)->required(), "the replica's SQLite database file")(
      "queue", po::value(&options.queue)->default_value(options.queue), "the batch queue to serve")(
      "apply-delay", po::value<std::vector<std::string>>(),
      "LU=MS (repeatable; '*' for any LU): wait MS before applying a job that changes LU, "
      "outside its transaction. A slow apply, for demonstrating ordering modes; not for "
      "production");
  po::variables_map vm;
  ferry::CommandLine line;
  line.program = "ferry-worker";
  line.check = [&] {
    if (!vm.count("apply-delay")) return;
    for (const auto& text : vm["apply-delay"].as<std::vector<std::string>>()) {
      ferry::Status parsed = ferry::ParseApplyDelay(text, &options);
      if (!parsed.ok()) throw std::invalid_argument(parsed.message());
    }
  };
  if (auto exit_code = ferry::ParseCommandLine(line, argc, argv, described, &vm)) return *exit_code;
  ferry::SetLogProgram("ferry-worker[" + options.queue + "]");
  const auto& stop = ferry::StopFlagOnSignals();
  zmq::context_t context;
  auto worker = ferry::Worker::Create(context, options, ferry::SystemClock::Default());
  if (!worker.ok()) return ferry::ExitCode(worker.status());
  return ferry::ExitCode((*worker)->Run(stop));
}
