#include "common/sqlite.h"

#include <unistd.h>

#include <cstdint>

namespace ferry::sqlite {
namespace {

// Waits for another connection's write lock. SQLite's own busy timeout sleeps 1, 2, 5, 10 ...
// ms between tries, so a replica's inbox write behind a worker's 1 ms batch waited 5 ms or
// more; short sleeps first keep the hand-over near the lock's real hold time.
int WaitForLock(void* timeout_ms, int tries) {
  constexpr int kShortTries = 400;  // 400 x 25 us = 10 ms
  const int64_t limit = reinterpret_cast<intptr_t>(timeout_ms);
  const int64_t waited_ms = tries < kShortTries ? tries / 40 : 10 + (tries - kShortTries);
  if (waited_ms >= limit) return 0;  // give up: SQLITE_BUSY
  usleep(tries < kShortTries ? 25 : 1000);
  return 1;
}

}  // namespace

StatusOr<Db> Db::Open(const std::string& path, const Options& options) {
  sqlite3* raw = nullptr;
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (options.create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<sqlite3, DbCloser> handle(raw);
  if (rc != SQLITE_OK) {
    return Status::IoError("cannot open database " + path + ": " +
                           (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_handler(raw, WaitForLock,
                       reinterpret_cast<void*>(static_cast<intptr_t>(options.busy_timeout_ms)));
  Db db(std::move(handle), path);
  db.synchronous_full_ = options.synchronous_full;
  FERRY_RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  // Statement journals (what a savepoint rolls back to: one per job in a worker's batch, one
  // per transaction in the master's group) in memory, not written to a temporary file.
  FERRY_RETURN_IF_ERROR(db.Exec("PRAGMA temp_store=MEMORY"));
  // Checkpoints every 32,000 WAL pages (128 MB), not SQLite's 1,000: a page written many times
  // between two checkpoints is copied once, and a commit stalls to run one less often. At
  // 1,000 tx/s the replica's checkpoints (each stalling its pipeline for a few ms) came every
  // 0.37 s with 8,000 pages and set the p99 (latency runs alternated: mean p99 3.56 -> 2.96 ms).
  // A thread of its own for checkpoints bought nothing that shows: its fsyncs compete with
  // the commits'.
  FERRY_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint=32000"));
  FERRY_RETURN_IF_ERROR(
      db.Exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  return db;
}

Status Db::Exec(const std::string& sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    return Status::IoError(path_ + ": " + message + " (in: " + sql.substr(0, 200) + ")");
  }
  return Status::Ok();
}

Status Db::CommitDurably(const std::function<Status()>& write) {
  if (!synchronous_full_) FERRY_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  Status committed = [&] {
    auto transaction = Transaction::Begin(*this);
    if (!transaction.ok()) return transaction.status();
    FERRY_RETURN_IF_ERROR(write());
    return transaction->Commit();
  }();
  Status restored = synchronous_full_ ? Status::Ok() : Exec("PRAGMA synchronous=NORMAL");
  return committed.ok() ? restored : committed;
}

StatusOr<Statement> Db::Prepare(const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_.get(), sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr) !=
      SQLITE_OK) {
    return Status::Internal(path_ + ": cannot prepare '" + sql + "': " + LastError());
  }
  return Statement(raw);
}

std::string Db::LastError() const { return sqlite3_errmsg(db_.get()); }

Statement& Statement::Bind(int index, std::string_view text) {
  sqlite3_bind_text(statement_.get(), index, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(statement_.get(), index, value);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  sqlite3_bind_blob(statement_.get(), index, bytes.data(), static_cast<int>(bytes.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(statement_.get(), index);
  return *this;
}

StatusOr<Statement::StepResult> Statement::Step() {
  int rc = sqlite3_step(statement_.get());
  if (rc == SQLITE_ROW) return StepResult::kRow;
  if (rc == SQLITE_DONE) return StepResult::kDone;
  sqlite3* db = sqlite3_db_handle(statement_.get());
  std::string message = sqlite3_errmsg(db);
  sqlite3_reset(statement_.get());
  if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT) {
    return Status::InvalidArgument("constraint failed: " + message);
  }
  return Status::IoError(message);
}

Status Statement::Run() {
  auto result = Step();
  Reset();
  return result.ok() ? Status::Ok() : result.status();
}

void Statement::Reset() {
  sqlite3_reset(statement_.get());
  sqlite3_clear_bindings(statement_.get());
}

int64_t Statement::ColumnInt(int index) const {
  return sqlite3_column_int64(statement_.get(), index);
}

std::string Statement::ColumnText(int index) const {
  const unsigned char* text = sqlite3_column_text(statement_.get(), index);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            sqlite3_column_bytes(statement_.get(), index))
              : std::string();
}

bool Statement::ColumnIsNull(int index) const {
  return sqlite3_column_type(statement_.get(), index) == SQLITE_NULL;
}

std::string_view Statement::ColumnBlob(int index) const {
  const void* data = sqlite3_column_blob(statement_.get(), index);
  return data ? std::string_view(static_cast<const char*>(data),
                                 sqlite3_column_bytes(statement_.get(), index))
              : std::string_view();
}

int Statement::ColumnCount() const { return sqlite3_column_count(statement_.get()); }

StatusOr<Transaction> Transaction::Begin(Db& db) {
  FERRY_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_) (void)db_->Exec("ROLLBACK");
}

Status Transaction::Commit() {
  Status status = db_->Exec("COMMIT");
  if (status.ok()) db_ = nullptr;
  return status;
}

}  // namespace ferry::sqlite
