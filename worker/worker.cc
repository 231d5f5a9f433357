#include "worker/worker.h"

#include <unistd.h>

#include <thread>

#include "common/codec.h"
#include "common/log.h"

namespace ferry {

StatusOr<std::unique_ptr<Worker>> Worker::Create(zmq::context_t& context, WorkerOptions options,
                                                 const Clock* clock) {
  if (options.replica_endpoint.empty()) return Status::InvalidArgument("no replica endpoint given");
  // No fsync per commit: see OpenSqliteReplicaStore.
  auto store = OpenSqliteReplicaStore(options.db_path, {.create = false});
  if (!store.ok()) return store.status();
  std::unique_ptr<Worker> worker(
      new Worker(context, std::move(options), clock, std::move(store).value()));
  try {
    worker->socket_.connect(worker->options_.replica_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to " + worker->options_.replica_endpoint + ": " +
                                   e.what());
  }
  return worker;
}

Worker::Worker(zmq::context_t& context, WorkerOptions options, const Clock* clock,
               std::unique_ptr<ReplicaStore> store)
    : options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      socket_(context, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 1000);  // let a last outcome reach the replica
}

Status ParseApplyDelay(const std::string& text, WorkerOptions* options) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("--apply-delay '" + text + "' is not LU=MS");
  }
  try {
    size_t used = 0;
    int ms = std::stoi(text.substr(eq + 1), &used);
    if (used != text.size() - eq - 1 || ms < 0) throw std::invalid_argument("ms");
    options->apply_delays[text.substr(0, eq)] = std::chrono::milliseconds(ms);
  } catch (const std::exception&) {
    return Status::InvalidArgument("--apply-delay '" + text + "': '" + text.substr(eq + 1) +
                                   "' is not a number of milliseconds");
  }
  return Status::Ok();
}

Status Worker::SayHello() {
  wire::Envelope hello;
  hello.mutable_worker_hello()->set_queue(options_.queue);
  hello.mutable_worker_hello()->set_pid(getpid());
  return Send(socket_, hello).Annotate("hello to " + options_.replica_endpoint);
}

Status Worker::Run(const std::atomic<bool>& stop) {
  FERRY_RETURN_IF_ERROR(SayHello());
  LogInfo("worker for queue " + options_.queue + " connected to " + options_.replica_endpoint);
  auto last_hello = clock_->Steady();
  while (!stop.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    Status polled = Poll(&item, 1, std::chrono::milliseconds(100));
    if (polled.code() == Status::Code::kUnavailable) break;
    FERRY_RETURN_IF_ERROR(polled);
    if (!(item.revents & ZMQ_POLLIN)) {
      // Idle: a keepalive, which also re-registers us with a replica that restarted.
      if (clock_->Steady() - last_hello >= options_.hello_interval) {
        (void)SayHello();
        last_hello = clock_->Steady();
      }
      continue;
    }
    while (auto received = TryReceive(socket_, /*router=*/false)) {
      if (!received->envelope.ok()) {
        LogWarning("rejected message from the replica: " + received->envelope.status().message());
        continue;
      }
      const wire::Envelope& envelope = *received->envelope;
      if (envelope.has_error()) {
        return Status::InvalidArgument("the replica refused this worker: " +
                                       envelope.error().message());
      }
      if (!envelope.has_job_assignment()) {
        LogWarning("the worker port sent " + BodyName(envelope) +
                   "; a worker takes only JobAssignment");
        continue;
      }
      RunBatch(envelope.job_assignment());
      last_hello = clock_->Steady();
    }
  }
  return Status::Ok();
}

std::chrono::milliseconds Worker::ApplyDelay(const wire::AssignedJob& job) {
  StatusOr<wire::ReplicationMessage> message = wire::ReplicationMessage();
  if (job.message().empty()) {
    message = store_->ReadJobMessage(job.job_id());
  } else if (!message->ParseFromString(job.message())) {
    return std::chrono::milliseconds(0);  // it fails in ApplyJobs, which says so
  }
  if (!message.ok()) return std::chrono::milliseconds(0);
  std::chrono::milliseconds delay(0);
  for (const auto& change : message->changes()) {
    for (const auto& lu : {change.lu(), std::string("*")}) {
      auto it = options_.apply_delays.find(lu);
      if (it != options_.apply_delays.end()) delay = std::max(delay, it->second);
    }
  }
  return delay;
}

void Worker::RunBatch(const wire::JobAssignment& assignment) {
  std::vector<ReplicaStore::Attempt> attempts;
  std::chrono::milliseconds delay(0);
  for (const auto& job : assignment.jobs()) {
    ReplicaStore::Attempt& attempt = attempts.emplace_back();
    attempt.job_id = job.job_id();
    attempt.attempt = static_cast<int>(job.attempt());
    attempt.session_id = assignment.session_id();
    attempt.pid = getpid();
    attempt.message = job.message();
    attempt.queue = options_.queue;
    attempt.received_at_us = job.received_at_us();
    if (!options_.apply_delays.empty()) delay = std::max(delay, ApplyDelay(job));
  }
  if (attempts.empty()) return;
  attempts.front().started_at_us = clock_->NowMicros();
  // Outside the transaction, as slow work before the writes would be.
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  std::vector<Status> results = store_->ApplyJobs(attempts, *clock_);
  wire::Envelope outcome;
  for (size_t i = 0; i < results.size(); ++i) {
    wire::JobResult* result = outcome.mutable_job_outcome()->add_results();
    result->set_job_id(attempts[i].job_id);
    result->set_ready(results[i].ok());
    if (!results[i].ok()) {
      result->set_error(results[i].message());
      LogWarning(results[i].message());
    }
  }
  Status sent = Send(socket_, outcome);
  if (!sent.ok()) {
    LogError("outcome of job " + std::to_string(attempts.front().job_id) + " and " +
             std::to_string(attempts.size() - 1) + " after it not sent: " + sent.message());
  }
}

}  // namespace ferry
