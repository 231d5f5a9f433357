// Google Benchmark micro-benchmarks of two hot paths: the codec (encode and decode of a
// workload transaction's replication message) and the batch queue's dispatch decision with
// 10,000 waiting jobs (strict and dependency ordering). Run by bench/run.sh.
#include <benchmark/benchmark.h>

#include "common/catalog.h"
#include "common/codec.h"
#include "common/workload.h"
#include "master/master_store.h"
#include "replica/batch_queues.h"

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

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
