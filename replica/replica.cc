#include "replica/replica.h"

#include <unistd.h>

#include <algorithm>

#include "common/codec.h"
#include "common/log.h"

namespace ferry {

StatusOr<std::unique_ptr<Replica>> Replica::Create(zmq::context_t& context, ReplicaOptions options,
                                                   const Clock* clock) {
  if (options.site.empty()) return Status::InvalidArgument("no site name given");
  if (options.master_endpoint.empty()) return Status::InvalidArgument("no master endpoint given");
  if (options.worker_program.empty()) return Status::InvalidArgument("no worker program given");
  auto store = OpenSqliteReplicaStore(options.db_path, {});
  if (!store.ok()) return store.status();
  std::unique_ptr<Replica> replica(
      new Replica(context, std::move(options), clock, std::move(store).value()));

  auto control = Bind(replica->control_socket_, replica->options_.control_endpoint);
  if (!control.ok()) return control.status().Annotate("control endpoint");
  replica->control_endpoint_ = *control;
  auto workers = Bind(replica->worker_socket_, replica->options_.worker_endpoint);
  if (!workers.ok()) return workers.status().Annotate("worker endpoint");
  replica->worker_endpoint_ = *workers;
  try {
    replica->stream_socket_.connect(replica->options_.master_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to master " + replica->options_.master_endpoint +
                                   ": " + e.what());
  }

  auto session = replica->store_->BeginSession(getpid(), clock->NowMicros());
  if (!session.ok()) return session.status();
  replica->session_id_ = *session;
  auto unfinished = replica->store_->UnfinishedJobs();
  if (!unfinished.ok()) return unfinished.status();
  for (Job& job : *unfinished) {
    job.state = JobState::kPosted;  // whatever was executing when we stopped runs again
    replica->replication_queue_.jobs.push_back(std::move(job));
  }
  replica->supervisor_.emplace(WorkerSupervisor::Options{
      .program = replica->options_.worker_program,
      .queue = kReplicationQueue,
      .replica_endpoint = replica->worker_endpoint_,
      .db_path = replica->options_.db_path,
      .log_path = replica->options_.worker_log,
      .processes = replica->replication_queue_.processes,
  });
  return replica;
}

Replica::Replica(zmq::context_t& context, ReplicaOptions options, const Clock* clock,
                 std::unique_ptr<ReplicaStore> store)
    : options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      stream_socket_(context, zmq::socket_type::dealer),
      worker_socket_(context, zmq::socket_type::router),
      control_socket_(context, zmq::socket_type::router) {
  replication_queue_.name = kReplicationQueue;
  stream_socket_.set(zmq::sockopt::linger, 0);
  // Hellos are not queued for a master that is not there; the timer says hello again.
  stream_socket_.set(zmq::sockopt::immediate, 1);
  stream_socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxBodyBytes + 1024));
  for (auto* socket : {&worker_socket_, &control_socket_}) {
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::router_mandatory, 1);
    socket->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxBodyBytes + 1024));
  }
}

