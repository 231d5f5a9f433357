#include "replica/replica.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/codec.h"
#include "common/log.h"

namespace ferry {
namespace {

std::shared_ptr<const Catalog> CatalogOf(const config::MasterConfiguration& config) {
  auto catalog = Catalog::FromProto(config);
  if (!catalog.ok()) {
    LogError("received a master configuration that does not hold: " + catalog.status().message());
    return nullptr;
  }
  return *catalog;
}

// Only dependency ordering looks at the rows a job touches.
bool OrdersByRows(const QueueSet& queues, const std::string& queue) {
  const QueueConfig* config = queues.Find(queue);
  return config && config->ordering == Ordering::kDependency;
}

BatchQueues::NewJob Scheduled(const Job& job, const Catalog* catalog, const QueueSet& queues) {
  BatchQueues::NewJob scheduled;
  scheduled.id = job.id;
  scheduled.sequence = job.sequence;
  scheduled.queue = job.queue;
  // Configuration, snapshot and unknown classes change what later jobs mean: barriers.
  scheduled.barrier = job.message.message_class() != wire::RECEIVE_MESSAGE || catalog == nullptr;
  // Other queues need not keep the rows (memory).
  if (!scheduled.barrier && OrdersByRows(queues, job.queue)) {
    scheduled.footprint = FootprintOf(catalog, job.message);
  }
  scheduled.failed = job.state == JobState::kError;
  scheduled.failures = job.attempts - job.released_attempts;
  scheduled.attempts = job.attempts;
  return scheduled;
}

std::string Millis(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

StatusOr<std::unique_ptr<Replica>> Replica::Create(zmq::context_t& context, ReplicaOptions options,
                                                   const Clock* clock) {
  if (options.site.empty()) return Status::InvalidArgument("no site name given");
  if (options.master_endpoint.empty()) return Status::InvalidArgument("no master endpoint given");
  if (options.worker_program.empty()) return Status::InvalidArgument("no worker program given");
  auto store = OpenSqliteReplicaStore(
      options.db_path, {.busy_timeout_ms = static_cast<int>(options.db_lock_timeout.count())});
  if (!store.ok()) return store.status();

  // Operators' changes (ferryctl queue ...) outlive restarts and override the configuration.
  auto settings = (*store)->QueueSettings();
  if (!settings.ok()) return settings.status();
  for (const auto& [name, setting] : *settings) {
    QueueConfig* queue = options.queues.Find(name);
    if (!queue) continue;
    if (setting.processes && *setting.processes != queue->processes) {
      LogInfo("queue " + name + ": " + std::to_string(*setting.processes) +
              " processes as set by ferryctl (configured: " + std::to_string(queue->processes) +
              ")");
      queue->processes = *setting.processes;
    }
  }
  BatchQueues scheduler(options.queues);
  for (const auto& [name, setting] : *settings) {
    if (setting.paused && options.queues.Find(name)) {
      (void)scheduler.SetPaused(name, true);
      LogInfo("queue " + name + " is paused (ferryctl queue resume " + name + ")");
    }
  }
  auto newest = (*store)->NewestConfiguration();
  if (!newest.ok()) return newest.status();
  std::shared_ptr<const Catalog> catalog = *newest ? CatalogOf(**newest) : nullptr;
  auto unfinished = (*store)->UnfinishedJobs();
  if (!unfinished.ok()) return unfinished.status();
  for (const Job& job : *unfinished) {
    if (!options.queues.Find(job.queue)) {
      return Status::InvalidArgument(
          "job " + std::to_string(job.id) + " is unfinished on queue " + job.queue +
          ", which the configuration no longer has: configure queue." + job.queue + " again");
    }
    scheduler.Add(Scheduled(job, catalog.get(), options.queues));
  }

  std::unique_ptr<Replica> replica(new Replica(context, std::move(options), clock,
                                               std::move(store).value(), std::move(scheduler)));
  replica->catalog_ = std::move(catalog);
  replica->queue_settings_ = std::move(settings).value();
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
  FERRY_RETURN_IF_ERROR(replica->LoadFinishedCounts());
  for (const auto& queue : replica->options_.queues.queues()) {
    replica->supervisors_.emplace(queue.name, WorkerSupervisor::Options{
                                                  .program = replica->options_.worker_program,
                                                  .queue = queue.name,
                                                  .replica_endpoint = replica->worker_endpoint_,
                                                  .db_path = replica->options_.db_path,
                                                  .log_path = replica->options_.worker_log,
                                                  .extra_args = replica->options_.worker_args,
                                                  .processes = queue.processes,
                                              });
  }
  return replica;
}

Replica::Replica(zmq::context_t& context, ReplicaOptions options, const Clock* clock,
                 std::unique_ptr<ReplicaStore> store, BatchQueues scheduler)
    : options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      scheduler_(std::move(scheduler)),
      stream_socket_(context, zmq::socket_type::dealer),
      worker_socket_(context, zmq::socket_type::router),
      control_socket_(context, zmq::socket_type::router) {
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
          worker_endpoint_ + ", next sequence " + std::to_string(LastReceived() + 1) + ", " +
          std::to_string(scheduler_.size()) + " unfinished jobs");
  for (const auto& warning : options_.queues.Warnings()) LogWarning(warning);
  // What an earlier session stored is acknowledged (by our hello) only once it is durable.
  acknowledged_ = store_->LastReceivedSequence();
  Status synced = store_->Sync();
  if (!synced.ok()) return synced.Annotate("syncing the replica database");
  SayHello();
  while (!stop.load()) {
    auto now = clock_->Steady();
    if (sync_due_ && now >= *sync_due_) SyncAndAcknowledge();
    CheckWorkers();
    // Until the master answers, hello often: the first one is dropped while connecting.
    if (now - last_heard_from_master_ > options_.master_timeout &&
        now - last_hello_ > std::min<std::chrono::milliseconds>(options_.master_timeout / 3,
                                                                std::chrono::milliseconds(250))) {
      // Said once a silence, after the master had been heard: a stalled stream shows in the log.
      if (last_heard_from_master_ != std::chrono::steady_clock::time_point{} &&
          !silence_reported_) {
        LogWarning("no word from the master for " +
                   std::to_string(options_.master_timeout.count()) +
                   " ms (received up to sequence " + std::to_string(LastReceived()) +
                   "); saying hello again");
        silence_reported_ = true;
      }
      SayHello();
    }
    if (now >= next_prune_) Prune();
    Dispatch();
    zmq::pollitem_t items[] = {{stream_socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {worker_socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {control_socket_.handle(), 0, ZMQ_POLLIN, 0}};
    // 100 ms bounds how late a retry, a restart or `stop` is noticed.
    auto wait = std::chrono::milliseconds(100);
    if (sync_due_) {
      wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*sync_due_ - clock_->Steady()),
                        std::chrono::milliseconds(0), wait);
    }
    Status polled = Poll(items, 3, wait);
    if (polled.code() == Status::Code::kUnavailable) break;
    FERRY_RETURN_IF_ERROR(polled);
    // Workers first: a worker that finished its batch is idle again when what arrived
    // meanwhile is handed out.
    if (items[1].revents & ZMQ_POLLIN) HandleWorkers();
    if (items[0].revents & ZMQ_POLLIN) HandleStream();
    if (items[2].revents & ZMQ_POLLIN) HandleControl();
  }
  SyncAndAcknowledge();
  supervisors_.clear();  // SIGTERM to each worker; each finishes its job first
  LogInfo("replica " + options_.site + " stopped");
  return Status::Ok();
}

void Replica::SayHello() {
  // Asking for the next sequence acknowledges everything before it: only once durable.
  SyncAndAcknowledge();
  wire::Envelope hello;
  hello.mutable_stream_hello()->set_site(options_.site);
  // From the first sequence not acknowledged: if the sync failed, what follows it is sent again
  // (and dropped as a duplicate if we hold it).
  hello.mutable_stream_hello()->set_next_sequence(acknowledged_ + 1);
  last_hello_ = clock_->Steady();
  (void)Send(stream_socket_, hello);  // fails while not connected; the timer tries again
}

void Replica::HandleStream() {
  std::vector<ReceivedMessage> batch;
  bool gap = false;
  // At most a batch's worth at a time: the loop serves the workers between two.
  while (batch.size() < kMaxBatch) {
    auto received = TryReceiveStream(stream_socket_);
    if (!received) break;
    if (!received->ok()) {
      LogWarning("stream: rejected message: " + received->status().message());
      continue;
    }
    last_heard_from_master_ = clock_->Steady();
    silence_reported_ = false;
    const uint64_t expected = LastReceived() + batch.size() + 1;
    if (auto& message = (*received)->replication_message) {
      const wire::ReplicationMessageHeader& header = message->header;
      if (header.site() != options_.site) {
        LogWarning("stream: dropped a message for site '" + header.site() + "'; this is " +
                   options_.site);
      } else if (header.sequence() < expected) {
        // A duplicate of what we hold (a resend after a hello): nothing to do.
      } else if (header.sequence() > expected) {
        gap = true;
      } else {
        batch.push_back(std::move(*message));
      }
      continue;
    }
    const wire::Envelope& envelope = (*received)->envelope;
    if (envelope.has_stream_reset()) {
      const wire::StreamReset& reset = envelope.stream_reset();
      Receive(std::move(batch));
      batch.clear();
      if (!StoreUnstored()) return;
      if (reset.next_sequence() <= LastReceived()) continue;  // a stale reset
      Status skipped = store_->SkipTo(reset.next_sequence() - 1);
      if (!skipped.ok()) {
        LogError("stream reset to " + std::to_string(reset.next_sequence()) + ": " +
                 skipped.message());
        return;
      }
      LogWarning("the master resets this site's stream to sequence " +
                 std::to_string(reset.next_sequence()) + ", a snapshot: " + reset.reason());
    } else if (envelope.has_heartbeat()) {
      // Everything sent before the heartbeat arrives before it: what we lack was lost.
      if (envelope.heartbeat().last_sent_sequence() >= expected && batch.empty()) gap = true;
    } else if (envelope.has_error()) {
      LogError("master refused this site: " + envelope.error().message());
    } else {
      LogWarning("stream: unexpected " + BodyName(envelope) + " from the master");
    }
  }
  if (!batch.empty()) {
    Receive(std::move(batch));
    // A worker that finished meanwhile gets its next batch before the poll loop syncs.
    HandleWorkers();
  } else if (gap) {
    SayHello();  // the master streams again from the first sequence we lack
  }
}

void Replica::Receive(std::vector<ReceivedMessage> batch) {
  if (batch.empty()) return;
  const int64_t now_us = clock_->NowMicros();
  for (ReceivedMessage& message : batch) {
    message.received_at_us = now_us;
    Post(message);
    unstored_.push_back(std::move(message));
  }
  // Acknowledged once stored and synced: at once past kSyncEvery, else after the interval.
  if (options_.sync_interval.count() == 0 || LastReceived() - acknowledged_ >= kSyncEvery) {
    sync_due_ = clock_->Steady();  // by the poll loop
  } else if (!sync_due_) {
    sync_due_ = clock_->Steady() + options_.sync_interval;
  }
}

const ReceivedMessage* Replica::Unstored(uint64_t job_id) const {
  const uint64_t first = store_->LastReceivedSequence() + 1;
  // An unstored message's job has its sequence as id.
  if (job_id < first || job_id - first >= unstored_.size()) return nullptr;
  return &unstored_[job_id - first];
}

bool Replica::StoreUnstored() {
  if (unstored_.empty()) return true;
  auto stored = store_->StoreMessages(
      unstored_, [this](wire::MessageClass c) { return options_.queues.QueueFor(c).name; },
      clock_->NowMicros());
  if (!stored.ok()) {
    LogError("storing messages " + std::to_string(unstored_.front().header.sequence()) + ".." +
             std::to_string(unstored_.back().header.sequence()) + ": " + stored.status().message());
    return false;  // kept; not acknowledged until stored and synced
  }
  unstored_.clear();
  return true;
}

void Replica::SyncAndAcknowledge() {
  if (LastReceived() <= acknowledged_) {
    sync_due_.reset();
    return;
  }
  // Not acknowledged after a failure (logged by whichever step failed): the master keeps the
  // messages, and we try again after the next interval.
  bool synced = StoreUnstored();
  if (synced) {
    Status durable = store_->Sync();
    if (!durable.ok()) LogError("syncing received messages: " + durable.message());
    synced = durable.ok();
  }
  if (!synced) {
    sync_due_ = clock_->Steady() + std::max(options_.sync_interval, std::chrono::milliseconds(100));
    return;
  }
  sync_due_.reset();
  acknowledged_ = store_->LastReceivedSequence();
  wire::Envelope ack;
  ack.mutable_ack()->set_site(options_.site);
  ack.mutable_ack()->set_sequence(acknowledged_);
  Status sent = Send(stream_socket_, ack);
  if (!sent.ok()) {
    // The master's window stays where it was until a later ack or our next hello.
    LogWarning("ack of sequence " + std::to_string(acknowledged_) + " not sent: " + sent.message());
  }
}

void Replica::Post(const ReceivedMessage& message) {
  const uint64_t sequence = message.header.sequence();
  // A worker stored it before a crash took our record of it: its job exists, and if it is
  // unfinished the scheduler has it since the start.
  if (store_->StoredBeyondLastReceived().count(sequence)) return;
  Job job;
  job.id = job.sequence = sequence;
  job.queue = options_.queues.QueueFor(message.header.message_class()).name;
  // Only a configuration (its catalog), a snapshot (a barrier) and dependency ordering (the
  // rows a job touches) need the whole message; the others are scheduled by their class.
  const wire::MessageClass message_class = message.header.message_class();
  if (message_class != wire::RECEIVE_MESSAGE || OrdersByRows(options_.queues, job.queue)) {
    // A message that does not parse fails in its worker, which says so in the job's error.
    (void)job.message.ParseFromString(message.bytes);
  }
  job.message.set_message_class(message_class);
  if (job.message.message_class() == wire::RECEIVE_CONFIGURATION) {
    if (auto catalog = CatalogOf(job.message.configuration())) catalog_ = std::move(catalog);
  }
  scheduler_.Add(Scheduled(job, catalog_.get(), options_.queues));
}

void Replica::Dispatch() {
  const auto now = clock_->Steady();
  for (const auto& queue : options_.queues.queues()) {
    std::vector<std::pair<const std::string*, WorkerSession*>> idle;
    for (auto& [identity, session] : sessions_) {
      if (session.queue == queue.name && session.batch.empty() && !session.retiring) {
        idle.emplace_back(&identity, &session);
      }
    }
    if (idle.empty()) continue;
    std::sort(idle.begin(), idle.end(), [](const auto& a, const auto& b) {
      return a.second->idle_since < b.second->idle_since;
    });
    size_t next_worker = 0;
    for (auto& batch : scheduler_.RunnableBatches(queue.name, now, idle.size(), kMaxBatch)) {
      auto [identity, session] = idle[next_worker];
      wire::Envelope assignment;
      assignment.mutable_job_assignment()->set_session_id(session->id);
      for (uint64_t job_id : batch) {
        wire::AssignedJob* job = assignment.mutable_job_assignment()->add_jobs();
        job->set_job_id(job_id);
        job->set_attempt(scheduler_.NextAttempt(job_id));
        if (const ReceivedMessage* message = Unstored(job_id)) {
          job->set_message(message->bytes);
          job->set_received_at_us(message->received_at_us);
        }
      }
      Status sent = Send(worker_socket_, assignment, *identity);
      if (!sent.ok()) {
        LogWarning("worker session " + session->id + " unreachable: " + sent.message());
        session->retiring = true;  // its process check will remove it
        ++next_worker;             // the next batch goes to another idle worker
        continue;
      }
      scheduler_.Started(batch);
      session->batch = std::move(batch);
      ++next_worker;
    }
  }
}

void Replica::OnJobResult(const wire::JobResult& result, const std::string& queue) {
  if (!scheduler_.Contains(result.job_id())) return;
  if (result.ready()) {
    CountFinished(result.job_id(), "Ready");
    scheduler_.Succeeded(result.job_id());
    return;
  }
  last_error_ = result.error();
  const std::string job = "job " + std::to_string(result.job_id());
  if (scheduler_.Failed(result.job_id(), clock_->Steady())) {
    LogError(job + " of queue " + queue + " failed its last allowed attempt and is held " +
             "(ferryctl job retry|skip " + std::to_string(result.job_id()) +
             "): " + result.error());
  } else {
    LogWarning(job + " failed and will be retried in " +
               Millis(*scheduler_.RetryAt(result.job_id()) - clock_->Steady()) + ": " +
               result.error());
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
      const wire::WorkerHello& hello = envelope.worker_hello();
      if (!options_.queues.Find(hello.queue())) {
        const std::string reason = "worker " + std::to_string(hello.pid()) + " asked for queue '" +
                                   hello.queue() + "', which this replica does not have";
        LogWarning(reason);
        (void)Send(worker_socket_, ErrorEnvelope(0, wire::NOT_FOUND, reason), received->identity);
        continue;
      }
      if (sessions_.count(received->identity)) continue;  // a keepalive
      WorkerSession& session = sessions_[received->identity];
      session.id = "W" + std::to_string(next_session_number_++);
      session.pid = hello.pid();
      session.queue = hello.queue();
      session.started_at_us = clock_->NowMicros();
      session.idle_since = clock_->Steady();
      LogInfo("worker session " + session.id + " (pid " + std::to_string(session.pid) +
              ") serves queue " + session.queue);
    } else if (envelope.has_job_outcome()) {
      const wire::JobOutcome& outcome = envelope.job_outcome();
      auto it = sessions_.find(received->identity);
      if (it == sessions_.end() || it->second.batch.empty() || outcome.results().empty() ||
          it->second.batch.front() != outcome.results(0).job_id()) {
        // A worker that was asked to stop, or was taken for dead, and finished after all: a
        // success counts unless the job has been handed to someone else meanwhile.
        for (const auto& result : outcome.results()) {
          if (result.ready() && scheduler_.Contains(result.job_id()) &&
              scheduler_.StateOf(result.job_id()) != BatchQueues::State::kExecuting) {
            CountFinished(result.job_id(), "Ready");
            scheduler_.Succeeded(result.job_id());
          }
        }
        continue;
      }
      WorkerSession& session = it->second;
      std::set<uint64_t> attempted;
      for (const auto& result : outcome.results()) {
        attempted.insert(result.job_id());
        OnJobResult(result, session.queue);
      }
      // The jobs after a failed one were not attempted: they may start again at once.
      for (uint64_t job_id : session.batch) {
        if (!attempted.count(job_id) && scheduler_.Contains(job_id)) scheduler_.Lost(job_id);
      }
      session.batch.clear();
      session.idle_since = clock_->Steady();
    } else {
      LogWarning("worker port: unexpected " + BodyName(envelope));
    }
  }
  Dispatch();
}

void Replica::CheckWorkers() {
  const auto now = clock_->Steady();
  for (auto& [queue, supervisor] : supervisors_) {
    for (pid_t pid : supervisor.Tick(now)) OnWorkerGone(pid);
  }
  // Workers started by hand are not our children: ask the kernel whether they still live.
  std::vector<int> gone;
  for (const auto& [identity, session] : sessions_) {
    const auto supervisor = supervisors_.find(session.queue);
    if (supervisor != supervisors_.end() && supervisor->second.Owns(session.pid)) continue;
    if (kill(session.pid, 0) != 0 && errno == ESRCH) gone.push_back(session.pid);
  }
  for (int pid : gone) OnWorkerGone(pid);
}

void Replica::OnWorkerGone(int pid) {
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.pid != pid) continue;
    if (!it->second.batch.empty()) {
      LogWarning("job " + std::to_string(it->second.batch.front()) +
                 (it->second.batch.size() > 1
                      ? " and " + std::to_string(it->second.batch.size() - 1) + " after it"
                      : std::string()) +
                 " lost their worker " + it->second.id + " (pid " + std::to_string(pid) +
                 "); they will be handed out again");
      for (uint64_t job_id : it->second.batch) {
        if (scheduler_.Contains(job_id)) scheduler_.Lost(job_id);
      }
    }
    sessions_.erase(it);
    return;
  }
}

