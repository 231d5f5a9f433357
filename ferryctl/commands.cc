#include "ferryctl/commands.h"

#include <google/protobuf/util/json_util.h>

#include <iomanip>
#include <iostream>
#include <optional>
#include <zmq.hpp>

#include "common/catalog.h"
#include "common/node_client.h"
#include "common/site_rows.h"
#include "common/workload.h"

namespace ferry::ctl {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Time(int64_t micros) {
  std::time_t seconds = micros / 1000000;
  std::tm utc;
  gmtime_r(&seconds, &utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return buf;
}

void PrintMaster(const wire::MasterStatus& status, std::ostream& out) {
  out << "master " << status.site() << ": last transaction " << status.last_transaction_id()
      << "; since start " << status.submits_since_start() << " submits made durable by "
      << status.durable_syncs() << " fsyncs\n";
  out << "  " << std::left << std::setw(12) << "site" << std::setw(10) << "latest" << std::setw(14)
      << "acknowledged"
      << "connected\n";
  for (const auto& stream : status.streams()) {
    out << "  " << std::setw(12) << stream.site() << std::setw(10) << stream.latest_sequence()
        << std::setw(14) << stream.acknowledged_sequence() << (stream.connected() ? "yes" : "no")
        << "\n";
  }
}

void PrintReplica(const wire::ReplicaStatus& status, std::ostream& out) {
  out << "replica " << status.site() << ": replication "
      << (status.running() ? "running" : "stopped") << ", session " << status.session_id()
      << ", master " << (status.master_connected() ? "connected" : "not connected") << "\n";
  out << "  last received sequence " << status.last_received_sequence()
      << ", last applied sequence " << status.last_applied_sequence() << "\n";
  for (const auto& queue : status.queues()) {
    out << "  queue " << queue.name() << " (" << queue.processes()
        << (queue.processes() == 1 ? " process, " : " processes, ") << queue.ordering()
        << (queue.paused() ? ", PAUSED" : "") << "):";
    if (queue.jobs().empty()) out << " no jobs";
    for (const auto& count : queue.jobs()) out << " " << count.state() << " " << count.count();
    out << "\n";
  }
  for (const auto& worker : status.workers()) {
    out << "  worker " << worker.session_id() << " pid " << worker.pid() << " queue "
        << worker.queue() << ", "
        << (worker.current_job() ? "running job " + std::to_string(worker.current_job()) : "idle")
        << ", started " << Time(worker.started_at_us()) << "\n";
  }
  out << "  last error: " << (status.last_error().empty() ? "none" : status.last_error()) << "\n";
}

}  // namespace

int Submit(const SubmitOptions& options, std::istream& in, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  NodeClient client(context, options.endpoint, options.timeout_ms);
  std::string line;
  int line_number = 0, submitted = 0, rejected = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    wire::SubmitRequest request;
    auto parsed = google::protobuf::util::JsonStringToMessage(line, &request);
    if (!parsed.ok()) {
      ++rejected;
      const std::string reason = "line " + std::to_string(line_number) +
                                 ": not a SubmitRequest in JSON: " + std::string(parsed.message());
      err << reason << "\n";
      if (options.json)
        out << "{\"line\":" << line_number << ",\"error\":" << JsonString(reason) << "}\n";
      continue;
    }
    auto reply = client.Submit(request);
    if (!reply.ok()) {
      if (reply.status().code() == Status::Code::kUnavailable) {
        err << "line " << line_number << ": " << reply.status().message() << "\n";
        return 1;  // the master is not answering: the rest would fail the same way
      }
      ++rejected;
      err << "line " << line_number << ": rejected: " << reply.status().message() << "\n";
      if (options.json) {
        out << "{\"line\":" << line_number << ",\"error\":" << JsonString(reply.status().message())
            << "}\n";
      }
      continue;
    }
    ++submitted;
    if (options.json) {
      out << ToJson(*reply) << "\n";
    } else {
      out << "transaction " << reply->transaction_id();
      for (const auto& p : reply->published()) out << " " << p.site() << "#" << p.sequence();
      out << "\n";
    }
  }
  if (!options.json) err << submitted << " submitted, " << rejected << " rejected\n";
  return rejected ? 1 : 0;
}