Status Replica::Run(const std::atomic<bool>& stop) {
  LogInfo("replica " + options_.site + " session " + session_id_ + ": stream from " +
          options_.master_endpoint + ", control on " + control_endpoint_ + ", workers on " +
          worker_endpoint_ + ", next sequence " +
          std::to_string(store_->LastReceivedSequence() + 1));
  SayHello();
  while (!stop.load()) {
    auto now = clock_->Steady();
    for (pid_t pid : supervisor_->Tick(now)) OnWorkerExited(pid);
    // Until the master answers, hello often: the first one is dropped while connecting.
    if (now - last_heard_from_master_ > options_.master_timeout &&
        now - last_hello_ > std::min<std::chrono::milliseconds>(options_.master_timeout / 3,
                                                                std::chrono::milliseconds(250))) {
      SayHello();
    }
    Dispatch(replication_queue_);
    zmq::pollitem_t items[] = {{stream_socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {worker_socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {control_socket_.handle(), 0, ZMQ_POLLIN, 0}};
    // 100 ms bounds how late a retry, a restart or `stop` is noticed.
    Status polled = Poll(items, 3, std::chrono::milliseconds(100));
    if (polled.code() == Status::Code::kUnavailable) break;
    FERRY_RETURN_IF_ERROR(polled);
    if (items[0].revents & ZMQ_POLLIN) HandleStream();
    if (items[1].revents & ZMQ_POLLIN) HandleWorkers();
    if (items[2].revents & ZMQ_POLLIN) HandleControl();
  }
  supervisor_.reset();  // SIGTERM to each worker; each finishes its job first
  LogInfo("replica " + options_.site + " stopped");
  return Status::Ok();
}

void Replica::SayHello() {
  wire::Envelope hello;
  hello.mutable_stream_hello()->set_site(options_.site);
  hello.mutable_stream_hello()->set_next_sequence(store_->LastReceivedSequence() + 1);
  last_hello_ = clock_->Steady();
  (void)Send(stream_socket_, hello);  // fails while not connected; the timer tries again
}

void Replica::HandleStream() {
  std::vector<wire::ReplicationMessage> batch;
  bool gap = false;
  while (auto received = TryReceive(stream_socket_, /*router=*/false)) {
    if (!received->envelope.ok()) {
      LogWarning("stream: rejected message: " + received->envelope.status().message());
      continue;
    }
    wire::Envelope& envelope = *received->envelope;
    last_heard_from_master_ = clock_->Steady();
    const uint64_t expected = store_->LastReceivedSequence() + batch.size() + 1;
    if (envelope.has_replication_message()) {
      wire::ReplicationMessage& message = *envelope.mutable_replication_message();
      if (message.site() != options_.site) {
        LogWarning("stream: dropped a message for site '" + message.site() + "'; this is " +
                   options_.site);
      } else if (message.sequence() < expected) {
        // A duplicate of what we hold (a resend after a hello): nothing to do.
      } else if (message.sequence() > expected) {
        gap = true;
      } else {
        batch.push_back(std::move(message));
      }
    } else if (envelope.has_heartbeat()) {
      if (envelope.heartbeat().latest_sequence() >= expected && batch.empty()) gap = true;
    } else if (envelope.has_error()) {
      LogError("master refused this site: " + envelope.error().message());
    } else {
      LogWarning("stream: unexpected " + BodyName(envelope) + " from the master");
    }
  }
  if (!batch.empty()) {
    // One durable transaction for everything that arrived together, then one ack.
    auto posted =
        store_->StoreMessages(batch, kReplicationQueue, kDefaultQueue, clock_->NowMicros());
    if (!posted.ok()) {
      LogError("storing messages " + std::to_string(batch.front().sequence()) + ".." +
               std::to_string(batch.back().sequence()) + ": " + posted.status().message());
      return;  // not acknowledged: the master sends them again after our next hello
    }
    for (Job& job : *posted) replication_queue_.jobs.push_back(std::move(job));
    wire::Envelope ack;
    ack.mutable_ack()->set_site(options_.site);
    ack.mutable_ack()->set_sequence(store_->LastReceivedSequence());
    (void)Send(stream_socket_, ack);
    Dispatch(replication_queue_);
  } else if (gap) {
    SayHello();  // the master streams again from the first sequence we lack
  }
}

void Replica::HandleWorkers() {
  while (auto received = TryReceive(worker_socket_, /*router=*/true)) {
    if (!received->envelope.ok()) {
      LogWarning("worker port: rejected message: " + received->envelope.status().message());
      continue;
    }
    const wire::Envelope& envelope = *received->envelope;
    if (envelope.has_worker_hello()) {
      if (envelope.worker_hello().queue() != replication_queue_.name) {
        LogWarning("worker " + std::to_string(envelope.worker_hello().pid()) +
                   " asked for unknown queue '" + envelope.worker_hello().queue() + "'");
        continue;
      }
      WorkerSession& session = sessions_[received->identity];
      session.id = "W" + std::to_string(next_session_number_++);
      session.pid = envelope.worker_hello().pid();
      session.queue = envelope.worker_hello().queue();
      session.started_at_us = clock_->NowMicros();
      LogInfo("worker session " + session.id + " (pid " + std::to_string(session.pid) +
              ") serves queue " + session.queue);
    } else if (envelope.has_job_outcome()) {
      auto it = sessions_.find(received->identity);
      const wire::JobOutcome& outcome = envelope.job_outcome();
      if (it == sessions_.end() || it->second.current_job != outcome.job_id()) {
        LogWarning("worker port: outcome of job " + std::to_string(outcome.job_id()) +
                   " from a session not running it");
        continue;
      }
      it->second.current_job = 0;
      BatchQueue& queue = replication_queue_;
      if (queue.jobs.empty() || queue.jobs.front().id != outcome.job_id()) continue;
      if (outcome.ready()) {
        queue.jobs.pop_front();
      } else {
        queue.jobs.front().state = JobState::kError;
        queue.retry_at = clock_->Steady() + options_.retry_delay;
        last_error_ = outcome.error();
        LogWarning("job " + std::to_string(outcome.job_id()) + " failed, retrying in " +
                   std::to_string(options_.retry_delay.count()) + " ms: " + outcome.error());
      }
    } else {
      LogWarning("worker port: unexpected " + BodyName(envelope));
    }
  }
  Dispatch(replication_queue_);
}

void Replica::OnWorkerExited(int pid) {
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.pid != pid) continue;
    if (it->second.current_job != 0) {
      LogWarning("job " + std::to_string(it->second.current_job) + " lost its worker " +
                 it->second.id + "; it will be handed out again");
      for (Job& job : replication_queue_.jobs) {
        if (job.id == it->second.current_job) job.state = JobState::kPosted;
      }
    }
    sessions_.erase(it);
    return;
  }
}