void Replica::Prune() {
  const auto interval = std::clamp<std::chrono::seconds>(
      options_.job_retention / 10, std::chrono::seconds(1), std::chrono::seconds(60));
  next_prune_ = clock_->Steady() + interval;
  const int64_t before =
      clock_->NowMicros() -
      std::chrono::duration_cast<std::chrono::microseconds>(options_.job_retention).count();
  ReplicaStore::JobCounts removed;
  auto pruned = store_->PruneFinished(before, &removed);
  if (!pruned.ok()) {
    LogError("pruning finished jobs: " + pruned.status().message());
    return;
  }
  if (*pruned > 0) LogInfo("pruned " + std::to_string(*pruned) + " finished jobs");
  for (const auto& [queue, by_state] : removed) {
    for (const auto& [state, n] : by_state) finished_counts_[queue][state] -= n;
  }
}

Status Replica::LoadFinishedCounts() {
  auto counts = store_->CountJobs();
  if (!counts.ok()) return counts.status();
  for (const auto& [queue, by_state] : *counts) {
    for (const char* state : {"Ready", "Skipped"}) {
      auto it = by_state.find(state);
      if (it != by_state.end()) finished_counts_[queue][state] = it->second;
    }
  }
  return Status::Ok();
}

void Replica::CountFinished(uint64_t job_id, const char* state) {
  ++finished_counts_[scheduler_.QueueOf(job_id)][state];
}

