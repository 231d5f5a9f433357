#include <optional>

#include "common/catalog.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
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
  }
  return "?";
}

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS ferry_inbox (
  sequence INTEGER PRIMARY KEY,
  message_class INTEGER NOT NULL,
  transaction_id INTEGER NOT NULL,
  commit_time_us INTEGER NOT NULL,
  received_at_us INTEGER NOT NULL,
  message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_jobs (
  job_id INTEGER PRIMARY KEY,
  sequence INTEGER NOT NULL UNIQUE REFERENCES ferry_inbox (sequence),
  queue TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  session TEXT,
  error TEXT,
  posted_at_us INTEGER NOT NULL,
  started_at_us INTEGER,
  finished_at_us INTEGER);
CREATE INDEX IF NOT EXISTS ferry_jobs_state ON ferry_jobs (state, sequence);
CREATE TABLE IF NOT EXISTS ferry_configuration (
  sequence INTEGER PRIMARY KEY,
  configuration BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_sessions (
  session_id INTEGER PRIMARY KEY,
  pid INTEGER NOT NULL,
  started_at_us INTEGER NOT NULL);
)sql";

std::optional<JobState> ParseJobState(const std::string& name) {
  for (JobState s : {JobState::kPosted, JobState::kExecuting, JobState::kReady, JobState::kError}) {
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

class SqliteReplicaStore final : public ReplicaStore {
 public:
  explicit SqliteReplicaStore(sqlite::Db db) : db_(std::move(db)) {}

  Status Init(bool create) {
    if (create) FERRY_RETURN_IF_ERROR(db_.Exec(kSchema));
    auto last = db_.Prepare("SELECT COALESCE(MAX(sequence), 0) FROM ferry_inbox");
    if (!last.ok()) return last.status();
    auto step = last->Step();
    if (!step.ok()) return step.status();
    last_received_ = last->ColumnInt(0);
    return Status::Ok();
  }

  StatusOr<std::vector<Job>> StoreMessages(const std::vector<wire::ReplicationMessage>& messages,
                                           const std::string& queue_for_messages,
                                           const std::string& queue_for_configuration,
                                           int64_t now_us) override {
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    auto insert_inbox = Cached(
        "INSERT INTO ferry_inbox (sequence, message_class, transaction_id, commit_time_us, "
        "received_at_us, message) VALUES (?, ?, ?, ?, ?, ?)");
    auto insert_job = Cached(
        "INSERT INTO ferry_jobs (sequence, queue, state, posted_at_us, finished_at_us) "
        "VALUES (?, ?, ?, ?, ?)");
    if (!insert_inbox.ok()) return insert_inbox.status();
    if (!insert_job.ok()) return insert_job.status();
    std::vector<Job> posted;
    uint64_t expected = last_received_ + 1;
    std::string bytes;
    for (const auto& message : messages) {
      if (message.sequence() != expected) {
        return Status::Internal("message " + std::to_string(message.sequence()) +
                                " does not follow " + std::to_string(expected - 1));
      }
      ++expected;
      message.SerializeToString(&bytes);
      FERRY_RETURN_IF_ERROR((*insert_inbox)
                                ->Bind(1, static_cast<int64_t>(message.sequence()))
                                .Bind(2, static_cast<int64_t>(message.message_class()))
                                .Bind(3, static_cast<int64_t>(message.transaction_id()))
                                .Bind(4, message.commit_time_us())
                                .Bind(5, now_us)
                                .BindBlob(6, bytes)
                                .Run());
      const bool configuration = message.message_class() == wire::RECEIVE_CONFIGURATION;
      if (configuration) FERRY_RETURN_IF_ERROR(InstallConfiguration(message));
      Job job;
      job.sequence = message.sequence();
      job.queue = configuration ? queue_for_configuration : queue_for_messages;
      job.state = configuration ? JobState::kReady : JobState::kPosted;
      (*insert_job)
          ->Bind(1, static_cast<int64_t>(job.sequence))
          .Bind(2, job.queue)
          .Bind(3, JobStateName(job.state))
          .Bind(4, now_us);
      if (configuration) (*insert_job)->Bind(5, now_us);
      FERRY_RETURN_IF_ERROR((*insert_job)->Run());
      job.id = sqlite3_last_insert_rowid(db_.handle());
      if (!configuration) posted.push_back(std::move(job));
    }
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    last_received_ = expected - 1;
    return posted;
  }

  uint64_t LastReceivedSequence() const override { return last_received_; }

  StatusOr<std::vector<Job>> UnfinishedJobs() override {
    auto statement = db_.Prepare(
        "SELECT job_id, sequence, queue, state FROM ferry_jobs WHERE state != 'Ready' "
        "ORDER BY sequence");
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
    }
    return jobs;
  }

  Status MarkExecuting(uint64_t job_id, const std::string& session, int64_t now_us) override {
    auto statement = Cached(
        "UPDATE ferry_jobs SET state='Executing', attempts=attempts+1, session=?, "
        "started_at_us=? WHERE job_id=? AND state != 'Ready'");
    if (!statement.ok()) return statement.status();
    return (*statement)
        ->Bind(1, session)
        .Bind(2, now_us)
        .Bind(3, static_cast<int64_t>(job_id))
        .Run();
  }

  StatusOr<std::string> BeginSession(int pid, int64_t now_us) override {
    auto statement = db_.Prepare("INSERT INTO ferry_sessions (pid, started_at_us) VALUES (?, ?)");
    if (!statement.ok()) return statement.status();
    FERRY_RETURN_IF_ERROR(statement->Bind(1, static_cast<int64_t>(pid)).Bind(2, now_us).Run());
    return "R" + std::to_string(sqlite3_last_insert_rowid(db_.handle()));
  }

  StatusOr<std::map<std::string, std::map<std::string, uint64_t>>> CountJobs() override {
    auto statement = Cached("SELECT queue, state, COUNT(*) FROM ferry_jobs GROUP BY queue, state");
    if (!statement.ok()) return statement.status();
    std::map<std::string, std::map<std::string, uint64_t>> counts;
    while (true) {
      auto step = (*statement)->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      counts[(*statement)->ColumnText(0)][(*statement)->ColumnText(1)] = (*statement)->ColumnInt(2);
    }
    (*statement)->Reset();
    return counts;
  }

  Status ApplyJob(uint64_t job_id, int64_t now_us) override {
    Status applied = TryApply(job_id, now_us);
    if (applied.ok()) return applied;
    // The apply transaction is rolled back; record why, in a transaction of its own.
    auto record =
        Cached("UPDATE ferry_jobs SET state='Error', error=?, finished_at_us=? WHERE job_id=?");
    if (record.ok()) {
      Status recorded = (*record)
                            ->Bind(1, applied.message())
                            .Bind(2, now_us)
                            .Bind(3, static_cast<int64_t>(job_id))
                            .Run();
      if (!recorded.ok())
        return applied.Annotate("(error not recorded: " + recorded.message() + ")");
    }
    return applied;
  }

 private:
  Status TryApply(uint64_t job_id, int64_t now_us) {
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    auto read = Cached(
        "SELECT j.state, j.sequence, i.message FROM ferry_jobs j "
        "JOIN ferry_inbox i ON i.sequence = j.sequence WHERE j.job_id=?");
    if (!read.ok()) return read.status();
    sqlite::Statement& s = **read;
    s.Bind(1, static_cast<int64_t>(job_id));
    auto step = s.Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) {
      s.Reset();
      return Status::NotFound("job " + std::to_string(job_id) + " does not exist");
    }
    const bool ready = s.ColumnText(0) == JobStateName(JobState::kReady);
    const std::string job_name =
        "job " + std::to_string(job_id) + " (sequence " + std::to_string(s.ColumnInt(1)) + ")";
    wire::ReplicationMessage message;
    std::string_view bytes = s.ColumnBlob(2);
    const bool parsed = message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    s.Reset();
    if (ready) return transaction->Commit();  // applied before: applying again changes nothing
    if (!parsed) return Status::Malformed(job_name + ": its stored message does not decode");
    FERRY_RETURN_IF_ERROR(LoadConfiguration().Annotate(job_name));
    for (int i = 0; i < message.changes_size(); ++i) {
      const std::string where = job_name + ", change " + std::to_string(i + 1);
      FERRY_RETURN_IF_ERROR(catalog_->ValidateChange(message.changes(i)).Annotate(where));
      FERRY_RETURN_IF_ERROR(tables_->Apply(message.changes(i), nullptr).Annotate(where));
    }
    auto done =
        Cached("UPDATE ferry_jobs SET state='Ready', error=NULL, finished_at_us=? WHERE job_id=?");
    if (!done.ok()) return done.status();
    FERRY_RETURN_IF_ERROR((*done)->Bind(1, now_us).Bind(2, static_cast<int64_t>(job_id)).Run());
    return transaction->Commit();
  }

  // Creates the LU tables of a received configuration and keeps it. REQUIRES: in a transaction.
  Status InstallConfiguration(const wire::ReplicationMessage& message) {
    auto catalog = Catalog::FromProto(message.configuration());
    if (!catalog.ok()) {
      return catalog.status().Annotate("configuration of sequence " +
                                       std::to_string(message.sequence()));
    }
    LuTables tables(db_, *catalog);
    FERRY_RETURN_IF_ERROR(tables.CreateTables());
    std::string bytes;
    message.configuration().SerializeToString(&bytes);
    auto insert =
        db_.Prepare("INSERT INTO ferry_configuration (sequence, configuration) VALUES (?, ?)");
    if (!insert.ok()) return insert.status();
    return insert->Bind(1, static_cast<int64_t>(message.sequence())).BindBlob(2, bytes).Run();
  }

  // Loads the newest installed configuration if it is not the one loaded.
  Status LoadConfiguration() {
    auto newest = Cached(
        "SELECT sequence, configuration FROM ferry_configuration ORDER BY sequence DESC LIMIT 1");
    if (!newest.ok()) return newest.status();
    sqlite::Statement& s = **newest;
    auto step = s.Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) {
      s.Reset();
      return Status::Unavailable("no master configuration has been received yet");
    }
    const uint64_t sequence = s.ColumnInt(0);
    if (catalog_ && sequence == configuration_sequence_) {
      s.Reset();
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
    return Status::Ok();
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

  sqlite::Db db_;
  uint64_t last_received_ = 0;
  std::map<std::string, sqlite::Statement> statements_;  // by SQL text
  std::shared_ptr<const Catalog> catalog_;  // the installed configuration; loaded by workers
  std::unique_ptr<LuTables> tables_;        // for catalog_
  uint64_t configuration_sequence_ = 0;     // the sequence catalog_ came with
};

}  // namespace

StatusOr<std::unique_ptr<ReplicaStore>> OpenSqliteReplicaStore(const std::string& path,
                                                               const ReplicaStoreOptions& options) {
  sqlite::Db::Options db_options;
  db_options.create = options.create;
  auto db = sqlite::Db::Open(path, db_options);
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqliteReplicaStore>(std::move(db).value());
  FERRY_RETURN_IF_ERROR(store->Init(options.create).Annotate("replica database " + path));
  return std::unique_ptr<ReplicaStore>(std::move(store));
}

}  // namespace ferry
