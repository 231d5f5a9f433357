#ifndef FERRY_COMMON_SQLITE_H_
#define FERRY_COMMON_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ferry::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};

class Statement;

// One SQLite connection in WAL mode with foreign keys enforced. Not thread-safe: one owner.
class Db {
 public:
  struct Options {
    bool create = true;            // create the file if it does not exist
    bool synchronous_full = true;  // fsync every commit (durable); false: NORMAL
    int busy_timeout_ms = 10000;   // how long to wait for another process's write lock
  };
  static StatusOr<Db> Open(const std::string& path, const Options& options);

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  // Runs `write` in a transaction committed with synchronous=FULL, whatever the connection's
  // setting: its fsync of the WAL makes every earlier commit to the file durable too, whichever
  // connection made it. How a connection opened with synchronous_full = false syncs.
  Status CommitDurably(const std::function<Status()>& write);
  // Compiles one statement; the error names the SQL.
  StatusOr<Statement> Prepare(const std::string& sql);
  // The error of the last call on this connection, for messages.
  std::string LastError() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_.get(); }

 private:
  Db(std::unique_ptr<sqlite3, DbCloser> db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {}
  std::unique_ptr<sqlite3, DbCloser> db_;
  std::string path_;
  bool synchronous_full_ = true;  // as opened
};

// A prepared statement. Bind parameters from 1, Step, read columns from 0, Reset to reuse.
class Statement {
 public:
  enum class StepResult { kRow, kDone };

  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, int64_t value);
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);
  StatusOr<StepResult> Step();
  // Steps a statement that returns no rows, then resets it.
  Status Run();
  void Reset();

  int64_t ColumnInt(int index) const;
  std::string ColumnText(int index) const;  // "" for null
  bool ColumnIsNull(int index) const;
  std::string_view ColumnBlob(int index) const;
  int ColumnCount() const;

 private:
  friend class Db;
  explicit Statement(sqlite3_stmt* statement) : statement_(statement) {}
  std::unique_ptr<sqlite3_stmt, StatementFinalizer> statement_;
};

// BEGIN IMMEDIATE on construction; rolls back on destruction unless committed.
class Transaction {
 public:
  static StatusOr<Transaction> Begin(Db& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;  // null once committed or rolled back
};

}  // namespace ferry::sqlite

#endif  // FERRY_COMMON_SQLITE_H_
