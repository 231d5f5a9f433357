#include "replica/batch_queues.h"

#include <algorithm>
#include <array>

namespace ferry {
namespace {

std::string RowId(const std::string& lu, const std::vector<std::string>& values) {
  std::string id = lu;
  for (const auto& v : values) {
    id += '/';
    id += v;
  }
  return id;
}

}  // namespace

Footprint FootprintOf(const Catalog* catalog, const wire::ReplicationMessage& message) {
  Footprint footprint;
  if (message.message_class() != wire::RECEIVE_MESSAGE || catalog == nullptr) {
    footprint.everything = true;
    return footprint;
  }
  for (const auto& change : message.changes()) {
    const config::LogicalUnit* lu = catalog->FindLu(change.lu());
    if (!lu) {
      footprint.everything = true;  // the apply will fail; keep it out of everyone's way
      return footprint;
    }
    auto value_of = [&change](const std::string& column) -> const std::string* {
      auto key = change.keys().find(column);
      if (key != change.keys().end()) return &key->second;
      auto attribute = change.attributes().find(column);
      return attribute == change.attributes().end() ? nullptr : &attribute->second;
    };
    std::vector<std::string> key;
    for (const auto& k : lu->key()) key.push_back(value_of(k) ? *value_of(k) : "");
    footprint.writes.push_back(RowId(lu->name(), key));
    footprint.references.push_back(lu->name() + "/*");
    if (change.action() == wire::REMOVE) {
      // Which children referenced the row is not in the change: wait for all their changes.
      for (const auto& [child, reference] : catalog->ReferencesTo(lu->name())) {
        footprint.writes.push_back(child->name() + "/*");
      }
      continue;
    }
    // A reference this change sets must exist; one it leaves alone was checked before.
    for (const auto& reference : lu->references()) {
      std::vector<std::string> target;
      for (const auto& column : reference.attributes()) {
        const std::string* value = value_of(column);
        if (!value) break;
        target.push_back(*value);
      }
      if (target.size() == static_cast<size_t>(reference.attributes_size())) {
        footprint.references.push_back(RowId(reference.lu(), target));
      }
    }
  }
  return footprint;
}

const char* BatchQueues::StateName(State state) {
  switch (state) {
    case State::kPosted:
      return "Posted";
    case State::kWaiting:
      return "Waiting";
    case State::kExecuting:
      return "Executing";
    case State::kError:
      return "Error";
  }
  return "?";
}

BatchQueues::BatchQueues(const QueueSet& queues) {
  for (const auto& config : queues.queues()) queues_[config.name].config = config;
}

void BatchQueues::Wait(Job& job, uint64_t on, std::string reason,
                       std::unordered_set<uint64_t>& seen) {
  auto it = jobs_.find(on);
  if (it == jobs_.end() || on == job.info.id) return;  // finished already, or itself
  if (!seen.insert(on).second) return;                 // one reason per job is enough
  job.waits_for.push_back({on, std::move(reason)});
  ++job.unfinished_waits;
  it->second.dependents.push_back(job.info.id);
}

void BatchQueues::Add(NewJob info) {
  const uint64_t id = info.id;
  Queue& queue = queues_.at(info.queue);
  Job& job = jobs_[id];
  job.info = std::move(info);
  const bool barrier = job.info.barrier || job.info.footprint.everything;
  std::unordered_set<uint64_t> seen;

  if (open_barrier_) Wait(job, open_barrier_, "configuration change before it", seen);
  if (barrier) {
    for (const auto& [sequence, other] : order_) {
      Wait(job, other, "earlier job (it is a barrier)", seen);
    }
  } else if (queue.config.ordering == Ordering::kStrict) {
    if (queue.last_job) Wait(job, queue.last_job, "strict order", seen);
  } else if (queue.config.ordering == Ordering::kDependency) {
    for (const auto& row : job.info.footprint.writes) {
      RowUse& use = rows_[row];
      if (use.writer) Wait(job, use.writer, "writes " + row, seen);
      for (uint64_t reader : use.readers) Wait(job, reader, "references " + row, seen);
      use.writer = id;
      use.readers.clear();
    }
    for (const auto& row : job.info.footprint.references) {
      RowUse& use = rows_[row];
      if (use.writer == id) continue;
      if (use.writer) Wait(job, use.writer, "writes " + row, seen);
      use.readers.insert(id);
    }
  }
  if (job.info.failed) {
    if (job.info.failures >= queue.config.retry.attempts) job.held = true;
  }
  if (barrier) open_barrier_ = id;
  queue.last_job = id;
  order_.emplace(job.info.sequence, id);
  if (job.unfinished_waits == 0) queue.free.emplace(job.info.sequence, id);
}

std::vector<uint64_t> BatchQueues::Runnable(const std::string& name, TimePoint now,
                                            size_t max) const {
  std::vector<uint64_t> out;
  for (const auto& batch : RunnableBatches(name, now, max, 1)) out.push_back(batch.front());
  return out;
}

std::optional<BatchQueues::TimePoint> BatchQueues::NextRetry() const {
  std::optional<TimePoint> next;
  for (const auto& [name, queue] : queues_) {
    for (const auto& [sequence, id] : queue.free) {
      const Job& job = jobs_.at(id);
      if (job.info.failed && !job.held && (!next || job.retry_at < *next)) next = job.retry_at;
    }
  }
  return next;
}

void BatchQueues::Started(const std::vector<uint64_t>& batch) {
  if (batch.empty()) return;
  Queue& queue = queues_.at(jobs_.at(batch.front()).info.queue);
  for (uint64_t id : batch) {
    Job& job = jobs_.at(id);
    queue.free.erase({job.info.sequence, id});
    ++job.info.attempts;
    job.executing = true;
    job.batch = batch.front();
  }
  batch_open_[batch.front()] = static_cast<int>(batch.size());
  ++queue.executing;
}

void BatchQueues::StopExecuting(Job& job, Queue& queue) {
  if (!job.executing) return;
  job.executing = false;
  auto open = batch_open_.find(job.batch);
  if (open != batch_open_.end() && --open->second == 0) {
    batch_open_.erase(open);
    --queue.executing;
  }
}

int BatchQueues::NextAttempt(uint64_t job_id) const { return jobs_.at(job_id).info.attempts + 1; }

std::vector<std::vector<uint64_t>> BatchQueues::RunnableBatches(const std::string& name,
                                                                TimePoint now, size_t max_batches,
                                                                size_t max_size) const {
  std::vector<std::vector<uint64_t>> batches;
  auto q = queues_.find(name);
  if (q == queues_.end() || q->second.paused || max_size == 0) return batches;
  const Queue& queue = q->second;
  const size_t slots =
      std::min<size_t>(max_batches, std::max(0, queue.config.processes - queue.executing));
  if (slots == 0) return batches;
  const bool single = queue.config.ordering == Ordering::kNone;
  std::vector<uint64_t> free;  // may start now, oldest first
  for (const auto& [sequence, id] : queue.free) {
    if (free.size() >= slots * (single ? 1 : max_size)) break;
    const Job& job = jobs_.at(id);
    if (job.held || (job.info.failed && now < job.retry_at)) continue;
    free.push_back(id);
  }
  if (free.empty()) return batches;
  // Free jobs shared out in consecutive runs, one run per batch.
  const size_t count = std::min(slots, free.size());
  const size_t per = (free.size() + count - 1) / count;
  std::unordered_set<uint64_t> taken(free.begin(), free.end());
  for (size_t start = 0; start < free.size(); start += per) {
    batches.emplace_back(free.begin() + start, free.begin() + std::min(free.size(), start + per));
  }
  if (queue.config.ordering != Ordering::kStrict) return batches;
  // A strict queue's batch goes on with the jobs after it, each waiting only for the one
  // before. (A dependency queue does not chain: one job that many wait for, like a set-up,
  // would pull them all into one worker; they go out when they are free instead.)
  for (auto& batch : batches) {
    std::unordered_set<uint64_t> members(batch.begin(), batch.end());
    const Job& first = jobs_.at(batch.front());
    for (auto it = order_.upper_bound({first.info.sequence, batch.front()});
         it != order_.end() && batch.size() < max_size; ++it) {
      const Job& job = jobs_.at(it->second);
      if (job.info.queue != name || taken.count(it->second)) continue;
      if (job.executing || job.info.failed || job.unfinished_waits == 0) break;
      const bool inside = std::all_of(
          job.waits_for.begin(), job.waits_for.end(),
          [&](const Blocker& b) { return members.count(b.job_id) || !jobs_.count(b.job_id); });
      if (!inside) break;
      batch.push_back(it->second);
      members.insert(it->second);
      taken.insert(it->second);
    }
  }
  return batches;
}

void BatchQueues::Succeeded(uint64_t job_id) { Finish(job_id); }

bool BatchQueues::Failed(uint64_t job_id, TimePoint now) {
  Job& job = jobs_.at(job_id);
  Queue& queue = queues_.at(job.info.queue);
  StopExecuting(job, queue);
  job.info.failed = true;
  ++job.info.failures;
  job.held = job.info.failures >= queue.config.retry.attempts;
  job.retry_at = now + queue.config.retry.DelayAfter(job.info.failures);
  if (job.unfinished_waits == 0) queue.free.emplace(job.info.sequence, job_id);
  return job.held;
}

void BatchQueues::Lost(uint64_t job_id) {
  Job& job = jobs_.at(job_id);
  Queue& queue = queues_.at(job.info.queue);
  if (!job.executing) return;
  StopExecuting(job, queue);
  if (job.unfinished_waits == 0) queue.free.emplace(job.info.sequence, job_id);
}

Status BatchQueues::Retry(uint64_t job_id, TimePoint now) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end())
    return Status::NotFound("job " + std::to_string(job_id) + " is not unfinished");
  Job& job = it->second;
  if (!job.info.failed || job.executing) {
    return Status::InvalidArgument("job " + std::to_string(job_id) + " is " +
                                   StateName(StateOf(job_id)) + ", not Error: nothing to retry");
  }
  job.held = false;
  job.info.failures = 0;
  job.retry_at = now;
  return Status::Ok();
}

