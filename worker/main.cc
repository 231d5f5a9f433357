// ferry-worker: parses options and runs the Worker. Normally started by ferry-replica.
#include <boost/program_options.hpp>
#include <iostream>

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
  try {
    po::store(po::parse_command_line(argc, argv, described), vm);
    if (vm.count("help")) {
      std::cout << described << "\n";
      return 0;
    }
    po::notify(vm);
    if (vm.count("apply-delay")) {
      for (const auto& text : vm["apply-delay"].as<std::vector<std::string>>()) {
        ferry::Status parsed = ferry::ParseApplyDelay(text, &options);
        if (!parsed.ok()) throw std::invalid_argument(parsed.message());
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "ferry-worker: " << e.what() << "\n(see ferry-worker --help)\n";
    return 2;
  }
  ferry::SetLogProgram("ferry-worker[" + options.queue + "]");
  const auto& stop = ferry::StopFlagOnSignals();
  zmq::context_t context;
  auto worker = ferry::Worker::Create(context, options, ferry::SystemClock::Default());
  if (!worker.ok()) {
    ferry::LogError(worker.status().message());
    return 1;
  }
  ferry::Status run = (*worker)->Run(stop);
  if (!run.ok()) {
    ferry::LogError(run.message());
    return 1;
  }
  return 0;
}