uint64_t Replica::LastAppliedSequence() const {
  // Everything before the oldest unfinished job has been applied (or skipped).
  if (auto oldest = scheduler_.OldestUnfinishedSequence()) return *oldest - 1;
  return LastReceived();
}

StatusOr<wire::ReplicaStatus> Replica::CurrentStatus() {
  wire::ReplicaStatus status;
  status.set_site(options_.site);
  status.set_running(true);
  status.set_pid(getpid());
  status.set_session_id(session_id_);
  status.set_master_connected(clock_->Steady() - last_heard_from_master_ < options_.master_timeout);
  status.set_last_received_sequence(LastReceived());
  status.set_last_applied_sequence(LastAppliedSequence());
  auto unfinished = scheduler_.Counts();
  for (const auto& config : options_.queues.queues()) {
    const auto view = scheduler_.View(config.name);
    wire::QueueStatus* queue = status.add_queues();
    queue->set_name(config.name);
    queue->set_processes(view.config->processes);
    queue->set_ordering(OrderingName(view.config->ordering));
    queue->set_paused(view.paused);
    queue->set_executing(view.executing);
    for (auto c : config.classes) queue->add_classes(MessageClassName(c));
    for (const char* state : {"Posted", "Waiting", "Executing", "Error"}) {
      if (uint64_t n = unfinished[config.name][state]) {
        wire::StateCount* count = queue->add_jobs();
        count->set_state(state);
        count->set_count(n);
      }
    }
    for (const char* state : {"Ready", "Skipped"}) {
      if (uint64_t n = finished_counts_[config.name][state]) {
        wire::StateCount* count = queue->add_jobs();
        count->set_state(state);
        count->set_count(n);
      }
    }
  }
  for (const auto& [identity, session] : sessions_) {
    wire::WorkerSession* worker = status.add_workers();
    worker->set_session_id(session.id);
    worker->set_pid(session.pid);
    worker->set_queue(session.queue);
    worker->set_current_job(session.batch.empty() ? 0 : session.batch.front());
    worker->set_started_at_us(session.started_at_us);
  }
  status.set_last_error(last_error_);
  return status;
}