Status BatchQueues::Skip(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end())
    return Status::NotFound("job " + std::to_string(job_id) + " is not unfinished");
  if (!it->second.info.failed || it->second.executing) {
    return Status::InvalidArgument("job " + std::to_string(job_id) + " is " +
                                   StateName(StateOf(job_id)) +
                                   "; only a job in Error can be skipped");
  }
  Finish(job_id);
  return Status::Ok();
}

void BatchQueues::Finish(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Queue& queue = queues_.at(it->second.info.queue);
  StopExecuting(it->second, queue);
  Job job = std::move(it->second);
  jobs_.erase(it);
  queue.free.erase({job.info.sequence, job_id});
  if (queue.last_job == job_id) queue.last_job = 0;
  if (open_barrier_ == job_id) open_barrier_ = 0;
  order_.erase({job.info.sequence, job_id});
  for (const auto& row : job.info.footprint.writes) {
    auto use = rows_.find(row);
    if (use != rows_.end() && use->second.writer == job_id) use->second.writer = 0;
  }
  for (const auto& row : job.info.footprint.references) {
    auto use = rows_.find(row);
    if (use != rows_.end()) use->second.readers.erase(job_id);
  }
  for (const auto& row : job.info.footprint.writes) {
    auto use = rows_.find(row);
    if (use != rows_.end() && use->second.writer == 0 && use->second.readers.empty())
      rows_.erase(use);
  }
  for (const auto& row : job.info.footprint.references) {
    auto use = rows_.find(row);
    if (use != rows_.end() && use->second.writer == 0 && use->second.readers.empty())
      rows_.erase(use);
  }
  for (uint64_t dependent_id : job.dependents) {
    auto dependent = jobs_.find(dependent_id);
    if (dependent == jobs_.end()) continue;
    Job& d = dependent->second;
    if (--d.unfinished_waits == 0 && !d.executing) {
      queues_.at(d.info.queue).free.emplace(d.info.sequence, dependent_id);
    }
  }
}

