// ferryctl: the operator's tool. Parses the command line and runs one command.
#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>

#include "ferryctl/commands.h"

namespace po = boost::program_options;

namespace {

constexpr char kUsage[] = R"(usage: ferryctl COMMAND [options]

commands:
  submit    submit transactions (JSON lines of ferry.wire.SubmitRequest) to the master
  status    show a node's status (master: streams; replica: session, queues, workers)
  workload  print the reference workload (shared/WORKLOAD.md) as JSON lines for submit
  verify    compare a replica database with the master's rows routed to its site
  queue     set-processes QUEUE N | pause QUEUE | resume QUEUE   (a replica's batch queue)
  job       retry ID | skip ID | why ID                          (a replica's job)
  jobs      list a replica's jobs, newest first, with each failed attempt's error
  sessions  list a replica's worker processes

'ferryctl COMMAND --help' lists a command's options. Every command takes --json.
)";

// Parses `args` with `options`; returns 0 to go on, or an exit code (help shown, bad usage).
int Parse(const std::string& command, const std::vector<std::string>& args,
          po::options_description& options, po::variables_map& vm,
          const po::positional_options_description& positional = {}) {
  options.add_options()("help,h", "print this help and exit");
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: ferryctl " << command << " [options]\n" << options << "\n";
      return -1;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "ferryctl " << command << ": " << e.what() << "\n(see ferryctl " << command
              << " --help)\n";
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  po::variables_map vm;

  if (command == "submit") {
    ferry::ctl::SubmitOptions options;
    std::string file;
    po::options_description described("submit: one transaction per line, replies in order");
    described.add_options()("endpoint",
                            po::value(&options.endpoint)->default_value("tcp://127.0.0.1:7400"),
                            "the master's submit endpoint")(
        "file", po::value(&file), "read transactions from this file instead of standard input")(
        "timeout-ms", po::value(&options.timeout_ms)->default_value(options.timeout_ms),
        "how long to wait for each reply")("json", po::bool_switch(&options.json),
                                           "print each reply as a JSON line");
    if (int code = Parse(command, args, described, vm); code != 0) return code == -1 ? 0 : code;
    if (file.empty()) return ferry::ctl::Submit(options, std::cin, std::cout, std::cerr);
    std::ifstream in(file);
    if (!in) {
      std::cerr << "ferryctl submit: cannot read " << file << "\n";
      return 1;
    }
    return ferry::ctl::Submit(options, in, std::cout, std::cerr);
  }
  if (command == "status") {
    ferry::ctl::StatusOptions options;
    po::options_description described("status");
    described.add_options()("endpoint", po::value(&options.endpoint)->required(),
                            "a master's submit endpoint or a replica's control endpoint")(
        "timeout-ms", po::value(&options.timeout_ms)->default_value(options.timeout_ms),
        "how long to wait for the reply")("json", po::bool_switch(&options.json),
                                          "print the status as JSON");
    if (int code = Parse(command, args, described, vm); code != 0) return code == -1 ? 0 : code;
    return ferry::ctl::PrintStatus(options, std::cout, std::cerr);
  }
  if (command == "workload") {
    ferry::ctl::WorkloadOptions options;
    bool no_setup = false;
    po::options_description described("workload: the orders workload as JSON lines");
    described.add_options()("transactions", po::value(&options.transactions)->default_value(1000),
                            "how many timed transactions (1..N) to print")(
        "no-setup", po::bool_switch(&no_setup), "leave out the set-up transactions")(
        "json", po::bool_switch(), "accepted for symmetry: the output is always JSON lines");
    if (int code = Parse(command, args, described, vm); code != 0) return code == -1 ? 0 : code;
    options.setup = !no_setup;
    return ferry::ctl::PrintWorkload(options, std::cout);
  }
  if (command == "verify") {
    ferry::ctl::VerifyOptions options;
    po::options_description described("verify: row-by-row comparison of one site");
    described.add_options()("master-config", po::value(&options.master_config)->required(),
                            "the master configuration file")(
        "master-db", po::value(&options.master_db)->required(), "the master's SQLite database")(
        "replica-db", po::value(&options.replica_db)->required(), "the replica's SQLite database")(
        "site", po::value(&options.site)->required(), "the replica site")(
        "json", po::bool_switch(&options.json), "print the comparison as JSON");
    if (int code = Parse(command, args, described, vm); code != 0) return code == -1 ? 0 : code;
    return ferry::ctl::Verify(options, std::cout, std::cerr);
  }
  if (command == "queue" || command == "job" || command == "jobs" || command == "sessions") {
    ferry::ctl::ReplicaCommandOptions options;
    std::string action, queue, state;
    int processes = 0;
    uint64_t job_id = 0;
    uint32_t limit = 100;
    po::options_description described(command + " (a replica's control endpoint)");
    described.add_options()("endpoint",
                            po::value(&options.endpoint)->default_value("tcp://127.0.0.1:7410"),
                            "the replica's control endpoint")(
        "timeout-ms", po::value(&options.timeout_ms)->default_value(options.timeout_ms),
        "how long to wait for the reply")("json", po::bool_switch(&options.json),
                                          "print the reply as JSON");
    po::positional_options_description positional;
    if (command == "queue") {
      described.add_options()("action", po::value(&action)->required(),
                              "set-processes, pause or resume")(
          "queue", po::value(&queue)->required(), "the queue's name")(
          "processes", po::value(&processes), "with set-processes: the new process count");
      positional.add("action", 1).add("queue", 1).add("processes", 1);
    } else if (command == "job") {
      described.add_options()("action", po::value(&action)->required(), "retry, skip or why")(
          "id", po::value(&job_id)->required(), "the job's id");
      positional.add("action", 1).add("id", 1);
    } else if (command == "jobs") {
      described.add_options()("queue", po::value(&queue), "only this queue's jobs")(
          "state", po::value(&state),
          "only jobs in this state: Posted, Waiting, Executing, Ready, Error, Skipped")(
          "limit", po::value(&limit)->default_value(limit), "at most this many")(
          "job", po::value(&job_id), "only this job");
    }
    if (int code = Parse(command, args, described, vm, positional); code != 0) {
      return code == -1 ? 0 : code;
    }
    if (command == "queue") {
      if (action == "set-processes" && !vm.count("processes")) {
        std::cerr << "ferryctl queue set-processes: give the queue and the process count\n";
        return 2;
      }
      return ferry::ctl::QueueCommand(options, action, queue, processes, std::cout, std::cerr);
    }
    if (command == "job")
      return ferry::ctl::JobCommand(options, action, job_id, std::cout, std::cerr);
    if (command == "jobs") {
      return ferry::ctl::ListJobs(options, queue, state, limit, job_id, std::cout, std::cerr);
    }
    return ferry::ctl::ListSessions(options, std::cout, std::cerr);
  }
  std::cerr << "ferryctl: unknown command '" << command << "'\n" << kUsage;
  return 2;
}