void Replica::Dispatch(BatchQueue& queue) {
  if (queue.jobs.empty()) return;
  Job& next = queue.jobs.front();
  // Strict order: only the front job runs, and only one at a time.
  if (next.state == JobState::kExecuting) return;
  if (next.state == JobState::kError && clock_->Steady() < queue.retry_at) return;
  for (auto& [identity, session] : sessions_) {
    if (session.queue != queue.name || session.current_job != 0) continue;
    Status marked = store_->MarkExecuting(next.id, session.id, clock_->NowMicros());
    if (!marked.ok()) {
      LogError("job " + std::to_string(next.id) + " not started: " + marked.message());
      return;
    }
    wire::Envelope assignment;
    assignment.mutable_job_assignment()->set_job_id(next.id);
    Status sent = Send(worker_socket_, assignment, identity);
    if (!sent.ok()) {
      LogWarning("worker session " + session.id + " unreachable: " + sent.message());
      continue;
    }
    session.current_job = next.id;
    next.state = JobState::kExecuting;
    return;
  }
}

uint64_t Replica::LastAppliedSequence() const {
  // Everything before the oldest unfinished job has been applied.
  if (!replication_queue_.jobs.empty()) return replication_queue_.jobs.front().sequence - 1;
  return store_->LastReceivedSequence();
}

StatusOr<wire::ReplicaStatus> Replica::CurrentStatus() {
  wire::ReplicaStatus status;
  status.set_site(options_.site);
  status.set_running(true);
  status.set_session_id(session_id_);
  status.set_master_connected(clock_->Steady() - last_heard_from_master_ < options_.master_timeout);
  status.set_last_received_sequence(store_->LastReceivedSequence());
  status.set_last_applied_sequence(LastAppliedSequence());
  auto counts = store_->CountJobs();
  if (!counts.ok()) return counts.status();
  std::map<std::string, int> processes = {{kReplicationQueue, replication_queue_.processes},
                                          {kDefaultQueue, 0}};
  for (const auto& [name, count] : processes) {
    wire::QueueStatus* queue = status.add_queues();
    queue->set_name(name);
    queue->set_processes(count);
    for (const auto& [state, n] : (*counts)[name]) {
      wire::StateCount* state_count = queue->add_jobs();
      state_count->set_state(state);
      state_count->set_count(n);
    }
  }
  for (const auto& [identity, session] : sessions_) {
    wire::WorkerSession* worker = status.add_workers();
    worker->set_session_id(session.id);
    worker->set_pid(session.pid);
    worker->set_queue(session.queue);
    worker->set_current_job(session.current_job);
    worker->set_started_at_us(session.started_at_us);
  }
  status.set_last_error(last_error_);
  return status;
}

void Replica::HandleControl() {
  while (auto received = TryReceive(control_socket_, /*router=*/true)) {
    if (!received->envelope.ok()) {
      LogWarning("control port: rejected message: " + received->envelope.status().message());
      (void)Send(control_socket_,
                 ErrorEnvelope(0, wire::MALFORMED, received->envelope.status().message()),
                 received->identity);
      continue;
    }
    const wire::Envelope& request = *received->envelope;
    wire::Envelope reply;
    reply.set_request_id(request.request_id());
    if (request.has_status_request()) {
      auto status = CurrentStatus();
      if (status.ok()) {
        *reply.mutable_status_reply()->mutable_replica() = std::move(status).value();
      } else {
        reply = ErrorEnvelope(request.request_id(), wire::INTERNAL, status.status().message());
      }
    } else {
      reply = ErrorEnvelope(request.request_id(), wire::UNEXPECTED,
                            "the control port takes StatusRequest, not " + BodyName(request));
    }
    (void)Send(control_socket_, reply, received->identity);
  }
}

}  // namespace ferry