Status BatchQueues::SetProcesses(const std::string& name, int processes) {
  auto it = queues_.find(name);
  if (it == queues_.end()) return Status::NotFound("no queue named '" + name + "'");
  if (processes < 1 || processes > 64) {
    return Status::InvalidArgument("a queue has 1 to 64 processes, not " +
                                   std::to_string(processes));
  }
  it->second.config.processes = processes;
  return Status::Ok();
}

Status BatchQueues::SetPaused(const std::string& name, bool paused) {
  auto it = queues_.find(name);
  if (it == queues_.end()) return Status::NotFound("no queue named '" + name + "'");
  it->second.paused = paused;
  return Status::Ok();
}

BatchQueues::State BatchQueues::StateOf(uint64_t job_id) const { return StateOf(jobs_.at(job_id)); }

BatchQueues::State BatchQueues::StateOf(const Job& job) {
  if (job.executing) return State::kExecuting;
  if (job.info.failed) return State::kError;
  if (job.unfinished_waits > 0) return State::kWaiting;
  return State::kPosted;
}

std::vector<BatchQueues::Blocker> BatchQueues::WaitsFor(uint64_t job_id) const {
  std::vector<Blocker> out;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return out;
  for (const auto& blocker : it->second.waits_for) {
    if (jobs_.count(blocker.job_id)) out.push_back(blocker);
  }
  return out;
}