int PrintStatus(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  NodeClient client(context, options.endpoint, options.timeout_ms);
  auto status = client.GetStatus();
  if (!status.ok()) {
    err << "status of " << options.endpoint << ": " << status.status().message() << "\n";
    return 1;
  }
  if (options.json) {
    out << ToJson(*status) << "\n";
  } else if (status->has_master()) {
    PrintMaster(status->master(), out);
  } else {
    PrintReplica(status->replica(), out);
  }
  return 0;
}

int PrintWorkload(const WorkloadOptions& options, std::ostream& out) {
  OrdersWorkload workload;
  google::protobuf::util::JsonPrintOptions json;
  std::string line;
  auto print = [&](const wire::SubmitRequest& request) {
    line.clear();
    (void)google::protobuf::util::MessageToJsonString(request, &line, json);
    out << line << "\n";
  };
  if (options.setup) {
    for (const auto& request : workload.SetUp()) print(request);
  }
  for (uint64_t i = 1; i <= options.transactions; ++i) print(workload.Transaction(i));
  return out ? 0 : 1;
}

int Verify(const VerifyOptions& options, std::ostream& out, std::ostream& err) {
  auto catalog = Catalog::Load(options.master_config);
  if (!catalog.ok()) {
    err << catalog.status().message() << "\n";
    return 1;
  }
  auto comparisons =
      CompareSiteRows(**catalog, options.master_db, options.replica_db, options.site);
  if (!comparisons.ok()) {
    err << "verify " << options.site << ": " << comparisons.status().message() << "\n";
    return 1;
  }
  bool equal = true;
  for (const auto& c : *comparisons) equal = equal && c.equal();
  if (options.json) {
    out << "{\"site\":" << JsonString(options.site) << ",\"equal\":" << (equal ? "true" : "false")
        << ",\"lus\":[";
    for (size_t i = 0; i < comparisons->size(); ++i) {
      const auto& c = (*comparisons)[i];
      out << (i ? "," : "") << "{\"lu\":" << JsonString(c.lu)
          << ",\"master_rows\":" << c.master_rows << ",\"replica_rows\":" << c.replica_rows
          << ",\"missing\":" << c.missing << ",\"unexpected\":" << c.unexpected
          << ",\"different\":" << c.different
          << ",\"first_difference\":" << JsonString(c.first_difference) << "}";
    }
    out << "]}\n";
  } else {
    out << "site " << options.site << ": "
        << (equal ? "rows equal the master's rows routed to it" : "rows DIFFER from the master's")
        << "\n";
    for (const auto& c : *comparisons) {
      out << "  " << std::left << std::setw(20) << c.lu << std::right << std::setw(8)
          << c.replica_rows << " rows";
      if (c.equal()) {
        out << "  equal\n";
      } else {
        out << "  master routes " << c.master_rows << "; missing " << c.missing << ", unexpected "
            << c.unexpected << ", different " << c.different << "; e.g. " << c.first_difference
            << "\n";
      }
    }
  }
  return equal ? 0 : 1;
}

namespace {

// Sends `request` to a replica's control port; prints an Error reply and returns nullopt.
std::optional<wire::Envelope> AskReplica(const ReplicaCommandOptions& options,
                                         wire::Envelope request, std::ostream& err) {
  zmq::context_t context;
  NodeClient client(context, options.endpoint, options.timeout_ms);
  auto reply = client.Call(std::move(request));
  if (!reply.ok()) {
    err << options.endpoint << ": " << reply.status().message() << "\n";
    return std::nullopt;
  }
  return std::move(reply).value();
}

int PrintCommandReply(const ReplicaCommandOptions& options, const wire::Envelope& reply,
                      std::ostream& out) {
  if (options.json) {
    out << ToJson(reply.command_reply()) << "\n";
  } else {
    out << reply.command_reply().message() << "\n";
  }
  return 0;
}

}  // namespace

int QueueCommand(const ReplicaCommandOptions& options, const std::string& action,
                 const std::string& queue, int processes, std::ostream& out, std::ostream& err) {
  wire::Envelope request;
  wire::QueueCommand* command = request.mutable_queue_command();
  command->set_queue(queue);
  if (action == "set-processes") {
    if (processes < 1) {
      err << "ferryctl queue set-processes: a queue has at least 1 process\n";
      return 2;
    }
    command->set_action(wire::QueueCommand::SET_PROCESSES);
    command->set_processes(static_cast<uint32_t>(processes));
  } else if (action == "pause") {
    command->set_action(wire::QueueCommand::PAUSE);
  } else if (action == "resume") {
    command->set_action(wire::QueueCommand::RESUME);
  } else {
    err << "ferryctl queue: unknown action '" << action << "' (set-processes, pause, resume)\n";
    return 2;
  }
  auto reply = AskReplica(options, std::move(request), err);
  return reply ? PrintCommandReply(options, *reply, out) : 1;
}