wire::Envelope Replica::OnQueueCommand(const wire::QueueCommand& command) {
  wire::Envelope reply;
  QueueConfig* queue = options_.queues.Find(command.queue());
  if (!queue) {
    return ErrorEnvelope(0, wire::NOT_FOUND, "no queue named '" + command.queue() + "'");
  }
  // Only what this command changes: a pause must not pin the configured process count.
  QueueSetting setting = queue_settings_[queue->name];
  std::string done;
  switch (command.action()) {
    case wire::QueueCommand::SET_PROCESSES: {
      const int processes = static_cast<int>(command.processes());
      Status set = scheduler_.SetProcesses(queue->name, processes);
      if (!set.ok()) return ErrorEnvelope(0, ErrorCodeFor(set), set.message());
      std::set<pid_t> busy;
      for (const auto& [identity, session] : sessions_) {
        if (session.queue == queue->name && !session.batch.empty()) busy.insert(session.pid);
      }
      for (pid_t pid : supervisors_.at(queue->name).SetProcesses(processes, busy)) {
        for (auto& [identity, session] : sessions_) {
          if (session.pid == pid) session.retiring = true;
        }
      }
      done = "queue " + queue->name + ": " + std::to_string(processes) + " processes (was " +
             std::to_string(queue->processes) + ")";
      queue->processes = processes;
      setting.processes = processes;
      break;
    }
    case wire::QueueCommand::PAUSE:
    case wire::QueueCommand::RESUME:
      setting.paused = command.action() == wire::QueueCommand::PAUSE;
      (void)scheduler_.SetPaused(queue->name, setting.paused);
      done = "queue " + queue->name +
             (setting.paused ? " paused: no job of it starts until "
                               "ferryctl queue resume " +
                                   queue->name
                             : " resumed");
      break;
    default:
      return ErrorEnvelope(0, wire::INVALID_ARGUMENT, "no queue action given");
  }
  queue_settings_[queue->name] = setting;
  Status saved = store_->SaveQueueSetting(queue->name, setting);
  if (saved.ok()) saved = store_->Sync();  // an operator's word survives a power cut
  if (!saved.ok()) {
    done += " (not kept across a restart: " + saved.message() + ")";
    LogError(done);
  } else {
    LogInfo(done);
  }
  reply.mutable_command_reply()->set_message(done);
  Dispatch();
  return reply;
}