bool BatchQueues::Held(uint64_t job_id) const {
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second.held;
}

std::optional<BatchQueues::TimePoint> BatchQueues::RetryAt(uint64_t job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !it->second.info.failed || it->second.held) return std::nullopt;
  return it->second.retry_at;
}

BatchQueues::QueueView BatchQueues::View(const std::string& name) const {
  const Queue& queue = queues_.at(name);
  return {&queue.config, queue.paused, queue.executing};
}

std::map<std::string, std::map<std::string, uint64_t>> BatchQueues::Counts() const {
  // Asked for by every status request, over every unfinished job (tens of thousands during a
  // catch-up): one queue lookup per run of jobs of the same queue, states by index.
  constexpr size_t kStates = static_cast<size_t>(State::kError) + 1;
  std::map<std::string, std::array<uint64_t, kStates>> by_queue;
  const std::string* queue = nullptr;
  std::array<uint64_t, kStates>* counts = nullptr;
  for (const auto& [id, job] : jobs_) {
    if (!queue || *queue != job.info.queue) {
      queue = &job.info.queue;
      counts = &by_queue.try_emplace(*queue).first->second;
    }
    ++(*counts)[static_cast<size_t>(StateOf(job))];
  }
  std::map<std::string, std::map<std::string, uint64_t>> named;
  for (const auto& [name, states] : by_queue) {
    for (size_t state = 0; state < kStates; ++state) {
      if (states[state] > 0) named[name][StateName(static_cast<State>(state))] = states[state];
    }
  }
  return named;
}

std::vector<uint64_t> BatchQueues::NewestIn(const std::string& queue, const std::string& state,
                                            size_t max) const {
  std::vector<uint64_t> found;
  for (auto it = order_.rbegin(); it != order_.rend() && found.size() < max; ++it) {
    const uint64_t id = it->second;
    if (!queue.empty() && jobs_.at(id).info.queue != queue) continue;
    if (StateName(StateOf(id)) == state) found.push_back(id);
  }
  return found;
}

std::optional<uint64_t> BatchQueues::OldestUnfinishedSequence() const {
  if (order_.empty()) return std::nullopt;
  return order_.begin()->first;
}

}  // namespace ferry
