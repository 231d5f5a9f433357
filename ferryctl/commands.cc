#include "ferryctl/commands.h"

#include <google/protobuf/util/json_util.h>

#include <iomanip>
#include <iostream>
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
      << "\n";
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
        << (queue.processes() == 1 ? " process" : " processes") << "):";
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

}  // namespace ferry::ctl