wire::Envelope Replica::OnJobCommand(const wire::JobCommand& command) {
  wire::Envelope reply;
  const uint64_t id = command.job_id();
  const std::string job = "job " + std::to_string(id);
  if (command.action() == wire::JobCommand::WHY) {
    auto why = Why(id);
    if (!why.ok()) return ErrorEnvelope(0, ErrorCodeFor(why.status()), why.status().message());
    *reply.mutable_job_why() = std::move(why).value();
    return reply;
  }
  if (command.action() != wire::JobCommand::RETRY && command.action() != wire::JobCommand::SKIP) {
    return ErrorEnvelope(0, wire::INVALID_ARGUMENT, "no job action given");
  }
  const bool retry = command.action() == wire::JobCommand::RETRY;
  const std::string queue = scheduler_.Contains(id) ? scheduler_.QueueOf(id) : std::string();
  Status checked = retry ? scheduler_.Retry(id, clock_->Steady()) : scheduler_.Skip(id);
  if (!checked.ok()) return ErrorEnvelope(0, ErrorCodeFor(checked), checked.message());
  if (!retry) ++finished_counts_[queue]["Skipped"];
  Status stored = retry ? store_->MarkReleased(id) : store_->MarkSkipped(id, clock_->NowMicros());
  if (stored.ok()) stored = store_->Sync();
  std::string done = retry ? job + " will run again" : job + " skipped: it will not be applied";
  if (!stored.ok()) {
    done += " (not kept across a restart: " + stored.message() + ")";
    LogError(done + " (operator)");
  } else {
    LogInfo(done + " (operator)");
  }
  reply.mutable_command_reply()->set_message(done);
  Dispatch();
  return reply;
}

