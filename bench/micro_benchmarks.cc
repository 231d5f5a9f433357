// Google Benchmark micro-benchmarks of the hot paths: the codec (encode and decode of a
// workload transaction's replication message), the batch queue's dispatch decision with
// 10,000 waiting jobs (strict and dependency ordering), the status counts, the master's
// commit and a worker's apply. Run by bench/run.sh.
#include <benchmark/benchmark.h>

#include "common/catalog.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/workload.h"
#include "master/master_store.h"
#include "replica/batch_queues.h"
#include "replica/replica_store.h"

namespace ferry {
namespace {

std::shared_ptr<const Catalog> DeployedCatalog() {
  static auto catalog = [] {
    auto loaded = Catalog::Load(FERRY_SOURCE_DIR "/deploy/master_configuration.txtpb");
    if (!loaded.ok()) std::abort();
    return *loaded;
  }();
  return catalog;
}

// The deployed catalog with an index on every reference (none `unindexed`).
config::MasterConfiguration EveryReferenceIndexed() {
  config::MasterConfiguration config = DeployedCatalog()->proto();
  for (auto& lu : *config.mutable_lus()) {
    for (auto& reference : *lu.mutable_references()) reference.set_unindexed(false);
  }
  return config;
}

wire::Envelope WorkloadMessage(uint64_t i) {
  OrdersWorkload workload;
  wire::SubmitRequest request;
  for (uint64_t k = 1; k <= i; ++k) request = workload.Transaction(k);
  wire::Envelope envelope;
  wire::ReplicationMessage* message = envelope.mutable_replication_message();
  message->set_site("SITE-A");
  message->set_sequence(i);
  message->set_message_class(wire::RECEIVE_MESSAGE);
  *message->mutable_changes() = request.changes();
  return envelope;
}

void BM_Encode(benchmark::State& state) {
  const wire::Envelope envelope = WorkloadMessage(50);  // a transaction with all five steps
  for (auto _ : state) benchmark::DoNotOptimize(Encode(envelope));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Encode);

void BM_Decode(benchmark::State& state) {
  const std::vector<zmq::message_t> frames = Encode(WorkloadMessage(50));
  for (auto _ : state) benchmark::DoNotOptimize(Decode(frames));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Decode);

// Adds the workload's transaction `id` as a job of the REPLICATION queue.
void AddWorkloadJob(BatchQueues& scheduler, OrdersWorkload& workload, uint64_t id) {
  wire::ReplicationMessage message;
  message.set_message_class(wire::RECEIVE_MESSAGE);
  *message.mutable_changes() = workload.Transaction(id).changes();
  BatchQueues::NewJob job;
  job.id = job.sequence = id;
  job.queue = kReplicationQueue;
  job.footprint = FootprintOf(DeployedCatalog().get(), message);
  scheduler.Add(std::move(job));
}

QueueSet ReplicationQueue(const char* ordering) {
  auto queues = QueueSet::FromSettings(
      {{"queue.REPLICATION.ordering", ordering}, {"queue.REPLICATION.processes", "2"}});
  if (!queues.ok()) std::abort();
  return *queues;
}

// 10,000 waiting jobs of the workload in a queue of `ordering`, with 2 processes; each
// iteration decides what may start, starts it, and finishes it, so the queue stays full.
void Dispatch(benchmark::State& state, const char* ordering, size_t batch) {
  BatchQueues scheduler(ReplicationQueue(ordering));
  OrdersWorkload workload;
  uint64_t next = 1;
  auto add = [&] { AddWorkloadJob(scheduler, workload, next++); };
  for (int i = 0; i < 10000; ++i) add();
  const auto now = std::chrono::steady_clock::now();
  size_t decided = 0;
  for (auto _ : state) {
    auto batches = scheduler.RunnableBatches(kReplicationQueue, now, 1, batch);
    if (batches.empty()) std::abort();
    scheduler.Started(batches.front());
    for (uint64_t id : batches.front()) scheduler.Succeeded(id);
    decided += batches.front().size();
    state.PauseTiming();
    for (size_t i = 0; i < batches.front().size(); ++i) add();  // keep 10,000 waiting
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(decided));
}
void BM_DispatchStrict(benchmark::State& state) { Dispatch(state, "strict", 1); }
void BM_DispatchDependency(benchmark::State& state) { Dispatch(state, "dependency", 1); }
void BM_DispatchStrictBatch(benchmark::State& state) { Dispatch(state, "strict", 256); }
void BM_DispatchDependencyBatch(benchmark::State& state) { Dispatch(state, "dependency", 256); }
BENCHMARK(BM_DispatchStrict);
BENCHMARK(BM_DispatchDependency);
BENCHMARK(BM_DispatchStrictBatch);
BENCHMARK(BM_DispatchDependencyBatch);

// What every status request counts: 10,000 unfinished jobs by queue and state.
void BM_StatusCounts(benchmark::State& state) {
  BatchQueues scheduler(ReplicationQueue("strict"));
  OrdersWorkload workload;
  for (uint64_t id = 1; id <= 10000; ++id) AddWorkloadJob(scheduler, workload, id);
  for (auto _ : state) benchmark::DoNotOptimize(scheduler.Counts());
}
BENCHMARK(BM_StatusCounts);

// The master's commit of workload transactions 1, 2, ... after the set-up, on a SQLite file in
// the current folder: "Time" includes the fsync, "CPU" is what the commit path costs.
void BM_MasterCommit(benchmark::State& state) {
  const std::string path = "ferry-micro-master.db";
  for (const char* suffix : {"", "-wal", "-shm", "-commits"}) std::remove((path + suffix).c_str());
  auto store = OpenSqliteMasterStore(path, DeployedCatalog());
  if (!store.ok()) std::abort();
  OrdersWorkload workload;
  for (const auto& request : workload.SetUp()) {
    if (!(*store)->Commit(request, 0).ok()) std::abort();
  }
  uint64_t i = 1;
  for (auto _ : state) {
    state.PauseTiming();
    const wire::SubmitRequest request = workload.Transaction(i++);
    state.ResumeTiming();
    if (!(*store)->Commit(request, 0).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  for (const char* suffix : {"", "-wal", "-shm", "-commits"}) std::remove((path + suffix).c_str());
}
BENCHMARK(BM_MasterCommit);

// A worker's apply: batches of `batch` workload jobs (after the configuration and the set-up)
// in one ReplicaStore::ApplyJobs each, on a SQLite file in the current folder, as many batches
// as the benchmark runs (the tables grow as they would in a catch-up). The messages are
// stored in the inbox untimed.
void BM_ApplyBatch(benchmark::State& state) {
  const std::string path = "ferry-micro-replica.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  auto store = OpenSqliteReplicaStore(path, {});
  if (!store.ok()) std::abort();
  uint64_t sequence = 0;
  // Stores `messages` as the next sequences and returns a first attempt at each one's job.
  auto store_jobs = [&](std::vector<wire::ReplicationMessage> messages) {
    std::vector<ReceivedMessage> received;
    for (auto& m : messages) {
      m.set_sequence(++sequence);
      received.push_back(AsReceived(m));
    }
    auto jobs = (*store)->StoreMessages(
        received, [](wire::MessageClass) { return std::string(kReplicationQueue); }, 0);
    if (!jobs.ok()) std::abort();
    std::vector<ReplicaStore::Attempt> attempts;
    for (const Job& job : *jobs) {
      ReplicaStore::Attempt& attempt = attempts.emplace_back();
      attempt.job_id = job.id;
      attempt.session_id = "bench";
      attempt.pid = 1;
    }
    return attempts;
  };
  auto apply = [&](const std::vector<ReplicaStore::Attempt>& attempts) {
    for (const Status& s : (*store)->ApplyJobs(attempts, *SystemClock::Default())) {
      if (!s.ok()) std::abort();
    }
  };
  auto message_of = [](wire::MessageClass message_class) {
    wire::ReplicationMessage m;
    m.set_message_class(message_class);
    return m;
  };
  wire::ReplicationMessage configuration = message_of(wire::RECEIVE_CONFIGURATION);
  *configuration.mutable_configuration() =
      state.range(1) ? EveryReferenceIndexed() : DeployedCatalog()->proto();
  apply(store_jobs({configuration}));
  OrdersWorkload workload;
  std::vector<wire::ReplicationMessage> set_up;
  for (const auto& request : workload.SetUp()) {
    set_up.push_back(message_of(wire::RECEIVE_MESSAGE));
    *set_up.back().mutable_changes() = request.changes();
  }
  apply(store_jobs(std::move(set_up)));
  const size_t batch = static_cast<size_t>(state.range(0));
  uint64_t next = 1;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<wire::ReplicationMessage> messages;
    for (size_t i = 0; i < batch; ++i) {
      messages.push_back(message_of(wire::RECEIVE_MESSAGE));
      *messages.back().mutable_changes() = workload.Transaction(next++).changes();
    }
    const auto attempts = store_jobs(std::move(messages));
    state.ResumeTiming();
    apply(attempts);
  }
  state.SetItemsProcessed(static_cast<int64_t>(next - 1));
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}
// Second argument 1: every reference indexed, as before the deployment left the orders' and
// lines' references unindexed.
BENCHMARK(BM_ApplyBatch)->Args({1, 0})->Args({1024, 0})->Args({1024, 1})->Iterations(30);

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
