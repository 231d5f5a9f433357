#include "worker/worker.h"

#include <unistd.h>

#include <thread>

#include "common/codec.h"
#include "common/log.h"

namespace ferry {

StatusOr<std::unique_ptr<Worker>> Worker::Create(zmq::context_t& context, WorkerOptions options,
                                                 const Clock* clock) {
  if (options.replica_endpoint.empty()) return Status::InvalidArgument("no replica endpoint given");
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
      RunJob(envelope.job_assignment());
      last_hello = clock_->Steady();
    }
  }
  return Status::Ok();
}

std::chrono::milliseconds Worker::ApplyDelay(uint64_t job_id) {
  auto message = store_->ReadJobMessage(job_id);
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

void Worker::RunJob(const wire::JobAssignment& assignment) {
  ReplicaStore::Attempt attempt;
  attempt.job_id = assignment.job_id();
  attempt.attempt = static_cast<int>(assignment.attempt());
  attempt.session_id = assignment.session_id();
  attempt.pid = getpid();
  attempt.started_at_us = clock_->NowMicros();
  if (!options_.apply_delays.empty()) {
    // Outside the transaction, as slow work before the writes would be.
    std::this_thread::sleep_for(ApplyDelay(attempt.job_id));
  }
  Status applied = store_->ApplyJob(attempt, *clock_);
  wire::Envelope outcome;
  outcome.mutable_job_outcome()->set_job_id(attempt.job_id);
  outcome.mutable_job_outcome()->set_ready(applied.ok());
  if (!applied.ok()) {
    outcome.mutable_job_outcome()->set_error(applied.message());
    LogWarning(applied.message());
  }
  Status sent = Send(socket_, outcome);
  if (!sent.ok()) {
    LogError("outcome of job " + std::to_string(attempt.job_id) + " not sent: " + sent.message());
  }
}

}  // namespace ferry