StatusOr<wire::JobWhy> Replica::Why(uint64_t job_id) {
  wire::JobWhy why;
  why.set_job_id(job_id);
  const std::string job = "job " + std::to_string(job_id);
  if (!scheduler_.Contains(job_id)) {
    auto records = store_->ListJobs("", "", job_id, 1);
    if (!records.ok()) return records.status();
    if (records->empty()) return Status::NotFound(job + " does not exist (or was pruned)");
    why.set_state(records->front().state());
    why.set_summary(job + " is " + why.state() + ": it waits for nothing");
    return why;
  }
  const auto state = scheduler_.StateOf(job_id);
  why.set_state(BatchQueues::StateName(state));
  for (const auto& blocker : scheduler_.WaitsFor(job_id)) {
    wire::Blocker* b = why.add_blockers();
    b->set_job_id(blocker.job_id);
    b->set_reason(blocker.reason);
  }
  const std::string& queue = scheduler_.QueueOf(job_id);
  switch (state) {
    case BatchQueues::State::kExecuting:
      why.set_summary(job + " is executing");
      break;
    case BatchQueues::State::kError: {
      // The error text is the store's: the scheduler keeps no job's words.
      auto records = store_->ListJobs("", "", job_id, 1);
      const std::string error = records.ok() && !records->empty() ? records->front().error() : "";
      if (scheduler_.Held(job_id)) {
        why.set_summary(job +
                        " failed its last allowed attempt and holds what waits for it: "
                        "ferryctl job retry " +
                        std::to_string(job_id) +
                        " once the cause is "
                        "fixed, or ferryctl job skip " +
                        std::to_string(job_id) + ". Last error: " + error);
      } else {
        why.set_summary(job + " failed and runs again in " +
                        Millis(*scheduler_.RetryAt(job_id) - clock_->Steady()) +
                        ". Last error: " + error);
      }
      break;
    }
    case BatchQueues::State::kWaiting: {
      std::string summary = job + " waits for";
      for (int i = 0; i < why.blockers_size(); ++i) {
        summary += (i ? "; job " : " job ") + std::to_string(why.blockers(i).job_id()) + " (" +
                   why.blockers(i).reason() + ")";
      }
      why.set_summary(summary);
      break;
    }
    case BatchQueues::State::kPosted: {
      const auto view = scheduler_.View(queue);
      why.set_summary(view.paused ? job + " waits: queue " + queue + " is paused"
                                  : job + " waits for a free process of queue " + queue + " (" +
                                        std::to_string(view.executing) + " of " +
                                        std::to_string(view.config->processes) + " executing)");
      break;
    }
  }
  return why;
}

