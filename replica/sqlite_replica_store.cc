#include <google/protobuf/arena.h>

#include <optional>

#include "common/catalog.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
#include "replica/queue_config.h"
#include "replica/replica_store.h"

namespace ferry {

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kPosted:
      return "Posted";
    case JobState::kExecuting:
      return "Executing";
    case JobState::kReady:
      return "Ready";
    case JobState::kError:
      return "Error";
    case JobState::kSkipped:
      return "Skipped";
  }
  return "?";
}

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS ferry_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_inbox (
  sequence INTEGER PRIMARY KEY,
  message_class INTEGER NOT NULL,
  transaction_id INTEGER NOT NULL,
  commit_time_us INTEGER NOT NULL,
  received_at_us INTEGER NOT NULL,
  message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_jobs (
  job_id INTEGER PRIMARY KEY,  -- the sequence (see Job::id), so never reused
  sequence INTEGER NOT NULL UNIQUE REFERENCES ferry_inbox (sequence),
  queue TEXT NOT NULL,
  message_class INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  released_attempts INTEGER NOT NULL DEFAULT 0,
  session TEXT,
  error TEXT,
  posted_at_us INTEGER NOT NULL,
  started_at_us INTEGER,
  finished_at_us INTEGER);
-- The unfinished jobs only: a job that becomes Ready leaves it, and no index grows with the
-- finished ones (ferry_jobs_state, of every job by state, cost a job's Ready mark two pages).
DROP INDEX IF EXISTS ferry_jobs_state;
CREATE INDEX IF NOT EXISTS ferry_jobs_unfinished ON ferry_jobs (sequence)
  WHERE state NOT IN ('Ready', 'Skipped');
CREATE TABLE IF NOT EXISTS ferry_job_attempts (
  job_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  session TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at_us INTEGER NOT NULL,
  finished_at_us INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT,
  -- One B-tree, ordered by its key: a rowid table would keep the key in an index beside it,
  -- a second page for every attempt a worker records. (A database from before keeps its
  -- rowid table, which works the same.)
  PRIMARY KEY (job_id, attempt)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ferry_configuration (
  sequence INTEGER PRIMARY KEY,
  configuration BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_sessions (
  session_id INTEGER PRIMARY KEY,
  pid INTEGER NOT NULL,
  started_at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_queue_settings (
  queue TEXT PRIMARY KEY,
  processes INTEGER,
  paused INTEGER NOT NULL DEFAULT 0);
)sql";

std::optional<JobState> ParseJobState(const std::string& name) {
  for (JobState s : {JobState::kPosted, JobState::kExecuting, JobState::kReady, JobState::kError,
                     JobState::kSkipped}) {
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

class SqliteReplicaStore final : public ReplicaStore {
 public:
  explicit SqliteReplicaStore(sqlite::Db db) : db_(std::move(db)) {}

  Status Init(bool create) {
    if (create) FERRY_RETURN_IF_ERROR(db_.Exec(kSchema));
    // Everything up to the sequence ferry_meta keeps (written by Sync, SkipTo and
    // PruneFinished) is stored, or was pruned after it was. After it the inbox's rows count as
    // long as they follow without a gap: a worker stores the message it is handed before the
    // node stores it, so a crash can leave rows beyond a gap, whose messages the master will
    // send again (the node leaves their jobs as they are).
    auto kept = db_.Prepare(
        "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM ferry_meta "
        "                 WHERE key = 'last_received_sequence'), 0)");
    if (!kept.ok()) return kept.status();
    auto step = kept->Step();
    if (!step.ok()) return step.status();
    last_received_ = static_cast<uint64_t>(kept->ColumnInt(0));
    auto after =
        db_.Prepare("SELECT sequence FROM ferry_inbox WHERE sequence > ? ORDER BY sequence");
    if (!after.ok()) return after.status();
    after->Bind(1, static_cast<int64_t>(last_received_));
    while (true) {
      auto row = after->Step();
      if (!row.ok()) return row.status();
      if (*row == sqlite::Statement::StepResult::kDone) break;
      const auto sequence = static_cast<uint64_t>(after->ColumnInt(0));
      if (sequence == last_received_ + 1 && stored_beyond_.empty()) {
        last_received_ = sequence;
      } else {
        stored_beyond_.insert(sequence);
      }
    }
    return Status::Ok();
  }

  StatusOr<std::vector<Job>> StoreMessages(
      const std::vector<ReceivedMessage>& messages,
      const std::function<std::string(wire::MessageClass)>& queue_for, int64_t now_us) override {
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    std::vector<Job> posted;
    uint64_t expected = last_received_ + 1;
    for (const auto& [header, bytes, received_at_us] : messages) {
      if (header.sequence() != expected) {
        return Status::Internal("message " + std::to_string(header.sequence()) +
                                " does not follow " + std::to_string(expected - 1));
      }
      ++expected;
      Job job;
      job.id = job.sequence = header.sequence();
      job.queue = queue_for(header.message_class());
      FERRY_RETURN_IF_ERROR(
          InsertMessage(header, bytes, job.queue, received_at_us != 0 ? received_at_us : now_us));
      posted.push_back(std::move(job));
    }
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    last_received_ = expected - 1;
    return posted;
  }

  uint64_t LastReceivedSequence() const override { return last_received_; }
  const std::set<uint64_t>& StoredBeyondLastReceived() const override { return stored_beyond_; }

  Status Sync() override {
    return db_.CommitDurably([this] {
      FERRY_RETURN_IF_ERROR(SaveMeta("durable_sequence", last_received_));
      return SaveMeta("last_received_sequence", last_received_);
    });
  }

  Status SkipTo(uint64_t sequence) override {
    if (sequence < last_received_) {
      return Status::InvalidArgument("cannot skip back to " + std::to_string(sequence) + " from " +
                                     std::to_string(last_received_));
    }
    FERRY_RETURN_IF_ERROR(SaveMeta("last_received_sequence", sequence));
    last_received_ = sequence;
    return Status::Ok();
  }

  StatusOr<std::vector<Job>> UnfinishedJobs() override {
    auto statement = db_.Prepare(
        "SELECT j.job_id, j.sequence, j.queue, j.state, j.attempts, j.released_attempts, "
        "i.message FROM ferry_jobs j JOIN ferry_inbox i ON i.sequence = j.sequence "
        "WHERE j.state NOT IN ('Ready', 'Skipped') ORDER BY j.sequence");
    if (!statement.ok()) return statement.status();
    std::vector<Job> jobs;
    while (true) {
      auto step = statement->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      Job& job = jobs.emplace_back();
      job.id = statement->ColumnInt(0);
      job.sequence = statement->ColumnInt(1);
      job.queue = statement->ColumnText(2);
      job.state = ParseJobState(statement->ColumnText(3)).value_or(JobState::kPosted);
      job.attempts = static_cast<int>(statement->ColumnInt(4));
      job.released_attempts = static_cast<int>(statement->ColumnInt(5));
      std::string_view bytes = statement->ColumnBlob(6);
      if (!job.message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return Status::Malformed("the stored message of job " + std::to_string(job.id) +
                                 " does not decode");
      }
    }
    return jobs;
  }

  StatusOr<std::optional<config::MasterConfiguration>> NewestConfiguration() override {
    // Received but not applied yet (inbox), or applied (and perhaps pruned from the inbox):
    // the one with the higher sequence is newer.
    auto statement = db_.Prepare(
        "SELECT sequence, message, 1 FROM ferry_inbox WHERE message_class = 2 "
        "UNION ALL SELECT sequence, configuration, 0 FROM ferry_configuration "
        "ORDER BY 1 DESC LIMIT 1");
    if (!statement.ok()) return statement.status();
    auto step = statement->Step();
    if (!step.ok()) return step.status();
    std::optional<config::MasterConfiguration> config;
    if (*step == sqlite::Statement::StepResult::kDone) return config;
    std::string_view bytes = statement->ColumnBlob(1);
    bool parsed;
    config.emplace();
    if (statement->ColumnInt(2) == 1) {
      wire::ReplicationMessage message;
      parsed = message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      *config = message.configuration();
    } else {
      parsed = config->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    }
    if (!parsed) return Status::Malformed("the stored master configuration does not decode");
    return config;
  }

  Status MarkSkipped(uint64_t job_id, int64_t now_us) override {
    auto statement = Cached(
        "UPDATE ferry_jobs SET state='Skipped', finished_at_us=? WHERE job_id=? AND state='Error'");
    if (!statement.ok()) return statement.status();
    FERRY_RETURN_IF_ERROR(
        (*statement)->Bind(1, now_us).Bind(2, static_cast<int64_t>(job_id)).Run());
    if (sqlite3_changes(db_.handle()) == 0) {
      return Status::NotFound("job " + std::to_string(job_id) + " is not in Error");
    }
    return Status::Ok();
  }

  Status MarkReleased(uint64_t job_id) override {
    auto statement = Cached("UPDATE ferry_jobs SET released_attempts=attempts WHERE job_id=?");
    if (!statement.ok()) return statement.status();
    return (*statement)->Bind(1, static_cast<int64_t>(job_id)).Run();
  }

  StatusOr<std::map<std::string, QueueSetting>> QueueSettings() override {
    auto statement = db_.Prepare("SELECT queue, processes, paused FROM ferry_queue_settings");
    if (!statement.ok()) return statement.status();
    std::map<std::string, QueueSetting> settings;
    while (true) {
      auto step = statement->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      QueueSetting& setting = settings[statement->ColumnText(0)];
      if (!statement->ColumnIsNull(1))
        setting.processes = static_cast<int>(statement->ColumnInt(1));
      setting.paused = statement->ColumnInt(2) != 0;
    }
    return settings;
  }

  Status SaveQueueSetting(const std::string& queue, const QueueSetting& setting) override {
    auto statement = db_.Prepare(
        "INSERT INTO ferry_queue_settings (queue, processes, paused) VALUES (?, ?, ?) "
        "ON CONFLICT (queue) DO UPDATE SET processes=excluded.processes, paused=excluded.paused");
    if (!statement.ok()) return statement.status();
    statement->Bind(1, queue);
    if (setting.processes) {
      statement->Bind(2, static_cast<int64_t>(*setting.processes));
    } else {
      statement->BindNull(2);
    }
    return statement->Bind(3, static_cast<int64_t>(setting.paused ? 1 : 0)).Run();
  }

  StatusOr<std::string> BeginSession(int pid, int64_t now_us) override {
    auto statement = db_.Prepare("INSERT INTO ferry_sessions (pid, started_at_us) VALUES (?, ?)");
    if (!statement.ok()) return statement.status();
    FERRY_RETURN_IF_ERROR(statement->Bind(1, static_cast<int64_t>(pid)).Bind(2, now_us).Run());
    return "R" + std::to_string(sqlite3_last_insert_rowid(db_.handle()));
  }

  StatusOr<JobCounts> CountJobs() override {
    return Counts("SELECT queue, state, COUNT(*) FROM ferry_jobs GROUP BY queue, state");
  }

  StatusOr<std::vector<wire::JobRecord>> ListJobs(const std::string& queue,
                                                  const std::string& state, uint64_t job_id,
                                                  size_t limit) override {
    // Cached: `ferryctl jobs --state Error` reads one job at a time.
    auto cached = Cached(
        "SELECT job_id, sequence, queue, message_class, state, attempts, COALESCE(session, ''), "
        "posted_at_us, COALESCE(started_at_us, 0), COALESCE(finished_at_us, 0), "
        "COALESCE(error, '') FROM ferry_jobs WHERE (?1 = '' OR queue = ?1) AND "
        "(?2 = '' OR state = ?2) AND (?3 = 0 OR job_id = ?3) ORDER BY sequence DESC LIMIT ?4");
    if (!cached.ok()) return cached.status();
    sqlite::Statement* statement = *cached;
    statement->Bind(1, queue)
        .Bind(2, state)
        .Bind(3, static_cast<int64_t>(job_id))
        .Bind(4, static_cast<int64_t>(limit));
    std::vector<wire::JobRecord> records;
    while (true) {
      auto step = statement->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      wire::JobRecord& r = records.emplace_back();
      r.set_job_id(statement->ColumnInt(0));
      r.set_sequence(statement->ColumnInt(1));
      r.set_queue(statement->ColumnText(2));
      r.set_message_class(
          MessageClassName(static_cast<wire::MessageClass>(statement->ColumnInt(3))));
      r.set_state(statement->ColumnText(4));
      r.set_attempts(static_cast<uint32_t>(statement->ColumnInt(5)));
      r.set_session_id(statement->ColumnText(6));
      r.set_posted_at_us(statement->ColumnInt(7));
      r.set_started_at_us(statement->ColumnInt(8));
      r.set_finished_at_us(statement->ColumnInt(9));
      r.set_error(statement->ColumnText(10));
    }
    statement->Reset();
    auto cached_attempts = Cached(
        "SELECT attempt, session, pid, started_at_us, finished_at_us, outcome, COALESCE(error, '') "
        "FROM ferry_job_attempts WHERE job_id = ? ORDER BY attempt");
    if (!cached_attempts.ok()) return cached_attempts.status();
    sqlite::Statement* attempts = *cached_attempts;
    for (auto& r : records) {
      attempts->Bind(1, static_cast<int64_t>(r.job_id()));
      while (true) {
        auto step = attempts->Step();
        if (!step.ok()) return step.status();
        if (*step == sqlite::Statement::StepResult::kDone) break;
        wire::AttemptRecord* a = r.add_attempt_log();
        a->set_attempt(static_cast<uint32_t>(attempts->ColumnInt(0)));
        a->set_session_id(attempts->ColumnText(1));
        a->set_pid(static_cast<int32_t>(attempts->ColumnInt(2)));
        a->set_started_at_us(attempts->ColumnInt(3));
        a->set_finished_at_us(attempts->ColumnInt(4));
        a->set_outcome(attempts->ColumnText(5));
        a->set_error(attempts->ColumnText(6));
      }
      attempts->Reset();
    }
    return records;
  }

  StatusOr<size_t> PruneFinished(int64_t before_us, JobCounts* removed) override {
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    FERRY_RETURN_IF_ERROR(
        db_.Exec("CREATE TEMP TABLE IF NOT EXISTS ferry_prune (job_id INTEGER PRIMARY KEY, "
                 "sequence INTEGER, queue TEXT, state TEXT);"
                 "DELETE FROM ferry_prune;"));
    auto pick = db_.Prepare(
        "INSERT INTO ferry_prune SELECT job_id, sequence, queue, state FROM ferry_jobs "
        "WHERE state IN ('Ready', 'Skipped') AND finished_at_us < ? AND sequence <= ?");
    if (!pick.ok()) return pick.status();
    // Not beyond LastReceivedSequence(): the node may store such a message again (a worker
    // stored it, and a crash took the node's record of it), and its job must still be there.
    FERRY_RETURN_IF_ERROR(
        pick->Bind(1, before_us).Bind(2, static_cast<int64_t>(last_received_)).Run());
    const size_t pruned = sqlite3_changes(db_.handle());
    if (removed != nullptr) {
      auto counts = Counts("SELECT queue, state, COUNT(*) FROM ferry_prune GROUP BY queue, state");
      if (!counts.ok()) return counts.status();
      *removed = std::move(counts).value();
    }
    // The rows that say it may go now.
    FERRY_RETURN_IF_ERROR(SaveMeta("last_received_sequence", last_received_));
    FERRY_RETURN_IF_ERROR(
        db_.Exec("DELETE FROM ferry_job_attempts WHERE job_id IN (SELECT job_id FROM ferry_prune);"
                 "DELETE FROM ferry_jobs WHERE job_id IN (SELECT job_id FROM ferry_prune);"
                 "DELETE FROM ferry_inbox WHERE sequence IN (SELECT sequence FROM ferry_prune);"));
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    return pruned;
  }

  StatusOr<wire::ReplicationMessage> ReadJobMessage(uint64_t job_id) override {
    auto read = Cached(
        "SELECT i.message FROM ferry_jobs j JOIN ferry_inbox i ON i.sequence = j.sequence "
        "WHERE j.job_id=?");
    if (!read.ok()) return read.status();
    sqlite::Statement& s = **read;
    s.Bind(1, static_cast<int64_t>(job_id));
    auto step = s.Step();
    if (!step.ok()) return step.status();
    wire::ReplicationMessage message;
    bool found = *step == sqlite::Statement::StepResult::kRow;
    bool parsed = found && message.ParseFromArray(s.ColumnBlob(0).data(),
                                                  static_cast<int>(s.ColumnBlob(0).size()));
    s.Reset();
    if (!found) return Status::NotFound("job " + std::to_string(job_id) + " does not exist");
    if (!parsed)
      return Status::Malformed("the stored message of job " + std::to_string(job_id) +
                               " does not decode");
    return message;
  }

  std::vector<Status> ApplyJobs(const std::vector<Attempt>& attempts, const Clock& clock) override {
    if (attempts.empty()) return {};
    // Nearly every batch applies whole: one transaction without a savepoint per job, so that
    // SQLite copies no page into a statement journal. A batch where anything fails is rolled
    // back and applied again job by job, which finds the job that failed. A lock not had is
    // not waited for twice.
    {
      auto transaction = sqlite::Transaction::Begin(db_);
      if (!transaction.ok()) return {transaction.status()};
      if (ApplyWhole(attempts, clock).ok() && transaction->Commit().ok()) {
        return std::vector<Status>(attempts.size());
      }
    }  // rolled back
    return ApplyEach(attempts, clock);
  }

 private:
  // The batch, all of it or nothing, up to its COMMIT. An attempt number recorded already
  // (see TakeUnusedAttemptNumber) fails the insert and so the batch.
  // REQUIRES: in a transaction.
  Status ApplyWhole(const std::vector<Attempt>& attempts, const Clock& clock) {
    configuration_checked_ = false;  // another worker may have installed a newer one
    // A job first stored here is posted Ready at once: the batch commits only if every job
    // applies, so it never commits another state, and the job never enters the index of
    // unfinished jobs (a page less for the commit to write).
    std::set<uint64_t> posted_ready;
    FERRY_RETURN_IF_ERROR(StoreHandedOver(attempts, &posted_ready));
    std::vector<uint64_t> ready;
    for (size_t i = 0; i < attempts.size(); ++i) {
      Attempt attempt = attempts[i];
      if (i > 0) attempt.started_at_us = clock.NowMicros();  // its own start
      bool job_exists = false, applied_now = false;
      FERRY_RETURN_IF_ERROR(ApplyOne(attempt, clock, &job_exists, &applied_now,
                                     posted_ready.count(attempt.job_id) > 0));
      if (applied_now) ready.push_back(attempt.job_id);
    }
    return StampCommitTime(ready, clock.NowMicros());
  }

  // The batch job by job, each in a savepoint: the jobs before a failing one commit, the
  // failing one is recorded as an Error, the ones after it are not attempted.
  std::vector<Status> ApplyEach(const std::vector<Attempt>& attempts, const Clock& clock) {
    std::vector<Status> results;
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return {transaction.status()};
    std::vector<uint64_t> ready;
    configuration_checked_ = false;  // another worker may have installed a newer one
    auto savepoint = Cached("SAVEPOINT job");
    auto release = Cached("RELEASE job");
    auto rollback = Cached("ROLLBACK TO job");
    for (auto* s : {&savepoint, &release, &rollback}) {
      if (!s->ok()) return {s->status()};
    }
    // Every job's message, with the batch, whatever becomes of the job.
    if (Status stored = StoreHandedOver(attempts, nullptr); !stored.ok()) return {stored};
    for (Attempt attempt : attempts) {
      if (!results.empty()) attempt.started_at_us = clock.NowMicros();  // its own start
      Status opened = (*savepoint)->Run();
      if (opened.ok()) opened = TakeUnusedAttemptNumber(&attempt);
      if (!opened.ok()) {
        results.push_back(opened);
        break;
      }
      bool job_exists = false, applied_now = false;
      Status applied = ApplyOne(attempt, clock, &job_exists, &applied_now);
      if (applied.ok()) {
        (void)(*release)->Run();
        results.push_back(applied);
        if (applied_now) ready.push_back(attempt.job_id);  // not one finished before
        continue;
      }
      // This job alone rolls back; its failure is recorded with the batch's commit. The jobs
      // after it are not attempted: they may depend on it.
      (void)(*rollback)->Run();
      (void)(*release)->Run();
      if (job_exists) {
        Status recorded = Finish(attempt, "Error", applied.message(), clock.NowMicros());
        if (!recorded.ok())
          applied = applied.Annotate("(error not recorded: " + recorded.message() + ")");
      }
      results.push_back(applied);
      break;
    }
    // The replica's commit time of every applied job: now, just before the COMMIT.
    Status stamped = StampCommitTime(ready, clock.NowMicros());
    Status committed = stamped.ok() ? transaction->Commit() : stamped;
    if (!committed.ok()) {
      for (auto& result : results) result = committed.Annotate("the batch did not commit");
    }
    return results;
  }

  Status StampCommitTime(const std::vector<uint64_t>& jobs, int64_t now_us) {
    // In runs of power-of-two lengths (1000 = 512 + 256 + ... + 8): one statement per run,
    // and at most one prepared statement per power of two, not one per batch length.
    size_t at = 0;
    while (at < jobs.size()) {
      size_t run = 1;
      while (run * 2 <= jobs.size() - at) run *= 2;
      std::string sql = "UPDATE ferry_jobs SET finished_at_us=? WHERE job_id IN (?";
      for (size_t i = 1; i < run; ++i) sql += ",?";
      auto statement = Cached(sql + ")");
      if (!statement.ok()) return statement.status();
      (*statement)->Bind(1, now_us);
      for (size_t i = 0; i < run; ++i) {
        (*statement)->Bind(static_cast<int>(i) + 2, static_cast<int64_t>(jobs[at + i]));
      }
      FERRY_RETURN_IF_ERROR((*statement)->Run());
      at += run;
    }
    return Status::Ok();
  }

  // Gives the attempt the next free number if its own is recorded already. The replica
  // numbers attempts, but a worker whose replica was killed finishes its batch under the old
  // session's numbers while the restarted replica hands the same jobs out again: each attempt
  // keeps its own row.
  Status TakeUnusedAttemptNumber(Attempt* attempt) {
    auto number = Cached(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM ferry_job_attempts WHERE job_id=?1 AND "
        "attempt=?2) THEN (SELECT MAX(attempt) + 1 FROM ferry_job_attempts WHERE job_id=?1) "
        "ELSE ?2 END");
    if (!number.ok()) return number.status();
    sqlite::Statement& s = **number;
    s.Bind(1, static_cast<int64_t>(attempt->job_id)).Bind(2, int64_t{attempt->attempt});
    auto step = s.Step();
    if (!step.ok()) return step.status();
    attempt->attempt = static_cast<int>(s.ColumnInt(0));
    s.Reset();
    return Status::Ok();
  }

  // Applies one job and marks it Ready (`*applied_now`), finds it finished already (an
  // AlreadyReady attempt; the job row is left as it was), or reports why not. A job this
  // transaction posted Ready (`posted_ready`, see ApplyWhole) is applied from the bytes handed
  // over with it, which is what it stored: nothing is read back.
  // REQUIRES: in a transaction (the caller rolls back what a failure leaves).
  Status ApplyOne(const Attempt& attempt, const Clock& clock, bool* job_exists, bool* applied_now,
                  bool posted_ready = false) {
    std::string_view bytes = attempt.message;
    uint64_t sequence = attempt.job_id;
    bool finished = false;
    sqlite::Statement* stored = nullptr;  // the job's row and message, read unless posted here
    if (!posted_ready) {
      auto read = Cached(
          "SELECT j.state, j.sequence, i.message FROM ferry_jobs j "
          "JOIN ferry_inbox i ON i.sequence = j.sequence WHERE j.job_id=?");
      if (!read.ok()) return read.status();
      stored = *read;
      stored->Bind(1, static_cast<int64_t>(attempt.job_id));
      auto step = stored->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) {
        stored->Reset();
        return Status::NotFound("job " + std::to_string(attempt.job_id) + " does not exist");
      }
      const std::string state = stored->ColumnText(0);
      finished =
          state == JobStateName(JobState::kReady) || state == JobStateName(JobState::kSkipped);
      sequence = static_cast<uint64_t>(stored->ColumnInt(1));
      bytes = stored->ColumnBlob(2);
    }
    *job_exists = true;
    const std::string job_name =
        "job " + std::to_string(attempt.job_id) + " (sequence " + std::to_string(sequence) + ")";
    // Parsed on an arena whose first block is on the stack: a workload message is a few dozen
    // small allocations (map entries, strings), which then cost nothing to make or free.
    alignas(8) char block[16384];
    google::protobuf::Arena arena(block, sizeof(block));
    auto& message = *google::protobuf::Arena::CreateMessage<wire::ReplicationMessage>(&arena);
    const bool parsed = message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    if (stored) stored->Reset();  // `bytes` pointed into its row
    if (finished) {
      // Applied (or set aside) before, e.g. by a worker that died before it could report.
      return RecordAttempt(attempt, "AlreadyReady", "", clock.NowMicros());
    }
    if (!parsed) return Status::Malformed(job_name + ": its stored message does not decode");
    if (message.message_class() == wire::RECEIVE_CONFIGURATION) {
      FERRY_RETURN_IF_ERROR(InstallConfiguration(message).Annotate(job_name));
    } else if (message.message_class() != wire::RECEIVE_MESSAGE &&
               message.message_class() != wire::RECEIVE_SNAPSHOT) {
      return Status::InvalidArgument(job_name + ": unknown message class " +
                                     std::to_string(message.message_class()));
    } else {
      FERRY_RETURN_IF_ERROR(LoadConfiguration().Annotate(job_name));
      if (message.snapshot().first()) {
        // A snapshot replaces everything: the rows it does not bring must go.
        FERRY_RETURN_IF_ERROR(tables_->DeleteAll().Annotate(job_name));
      }
      for (int i = 0; i < message.changes_size(); ++i) {
        const std::string where = job_name + ", change " + std::to_string(i + 1);
        FERRY_RETURN_IF_ERROR(catalog_->ValidateChange(message.changes(i)).Annotate(where));
        FERRY_RETURN_IF_ERROR(tables_->Apply(message.changes(i), nullptr).Annotate(where));
      }
    }
    *applied_now = true;
    return Finish(attempt, "Ready", "", clock.NowMicros());
  }

  // Sets the job's outcome and records the attempt. REQUIRES: in a transaction.
  Status Finish(const Attempt& attempt, const std::string& outcome, const std::string& error,
                int64_t now_us) {
    // The job row carries its latest attempt: its number, session and start.
    auto update = Cached(
        "UPDATE ferry_jobs SET state=?, error=NULLIF(?, ''), finished_at_us=?, "
        "attempts=MAX(attempts, ?), session=?, started_at_us=? WHERE job_id=?");
    if (!update.ok()) return update.status();
    FERRY_RETURN_IF_ERROR((*update)
                              ->Bind(1, outcome)
                              .Bind(2, error)
                              .Bind(3, now_us)
                              .Bind(4, static_cast<int64_t>(attempt.attempt))
                              .Bind(5, attempt.session_id)
                              .Bind(6, attempt.started_at_us)
                              .Bind(7, static_cast<int64_t>(attempt.job_id))
                              .Run());
    return RecordAttempt(attempt, outcome, error, now_us);
  }

  Status RecordAttempt(const Attempt& attempt, const std::string& outcome, const std::string& error,
                       int64_t now_us) {
    auto insert = Cached(
        "INSERT INTO ferry_job_attempts (job_id, attempt, session, pid, started_at_us, "
        "finished_at_us, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''))");
    if (!insert.ok()) return insert.status();
    return (*insert)
        ->Bind(1, static_cast<int64_t>(attempt.job_id))
        .Bind(2, static_cast<int64_t>(attempt.attempt))
        .Bind(3, attempt.session_id)
        .Bind(4, static_cast<int64_t>(attempt.pid))
        .Bind(5, attempt.started_at_us)
        .Bind(6, now_us)
        .Bind(7, outcome)
        .Bind(8, error)
        .Run();
  }

  // Creates the LU tables of a configuration and keeps it for the jobs after it.
  // REQUIRES: in a transaction.
  Status InstallConfiguration(const wire::ReplicationMessage& message) {
    auto catalog = Catalog::FromProto(message.configuration());
    if (!catalog.ok()) return catalog.status().Annotate("the master configuration");
    LuTables tables(db_, *catalog);
    FERRY_RETURN_IF_ERROR(tables.CreateTables());
    std::string bytes;
    message.configuration().SerializeToString(&bytes);
    configuration_checked_ = false;  // the next job loads this one
    auto insert = db_.Prepare(
        "INSERT OR REPLACE INTO ferry_configuration (sequence, configuration) VALUES (?, ?)");
    if (!insert.ok()) return insert.status();
    return insert->Bind(1, static_cast<int64_t>(message.sequence())).BindBlob(2, bytes).Run();
  }

  // Loads the newest installed configuration if it is not the one loaded; looked up once per
  // batch (and after this worker installed one).
  Status LoadConfiguration() {
    if (catalog_ && configuration_checked_) return Status::Ok();
    auto newest = Cached(
        "SELECT sequence, configuration FROM ferry_configuration ORDER BY sequence DESC LIMIT 1");
    if (!newest.ok()) return newest.status();
    sqlite::Statement& s = **newest;
    auto step = s.Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) {
      s.Reset();
      return Status::Unavailable("no master configuration has been applied yet");
    }
    const uint64_t sequence = s.ColumnInt(0);
    if (catalog_ && sequence == configuration_sequence_) {
      s.Reset();
      configuration_checked_ = true;
      return Status::Ok();
    }
    config::MasterConfiguration proto;
    std::string_view bytes = s.ColumnBlob(1);
    const bool parsed = proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    s.Reset();
    if (!parsed) return Status::Malformed("the stored master configuration does not decode");
    auto catalog = Catalog::FromProto(std::move(proto));
    if (!catalog.ok()) return catalog.status();
    tables_.reset();  // its statements belong to the old catalog
    catalog_ = *catalog;
    tables_ = std::make_unique<LuTables>(db_, catalog_);
    configuration_sequence_ = sequence;
    configuration_checked_ = true;
    return Status::Ok();
  }

  // Runs `sql`, which selects (queue, state, count) rows.
  StatusOr<JobCounts> Counts(const std::string& sql) {
    auto statement = Cached(sql);
    if (!statement.ok()) return statement.status();
    JobCounts counts;
    while (true) {
      auto step = (*statement)->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      counts[(*statement)->ColumnText(0)][(*statement)->ColumnText(1)] = (*statement)->ColumnInt(2);
    }
    (*statement)->Reset();
    return counts;
  }

  StatusOr<sqlite::Statement*> Cached(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      auto statement = db_.Prepare(sql);
      if (!statement.ok()) return statement.status();
      it = statements_.emplace(sql, std::move(statement).value()).first;
    }
    return &it->second;
  }

  Status SaveMeta(const std::string& key, uint64_t value) {
    auto save = Cached(
        "INSERT INTO ferry_meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value=excluded.value");
    if (!save.ok()) return save.status();
    return (*save)->Bind(1, key).Bind(2, std::to_string(value)).Run();
  }

  // Stores a message in the inbox and posts its job in `state`, unless it is stored already
  // (by the node, or by a worker it was handed to); `*posted`, if given, says whether the job
  // was posted now.
  Status InsertMessage(const wire::ReplicationMessageHeader& header, std::string_view bytes,
                       const std::string& queue, int64_t now_us, JobState state = JobState::kPosted,
                       bool* posted = nullptr) {
    auto insert_inbox = Cached(
        "INSERT INTO ferry_inbox (sequence, message_class, transaction_id, commit_time_us, "
        "received_at_us, message) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    if (!insert_inbox.ok()) return insert_inbox.status();
    FERRY_RETURN_IF_ERROR((*insert_inbox)
                              ->Bind(1, static_cast<int64_t>(header.sequence()))
                              .Bind(2, static_cast<int64_t>(header.message_class()))
                              .Bind(3, static_cast<int64_t>(header.transaction_id()))
                              .Bind(4, header.commit_time_us())
                              .Bind(5, now_us)
                              .BindBlob(6, bytes)
                              .Run());
    auto insert_job = Cached(
        "INSERT INTO ferry_jobs (job_id, sequence, queue, message_class, state, posted_at_us) "
        "VALUES (?1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING");
    if (!insert_job.ok()) return insert_job.status();
    FERRY_RETURN_IF_ERROR((*insert_job)
                              ->Bind(1, static_cast<int64_t>(header.sequence()))
                              .Bind(2, queue)
                              .Bind(3, static_cast<int64_t>(header.message_class()))
                              .Bind(4, JobStateName(state))
                              .Bind(5, now_us)
                              .Run());
    if (posted) *posted = sqlite3_changes(db_.handle()) > 0;
    return Status::Ok();
  }

  // Stores the messages handed over with `attempts` (Attempt::message). With `posted_ready`,
  // a job not stored yet is posted Ready and its id goes there; without, it is posted as the
  // node posts it. REQUIRES: in a transaction.
  Status StoreHandedOver(const std::vector<Attempt>& attempts, std::set<uint64_t>* posted_ready) {
    for (const Attempt& attempt : attempts) {
      if (attempt.message.empty()) continue;
      wire::ReplicationMessageHeader header;
      if (!header.ParseFromArray(attempt.message.data(),
                                 static_cast<int>(attempt.message.size()))) {
        return Status::Malformed("job " + std::to_string(attempt.job_id) +
                                 ": the message handed over with it does not decode");
      }
      if (header.sequence() != attempt.job_id) {
        return Status::Internal("job " + std::to_string(attempt.job_id) +
                                " was handed over with the message of sequence " +
                                std::to_string(header.sequence()));
      }
      bool posted = false;
      FERRY_RETURN_IF_ERROR(
          InsertMessage(header, attempt.message, attempt.queue, attempt.received_at_us,
                        posted_ready ? JobState::kReady : JobState::kPosted, &posted));
      if (posted && posted_ready) posted_ready->insert(attempt.job_id);
    }
    return Status::Ok();
  }

  sqlite::Db db_;
  uint64_t last_received_ = 0;
  std::set<uint64_t> stored_beyond_;                     // see StoredBeyondLastReceived()
  std::map<std::string, sqlite::Statement> statements_;  // by SQL text
  std::shared_ptr<const Catalog> catalog_;  // the installed configuration; loaded by workers
  std::unique_ptr<LuTables> tables_;        // for catalog_
  uint64_t configuration_sequence_ = 0;     // the sequence catalog_ came with
  bool configuration_checked_ = false;      // catalog_ is the newest, as of this batch
};

}  // namespace

StatusOr<std::unique_ptr<ReplicaStore>> OpenSqliteReplicaStore(const std::string& path,
                                                               const ReplicaStoreOptions& options) {
  sqlite::Db::Options db_options;
  db_options.create = options.create;
  // No fsync per commit: the node acknowledges only what Sync() made durable (the master keeps
  // the rest), and a commit lost to a power cut takes every later one with it, so an applied
  // job never outlives its inbox entry.
  db_options.synchronous_full = false;
  db_options.busy_timeout_ms = options.busy_timeout_ms;
  auto db = sqlite::Db::Open(path, db_options);
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqliteReplicaStore>(std::move(db).value());
  FERRY_RETURN_IF_ERROR(store->Init(options.create).Annotate("replica database " + path));
  return std::unique_ptr<ReplicaStore>(std::move(store));
}

}  // namespace ferry