int JobCommand(const ReplicaCommandOptions& options, const std::string& action, uint64_t job_id,
               std::ostream& out, std::ostream& err) {
  wire::Envelope request;
  wire::JobCommand* command = request.mutable_job_command();
  command->set_job_id(job_id);
  if (action == "retry") {
    command->set_action(wire::JobCommand::RETRY);
  } else if (action == "skip") {
    command->set_action(wire::JobCommand::SKIP);
  } else if (action == "why") {
    command->set_action(wire::JobCommand::WHY);
  } else {
    err << "ferryctl job: unknown action '" << action << "' (retry, skip, why)\n";
    return 2;
  }
  auto reply = AskReplica(options, std::move(request), err);
  if (!reply) return 1;
  if (!reply->has_job_why()) return PrintCommandReply(options, *reply, out);
  const wire::JobWhy& why = reply->job_why();
  if (options.json) {
    out << ToJson(why) << "\n";
    return 0;
  }
  out << why.summary() << "\n";
  return 0;
}

int ListJobs(const ReplicaCommandOptions& options, const std::string& queue,
             const std::string& state, uint32_t limit, uint64_t job_id, std::ostream& out,
             std::ostream& err) {
  wire::Envelope request;
  request.mutable_job_query()->set_queue(queue);
  request.mutable_job_query()->set_state(state);
  request.mutable_job_query()->set_limit(limit);
  request.mutable_job_query()->set_job_id(job_id);
  auto reply = AskReplica(options, std::move(request), err);
  if (!reply) return 1;
  const wire::JobList& list = reply->job_list();
  if (options.json) {
    out << ToJson(list) << "\n";
    return 0;
  }
  out << std::left << std::setw(8) << "job" << std::setw(10) << "sequence" << std::setw(14)
      << "queue" << std::setw(23) << "class" << std::setw(11) << "state" << std::setw(9)
      << "attempts"
      << "session\n";
  for (const auto& job : list.jobs()) {
    out << std::setw(8) << job.job_id() << std::setw(10) << job.sequence() << std::setw(14)
        << job.queue() << std::setw(23) << job.message_class() << std::setw(11) << job.state()
        << std::setw(9) << job.attempts() << job.session_id() << "\n";
    for (const auto& attempt : job.attempt_log()) {
      if (attempt.outcome() == "Error") {
        out << "        attempt " << attempt.attempt() << " (" << attempt.session_id() << ", "
            << Time(attempt.started_at_us()) << "): " << attempt.error() << "\n";
      }
    }
  }
  return 0;
}

int ListSessions(const ReplicaCommandOptions& options, std::ostream& out, std::ostream& err) {
  wire::Envelope request;
  request.mutable_status_request();
  auto reply = AskReplica(options, std::move(request), err);
  if (!reply) return 1;
  if (!reply->status_reply().has_replica()) {
    err << options.endpoint << " is not a replica's control endpoint\n";
    return 1;
  }
  const wire::ReplicaStatus& status = reply->status_reply().replica();
  if (options.json) {
    wire::ReplicaStatus sessions;
    *sessions.mutable_workers() = status.workers();
    out << ToJson(sessions) << "\n";
    return 0;
  }
  out << "replication session " << status.session_id() << " of " << status.site() << "\n";
  out << std::left << std::setw(9) << "session" << std::setw(9) << "pid" << std::setw(14) << "queue"
      << std::setw(13) << "current job"
      << "started at\n";
  for (const auto& worker : status.workers()) {
    out << std::setw(9) << worker.session_id() << std::setw(9) << worker.pid() << std::setw(14)
        << worker.queue() << std::setw(13)
        << (worker.current_job() ? std::to_string(worker.current_job()) : "-")
        << Time(worker.started_at_us()) << "\n";
  }
  return 0;
}

}  // namespace ferry::ctl