StatusOr<wire::JobList> Replica::ListJobs(const wire::JobQuery& query) {
  const size_t limit = query.limit() ? query.limit() : 100;
  wire::JobList list;
  // Every unfinished job is in the scheduler, with its live state: Waiting is not stored
  // (such a job is Posted there), and a stored Error or Executing may be stale.
  const bool live = query.state() == "Waiting" || query.state() == "Posted" ||
                    query.state() == "Executing" || query.state() == "Error";
  if (live) {
    for (uint64_t id : scheduler_.NewestIn(query.queue(), query.state(), limit)) {
      if (query.job_id() != 0 && id != query.job_id()) continue;
      auto records = store_->ListJobs("", "", id, 1);
      if (!records.ok()) return records.status();
      for (auto& record : *records) {
        record.set_state(query.state());
        *list.add_jobs() = std::move(record);
      }
    }
    return list;
  }
  auto records = store_->ListJobs(query.queue(), query.state(), query.job_id(), limit);
  if (!records.ok()) return records.status();
  for (auto& record : *records) {
    if (scheduler_.Contains(record.job_id())) {
      record.set_state(BatchQueues::StateName(scheduler_.StateOf(record.job_id())));
    }
    // A Ready job whose outcome the replica has not yet taken is still Executing here.
    if (!query.state().empty() && record.state() != query.state()) continue;
    *list.add_jobs() = std::move(record);
  }
  return list;
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
    // What operators read and change of the jobs is the store's: every job in it first.
    if (!request.has_status_request()) (void)StoreUnstored();
    wire::Envelope reply;
    if (request.has_status_request()) {
      auto status = CurrentStatus();
      if (status.ok()) {
        *reply.mutable_status_reply()->mutable_replica() = std::move(status).value();
      } else {
        reply = ErrorEnvelope(0, wire::INTERNAL, status.status().message());
      }
    } else if (request.has_queue_command()) {
      reply = OnQueueCommand(request.queue_command());
    } else if (request.has_job_command()) {
      reply = OnJobCommand(request.job_command());
    } else if (request.has_job_query()) {
      auto list = ListJobs(request.job_query());
      if (list.ok()) {
        *reply.mutable_job_list() = std::move(list).value();
      } else {
        reply = ErrorEnvelope(0, wire::INTERNAL, list.status().message());
      }
    } else {
      reply = ErrorEnvelope(0, wire::UNEXPECTED,
                            "the control port takes StatusRequest, QueueCommand, JobCommand or "
                            "JobQuery, not " +
                                BodyName(request));
    }
    reply.set_request_id(request.request_id());
    (void)Send(control_socket_, reply, received->identity);
  }
}

}  // namespace ferry
