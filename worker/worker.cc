#include "worker/worker.h"

#include <unistd.h>

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

Status Worker::Run(const std::atomic<bool>& stop) {
  wire::Envelope hello;
  hello.mutable_worker_hello()->set_queue(options_.queue);
  hello.mutable_worker_hello()->set_pid(getpid());
  FERRY_RETURN_IF_ERROR(Send(socket_, hello).Annotate("hello to " + options_.replica_endpoint));
  LogInfo("worker for queue " + options_.queue + " connected to " + options_.replica_endpoint);
  while (!stop.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    Status polled = Poll(&item, 1, std::chrono::milliseconds(100));
    if (polled.code() == Status::Code::kUnavailable) break;
    FERRY_RETURN_IF_ERROR(polled);
    if (!(item.revents & ZMQ_POLLIN)) continue;
    while (auto received = TryReceive(socket_, /*router=*/false)) {
      if (!received->envelope.ok()) {
        LogWarning("rejected message from the replica: " + received->envelope.status().message());
        continue;
      }
      if (!received->envelope->has_job_assignment()) {
        LogWarning("the worker port sent " + BodyName(*received->envelope) +
                   "; a worker takes only JobAssignment");
        continue;
      }
      const uint64_t job_id = received->envelope->job_assignment().job_id();
      Status applied = store_->ApplyJob(job_id, clock_->NowMicros());
      wire::Envelope outcome;
      outcome.mutable_job_outcome()->set_job_id(job_id);
      outcome.mutable_job_outcome()->set_ready(applied.ok());
      if (!applied.ok()) {
        outcome.mutable_job_outcome()->set_error(applied.message());
        LogWarning(applied.message());
      }
      // Blocking is fine here: a worker has nothing else to do until the replica hears it.
      Status sent = Send(socket_, outcome);
      if (!sent.ok())
        LogError("outcome of job " + std::to_string(job_id) + " not sent: " + sent.message());
    }
  }
  return Status::Ok();
}

}  // namespace ferry
