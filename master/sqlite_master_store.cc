#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/log.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
#include "master/commit_log.h"
#include "master/master_store.h"

namespace ferry {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS ferry_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferry_streams (
  site TEXT PRIMARY KEY,
  latest_sequence INTEGER NOT NULL,
  acknowledged_sequence INTEGER NOT NULL,
  configuration_digest TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS ferry_submits (
  idempotency_key TEXT PRIMARY KEY,
  committed_at_us INTEGER NOT NULL,
  reply BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ferry_submits_by_time ON ferry_submits (committed_at_us);
CREATE TABLE IF NOT EXISTS ferry_outbox (
  site TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  transaction_id INTEGER NOT NULL,
  message BLOB NOT NULL,
  PRIMARY KEY (site, sequence)) WITHOUT ROWID;
)sql";

class SqliteMasterStore final : public MasterStore {
 public:
  SqliteMasterStore(sqlite::Db db, std::shared_ptr<const Catalog> catalog)
      : db_(std::move(db)), catalog_(catalog), tables_(db_, catalog) {}

  Status Init() {
    FERRY_RETURN_IF_ERROR(db_.Exec(kSchema));
    FERRY_RETURN_IF_ERROR(tables_.CreateTables());
    for (const auto& replica : catalog_->proto().replicas()) {
      FERRY_RETURN_IF_ERROR(db_.Exec(
          "INSERT OR IGNORE INTO ferry_streams (site, latest_sequence, acknowledged_sequence) "
          "VALUES ('" +
          replica.name() + "', 0, 0)"));  // site names are checked: no quotes
    }
    auto streams = db_.Prepare(
        "SELECT site, latest_sequence, acknowledged_sequence FROM ferry_streams ORDER BY site");
    if (!streams.ok()) return streams.status();
    while (true) {
      auto step = streams->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      StreamPosition& p = streams_[streams->ColumnText(0)];
      p.site = streams->ColumnText(0);
      p.latest_sequence = streams->ColumnInt(1);
      p.acknowledged_sequence = streams->ColumnInt(2);
      p.first_available = p.latest_sequence + 1;
    }
    // A commit writes only its outbox entries; ferry_streams is written by Prune, so a stream's
    // newest sequence is the larger of what is written there and what the outbox holds. (One
    // query per site and bound: each is a seek in the outbox's key, not a scan of its blobs.)
    auto first = db_.Prepare("SELECT MIN(sequence) FROM ferry_outbox WHERE site = ?");
    auto newest = db_.Prepare("SELECT MAX(sequence) FROM ferry_outbox WHERE site = ?");
    if (!first.ok()) return first.status();
    if (!newest.ok()) return newest.status();
    for (auto& [site, p] : streams_) {
      FERRY_RETURN_IF_ERROR(first->Bind(1, site).Step().status());
      if (!first->ColumnIsNull(0)) {
        p.first_available = first->ColumnInt(0);
        FERRY_RETURN_IF_ERROR(newest->Bind(1, site).Step().status());
        p.latest_sequence = std::max<uint64_t>(p.latest_sequence, newest->ColumnInt(0));
        newest->Reset();
      }
      first->Reset();
    }
    auto last = ReadMeta("last_transaction_id");
    if (!last.ok()) return last.status();
    if (*last) last_transaction_id_ = std::stoull(**last);
    return PrepareStatements();
  }

  std::vector<StatusOr<wire::SubmitReply>> CommitGroup(
      const std::vector<const wire::SubmitRequest*>& requests, int64_t commit_time_us) override {
    // Each request gets its reply below; this one would say that one was missed.
    std::vector<StatusOr<wire::SubmitReply>> replies(
        requests.size(), Status::Internal("the master made no reply for this submit"));
    std::vector<char> logged(requests.size(), false);  // a record was written
    // The group's records are written first, in one write, so that one fsync covers them all
    // while SQLite applies them; a run that would overflow the log is applied, the log made
    // durable and started over, and the rest follows.
    std::vector<size_t> run;  // requests whose records are gathered but not written
    std::vector<std::string> records;
    size_t run_bytes = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      auto record = RecordFor(*requests[i], commit_time_us);
      if (!record.ok()) {
        replies[i] = record.status();
        continue;
      }
      const size_t bytes = CommitLog::RecordBytes(record->size());
      if (!log_->HasRoomFor(run_bytes + bytes)) {
        // The log is full: what it holds goes into SQLite durably and it starts over (a
        // record is at most half the log, so this one fits then).
        LogAndApply(requests, run, records, commit_time_us, &replies, &logged);
        run.clear();
        records.clear();
        run_bytes = 0;
        if (Status durable = MakeDurable(); !durable.ok()) {
          replies[i] = durable;
          continue;
        }
      }
      run.push_back(i);
      records.push_back(std::move(record).value());
      run_bytes += bytes;
    }
    LogAndApply(requests, run, records, commit_time_us, &replies, &logged);
    // The replies wait for an fsync that began after the group's last record was written.
    const bool any_logged = std::find(logged.begin(), logged.end(), true) != logged.end();
    Status synced = any_logged ? log_->WaitSynced() : Status::Ok();
    if (!synced.ok()) {
      // A rejection may have depended on an earlier request of the group, which may be lost.
      broken_ = synced.Annotate("the transaction may or may not be committed: restart the master");
      for (size_t i = 0; i < replies.size(); ++i) {
        if (logged[i]) replies[i] = broken_;
      }
    }
    return replies;
  }

 private:
  // The commit log record of `request`, or why it cannot have one.
  StatusOr<std::string> RecordFor(const wire::SubmitRequest& request, int64_t commit_time_us) {
    if (request.changes().empty()) return Status::InvalidArgument("the transaction has no changes");
    if (!broken_.ok()) return broken_;
    std::string payload(sizeof commit_time_us, '\0');
    std::memcpy(payload.data(), &commit_time_us, sizeof commit_time_us);
    request.AppendToString(&payload);
    // Half the commit log: after MakeDurable there is always room for one.
    constexpr size_t kMaxTransactionBytes = CommitLog::kFileBytes / 2;
    if (payload.size() > kMaxTransactionBytes) {
      return Status::InvalidArgument("the transaction is " + std::to_string(payload.size()) +
                                     " bytes; the master takes at most " +
                                     std::to_string(kMaxTransactionBytes) + " in one");
    }
    return payload;
  }

  // Writes the records of the requests in `run` to the commit log (their fsync starts in the
  // background) and applies them, in order, in SQLite's open group; marks each one `logged`
  // once its record was written.
  void LogAndApply(const std::vector<const wire::SubmitRequest*>& requests,
                   const std::vector<size_t>& run, const std::vector<std::string>& records,
                   int64_t commit_time_us, std::vector<StatusOr<wire::SubmitReply>>* replies,
                   std::vector<char>* logged) {
    if (run.empty()) return;
    if (Status appended = log_->Append(next_record_, records); !appended.ok()) {
      for (size_t i : run) (*replies)[i] = appended;
      return;
    }
    next_record_ += run.size();
    for (size_t i : run) {
      (*logged)[i] = true;
      if (!broken_.ok()) {
        (*replies)[i] = broken_;  // its record stays: a restart applies it
        continue;
      }
      // A rejected transaction leaves its record, which a recovery rejects again.
      auto reply = Apply(*requests[i], commit_time_us);
      const Status::Code code = reply.ok() ? Status::Code::kOk : reply.status().code();
      if (code == Status::Code::kIoError || code == Status::Code::kInternal) {
        // Applied in the group or not: what this store holds in memory can no longer be
        // trusted, and a restart settles it from the log.
        broken_ = reply.status().Annotate(
            "the transaction may or may not be committed: restart the master");
        reply = broken_;
      }
      (*replies)[i] = std::move(reply);
    }
  }

 public:
  Status Flush() override {
    if (!broken_.ok()) return broken_;
    if (!group_) return Status::Ok();
    Status saved = SaveLastRecord(next_record_ - 1);
    if (saved.ok()) saved = SaveMeta("last_transaction_id", std::to_string(last_transaction_id_));
    Status committed = saved.ok() ? group_->Commit() : saved;
    group_.reset();  // rolls back what did not commit
    if (committed.ok()) return committed;
    // What this store holds in memory is now ahead of SQLite: it takes no more work.
    broken_ = committed.Annotate(
        "committing SQLite's group (the commit log keeps its transactions: restart the master)");
    return broken_;
  }

  // A broken store counts as unflushed: the owner's next Flush reports it.
  bool HasUnflushed() const override { return group_.has_value() || !broken_.ok(); }

  // Applies a logged transaction in SQLite's open group, in a savepoint of its own: at its
  // commit, or again after a crash took it from SQLite. The same rows give the same outcome,
  // transaction id and sequences.
  StatusOr<wire::SubmitReply> Apply(const wire::SubmitRequest& request, int64_t commit_time_us) {
    if (!group_) {
      auto group = sqlite::Transaction::Begin(db_);
      if (!group.ok()) return group.status();
      group_.emplace(std::move(group).value());
    }
    FERRY_RETURN_IF_ERROR(savepoint_->Run());
    auto reply = ApplyInSavepoint(request, commit_time_us);
    if (!reply.ok()) FERRY_RETURN_IF_ERROR(rollback_->Run());  // this transaction only
    FERRY_RETURN_IF_ERROR(release_->Run());
    if (reply.ok()) {
      last_transaction_id_ = std::max(last_transaction_id_, reply->transaction_id());
      for (const auto& position : reply->published()) {
        uint64_t& latest = streams_[position.site()].latest_sequence;
        latest = std::max(latest, position.sequence());  // an idempotent repeat is older
      }
    }
    return reply;
  }

  StatusOr<wire::SubmitReply> ApplyInSavepoint(const wire::SubmitRequest& request,
                                               int64_t commit_time_us) {
    if (!request.idempotency_key().empty()) {
      auto earlier = FindSubmit(request.idempotency_key());
      if (!earlier.ok() || earlier->has_value()) {
        if (!earlier.ok()) return earlier.status();
        return std::move(**earlier);  // committed before: the same answer, nothing new
      }
    }
    const uint64_t transaction_id = last_transaction_id_ + 1;
    std::map<std::string, wire::ReplicationMessage> messages;  // by target site
    for (int i = 0; i < request.changes_size(); ++i) {
      const wire::LuChange& change = request.changes(i);
      const std::string where = "change " + std::to_string(i + 1);
      FERRY_RETURN_IF_ERROR(catalog_->ValidateChange(change).Annotate(where));
      const config::LogicalUnit& lu = *catalog_->FindLu(change.lu());
      if (change.action() == wire::MODIFY) {
        FERRY_RETURN_IF_ERROR(CheckRoutingUnchanged(lu, change).Annotate(where));
      }
      Row row;
      FERRY_RETURN_IF_ERROR(tables_.Apply(change, &row).Annotate(where));
      for (const auto& replica : catalog_->proto().replicas()) {
        if (catalog_->RoutesTo(replica, lu, row)) *messages[replica.name()].add_changes() = change;
      }
    }
    wire::SubmitReply reply;
    reply.set_transaction_id(transaction_id);
    for (auto& [site, message] : messages) {
      message.set_site(site);
      message.set_sequence(streams_[site].latest_sequence + 1);
      message.set_message_class(wire::RECEIVE_MESSAGE);
      message.set_origin_site(catalog_->proto().master_site());
      message.set_transaction_id(transaction_id);
      message.set_commit_time_us(commit_time_us);
      FERRY_RETURN_IF_ERROR(Append(message));
      wire::SitePosition* position = reply.add_published();
      position->set_site(site);
      position->set_sequence(message.sequence());
    }
    if (!request.idempotency_key().empty()) {
      std::string bytes;
      reply.SerializeToString(&bytes);
      FERRY_RETURN_IF_ERROR(insert_submit_->Bind(1, request.idempotency_key())
                                .Bind(2, commit_time_us)
                                .BindBlob(3, bytes)
                                .Run());
    }
    return reply;
  }

  // A MODIFY may not change the company or site that routes its row: the replica sites that
  // hold the row would change, and they would get a MODIFY of a row they lack, or keep one
  // they no longer get changes of. Only a MODIFY that sets such a column pays for the read.
  Status CheckRoutingUnchanged(const config::LogicalUnit& lu, const wire::LuChange& change) {
    std::vector<const std::string*> routing;
    for (const std::string* column : {&lu.company_attribute(), &lu.site_attribute()}) {
      if (!column->empty() && change.attributes().count(*column)) routing.push_back(column);
    }
    if (routing.empty()) return Status::Ok();
    auto before = tables_.ReadRow(lu, Row(change.keys().begin(), change.keys().end()));
    if (!before.ok()) return before.status();
    if (!*before) return Status::Ok();  // Apply names the missing row
    for (const std::string* column : routing) {
      const std::string& now = change.attributes().at(*column);
      auto was = (*before)->find(*column);
      if (was != (*before)->end() && was->second == now) continue;
      const std::string old_value = was == (*before)->end() ? "null" : "'" + was->second + "'";
      return Status::InvalidArgument(RowName(change.lu(), change.keys()) + ": " + *column + " is " +
                                     old_value + " and cannot become '" + now +
                                     "': it decides which replica sites hold the row; REMOVE "
                                     "the row and add it anew instead");
    }
    return Status::Ok();
  }

  StatusOr<std::vector<std::string>> PublishConfiguration(int64_t now_us) override {
    const std::string digest = catalog_->Digest();
    FERRY_RETURN_IF_ERROR(Flush());
    auto stale =
        db_.Prepare("SELECT site FROM ferry_streams WHERE configuration_digest != ? ORDER BY site");
    if (!stale.ok()) return stale.status();
    stale->Bind(1, digest);
    std::vector<std::string> sites;
    while (true) {
      auto step = stale->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      if (catalog_->FindReplica(stale->ColumnText(0))) sites.push_back(stale->ColumnText(0));
    }
    if (sites.empty()) return sites;
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    std::map<std::string, uint64_t> sequences;
    for (const auto& site : sites) {
      const bool new_stream = streams_[site].latest_sequence == 0;
      const wire::ReplicationMessage message =
          ConfigurationMessage(site, streams_[site].latest_sequence + 1, now_us);
      FERRY_RETURN_IF_ERROR(Append(message));
      auto mark = db_.Prepare("UPDATE ferry_streams SET configuration_digest=? WHERE site=?");
      if (!mark.ok()) return mark.status();
      FERRY_RETURN_IF_ERROR(mark->Bind(1, digest).Bind(2, site).Run());
      sequences[site] = message.sequence();
      if (new_stream) {
        // A site added after rows were committed: what it missed comes as a snapshot.
        auto last =
            AppendSnapshotParts(site, message.sequence() + 1, now_us, /*skip_if_empty=*/true);
        if (!last.ok()) return last.status();
        sequences[site] = *last;
      }
    }
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    FERRY_RETURN_IF_ERROR(MakeDurable());  // before any of it is sent
    for (const auto& [site, sequence] : sequences) streams_[site].latest_sequence = sequence;
    return sites;
  }

  StatusOr<uint64_t> AppendSnapshot(const std::string& site, int64_t now_us) override {
    if (!catalog_->FindReplica(site)) return Status::NotFound("no replica site " + site);
    FERRY_RETURN_IF_ERROR(Flush());
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    // The configuration comes first: the site may have none yet (a lost database).
    const uint64_t first = streams_[site].latest_sequence + 1;
    FERRY_RETURN_IF_ERROR(Append(ConfigurationMessage(site, first, now_us)));
    auto last = AppendSnapshotParts(site, first + 1, now_us, /*skip_if_empty=*/false);
    if (!last.ok()) return last.status();
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    FERRY_RETURN_IF_ERROR(MakeDurable());  // before any of it is sent
    streams_[site].latest_sequence = *last;
    return first;
  }

  StatusOr<PruneResult> Prune(uint64_t quota, int64_t now_us) override {
    FERRY_RETURN_IF_ERROR(Flush());
    auto transaction = sqlite::Transaction::Begin(db_);
    if (!transaction.ok()) return transaction.status();
    PruneResult result;
    std::map<std::string, uint64_t> floors;
    for (auto& [site, p] : streams_) {
      FERRY_RETURN_IF_ERROR(set_position_->Bind(1, static_cast<int64_t>(p.latest_sequence))
                                .Bind(2, static_cast<int64_t>(p.acknowledged_sequence))
                                .Bind(3, site)
                                .Run());
      uint64_t floor = p.acknowledged_sequence;
      if (p.latest_sequence > quota && p.latest_sequence - quota > floor) {
        floor = p.latest_sequence - quota;
        if (floor >= p.first_available) result.past_quota.push_back(site);
      }
      if (floor < p.first_available) continue;
      FERRY_RETURN_IF_ERROR(
          prune_outbox_->Bind(1, site).Bind(2, static_cast<int64_t>(floor)).Run());
      result.entries += sqlite3_changes(db_.handle());
      floors[site] = floor;
    }
    FERRY_RETURN_IF_ERROR(prune_submits_->Bind(1, now_us - int64_t{24} * 3600 * 1000000).Run());
    FERRY_RETURN_IF_ERROR(transaction->Commit());
    // Each maintenance tick that follows new commits: the commit log starts over.
    if (next_record_ - 1 > durable_record_) FERRY_RETURN_IF_ERROR(MakeDurable());
    for (const auto& [site, floor] : floors) streams_[site].first_available = floor + 1;
    return result;
  }

  StatusOr<std::vector<OutboxEntry>> ReadOutbox(const std::string& site, uint64_t from_sequence,
                                                size_t max) override {
    if (!broken_.ok()) return broken_;
    read_outbox_->Bind(1, site)
        .Bind(2, static_cast<int64_t>(from_sequence))
        .Bind(3, static_cast<int64_t>(max));
    std::vector<OutboxEntry> entries;
    while (true) {
      auto step = read_outbox_->Step();
      if (!step.ok()) return step.status();
      if (*step == sqlite::Statement::StepResult::kDone) break;
      entries.push_back({static_cast<uint64_t>(read_outbox_->ColumnInt(0)),
                         std::string(read_outbox_->ColumnBlob(1))});
    }
    read_outbox_->Reset();
    return entries;
  }

  Status RecordAcknowledged(const std::string& site, uint64_t sequence) override {
    auto it = streams_.find(site);
    if (it == streams_.end()) return Status::NotFound("no stream for site " + site);
    // Kept in memory and written with the next Prune: an ack costs no fsync, and a position
    // lost to a crash is restored by the site's next hello.
    if (sequence > it->second.acknowledged_sequence) it->second.acknowledged_sequence = sequence;
    return Status::Ok();
  }

  std::vector<StreamPosition> Streams() const override {
    std::vector<StreamPosition> out;
    for (const auto& [site, position] : streams_) out.push_back(position);
    return out;
  }

  StreamPosition Position(const std::string& site) const override {
    auto it = streams_.find(site);
    return it == streams_.end() ? StreamPosition{} : it->second;
  }

  uint64_t LastTransactionId() const override { return last_transaction_id_; }
  uint64_t DurableSyncs() const override { return log_->syncs(); }
  uint64_t SyncPollCpuMicros() const override { return log_->poll_cpu_us(); }

 private:
  Status PrepareStatements() {
    auto prepare = [this](std::optional<sqlite::Statement>& slot, const char* sql) {
      auto statement = db_.Prepare(sql);
      if (!statement.ok()) return statement.status();
      slot.emplace(std::move(statement).value());
      return Status::Ok();
    };
    FERRY_RETURN_IF_ERROR(prepare(
        insert_outbox_,
        "INSERT INTO ferry_outbox (site, sequence, transaction_id, message) VALUES (?, ?, ?, ?)"));
    FERRY_RETURN_IF_ERROR(prepare(
        set_position_,
        "UPDATE ferry_streams SET latest_sequence=?, acknowledged_sequence=? WHERE site=?"));
    FERRY_RETURN_IF_ERROR(prepare(set_meta_,
                                  "INSERT INTO ferry_meta (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO UPDATE SET value=excluded.value"));
    FERRY_RETURN_IF_ERROR(
        prepare(insert_submit_,
                "INSERT INTO ferry_submits (idempotency_key, committed_at_us, reply) "
                "VALUES (?, ?, ?)"));
    FERRY_RETURN_IF_ERROR(
        prepare(find_submit_, "SELECT reply FROM ferry_submits WHERE idempotency_key = ?"));
    FERRY_RETURN_IF_ERROR(
        prepare(prune_outbox_, "DELETE FROM ferry_outbox WHERE site = ? AND sequence <= ?"));
    FERRY_RETURN_IF_ERROR(
        prepare(prune_submits_, "DELETE FROM ferry_submits WHERE committed_at_us < ?"));
    FERRY_RETURN_IF_ERROR(prepare(savepoint_, "SAVEPOINT submit"));
    FERRY_RETURN_IF_ERROR(prepare(rollback_, "ROLLBACK TO submit"));
    FERRY_RETURN_IF_ERROR(prepare(release_, "RELEASE submit"));
    FERRY_RETURN_IF_ERROR(
        prepare(read_outbox_,
                "SELECT sequence, message FROM ferry_outbox WHERE site=? AND sequence>=? "
                "ORDER BY sequence LIMIT ?"));
    return Status::Ok();
  }

  wire::ReplicationMessage ConfigurationMessage(const std::string& site, uint64_t sequence,
                                                int64_t now_us) const {
    wire::ReplicationMessage message;
    message.set_site(site);
    message.set_sequence(sequence);
    message.set_message_class(wire::RECEIVE_CONFIGURATION);
    message.set_origin_site(catalog_->proto().master_site());
    message.set_commit_time_us(now_us);
    *message.mutable_configuration() = catalog_->proto();
    return message;
  }

  // Appends the snapshot parts of `site` from sequence `first` on and returns the last
  // sequence used (first - 1 when `skip_if_empty` and the site gets no row).
  // REQUIRES: in a transaction.
  StatusOr<uint64_t> AppendSnapshotParts(const std::string& site, uint64_t first, int64_t now_us,
                                         bool skip_if_empty) {
    constexpr int kChangesPerPart = 500;
    const config::ReplicaSite& replica = *catalog_->FindReplica(site);
    uint64_t sequence = first;
    size_t rows = 0;
    wire::ReplicationMessage part;
    auto flush = [&](bool last) {
      part.set_site(site);
      part.set_sequence(sequence++);
      part.set_message_class(wire::RECEIVE_SNAPSHOT);
      part.set_origin_site(catalog_->proto().master_site());
      part.set_commit_time_us(now_us);
      part.mutable_snapshot()->set_first(part.sequence() == first);
      part.mutable_snapshot()->set_last(last);
      Status appended = Append(part);
      part.Clear();
      return appended;
    };
    for (const config::LogicalUnit* lu : catalog_->ParentsFirst()) {
      if (std::find(replica.lus().begin(), replica.lus().end(), lu->name()) ==
          replica.lus().end()) {
        continue;
      }
      auto add = [&](Row row) {
        wire::LuChange* change = part.add_changes();
        change->set_lu(lu->name());
        change->set_action(wire::NEW);
        for (auto& [column, value] : row) {
          const bool key = std::find(lu->key().begin(), lu->key().end(), column) != lu->key().end();
          (*(key ? change->mutable_keys() : change->mutable_attributes()))[column] =
              std::move(value);
        }
        ++rows;
        return part.changes_size() >= kChangesPerPart ? flush(false) : Status::Ok();
      };
      // Key order suits rows that reference only other LUs (sent before them). A row that
      // references a row of its own LU must come after it: those are ordered in memory.
      const bool self_referencing = ReferencesItself(*lu);
      std::vector<Row> held;
      FERRY_RETURN_IF_ERROR(tables_.ForEachRow(*lu, [&](Row row) {
        if (!catalog_->RoutesTo(replica, *lu, row)) return Status::Ok();
        if (self_referencing) {
          held.push_back(std::move(row));
          return Status::Ok();
        }
        return add(std::move(row));
      }));
      for (Row& row : SelfReferencedRowsFirst(*lu, std::move(held))) {
        FERRY_RETURN_IF_ERROR(add(std::move(row)));
      }
    }
    if (rows == 0 && skip_if_empty) return first - 1;
    FERRY_RETURN_IF_ERROR(flush(true));
    return sequence - 1;
  }

  // The reply to the transaction committed under `key`, if any.
  StatusOr<std::optional<wire::SubmitReply>> FindSubmit(const std::string& key) {
    find_submit_->Bind(1, key);
    auto step = find_submit_->Step();
    if (!step.ok()) return step.status();
    std::optional<wire::SubmitReply> reply;
    if (*step == sqlite::Statement::StepResult::kRow) {
      reply.emplace();
      std::string_view bytes = find_submit_->ColumnBlob(0);
      if (!reply->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        find_submit_->Reset();
        return Status::Malformed("the stored reply of idempotency key '" + key +
                                 "' does not decode");
      }
    }
    find_submit_->Reset();
    return reply;
  }

  // Stores `message` as the next entry of its site's stream. REQUIRES: in a transaction.
  Status Append(const wire::ReplicationMessage& message) {
    std::string bytes;
    message.SerializeToString(&bytes);
    insert_outbox_->Bind(1, message.site())
        .Bind(2, static_cast<int64_t>(message.sequence()))
        .Bind(3, static_cast<int64_t>(message.transaction_id()))
        .BindBlob(4, bytes);
    return insert_outbox_->Run();
  }

  Status SaveMeta(const std::string& key, const std::string& value) {
    return set_meta_->Bind(1, key).Bind(2, value).Run();
  }
  // The newest commit log record SQLite has. REQUIRES: in a transaction.
  Status SaveLastRecord(uint64_t record) {
    return SaveMeta("last_log_record", std::to_string(record));
  }
  StatusOr<std::optional<std::string>> ReadMeta(const std::string& key) {
    auto read = db_.Prepare("SELECT value FROM ferry_meta WHERE key = ?");
    if (!read.ok()) return read.status();
    auto step = read->Bind(1, key).Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) return std::optional<std::string>();
    return std::optional<std::string>(read->ColumnText(0));
  }

  // Everything committed so far durable in SQLite (one fsync of its WAL): the commit log's
  // records are not needed any more, and it starts over. Also records the configuration the
  // next records are committed under: they may only be applied again under it.
  Status MakeDurable() {
    FERRY_RETURN_IF_ERROR(Flush());
    FERRY_RETURN_IF_ERROR(db_.CommitDurably([&] {
      FERRY_RETURN_IF_ERROR(SaveMeta("commit_log_configuration", catalog_->Digest()));
      return SaveLastRecord(next_record_ - 1);
    }));
    durable_record_ = next_record_ - 1;
    log_->Restart();
    return Status::Ok();
  }

 public:
  // Opens the commit log and applies the records SQLite lacks (a crash took its open group,
  // or its last commits before their fsync), then makes SQLite durable and starts the log over.
  // Returns how many records it applied.
  StatusOr<size_t> Recover(const std::string& log_path) {
    auto stored = ReadMeta("last_log_record");
    if (!stored.ok()) return stored.status();
    const uint64_t last = *stored ? std::stoull(**stored) : 0;
    std::vector<CommitLog::Record> records;
    auto log = CommitLog::Open(log_path, &records);
    if (!log.ok()) return log.status();
    log_ = std::move(log).value();
    if (!*stored && !records.empty()) {
      // A new database writes last_log_record before its first commit: these records belong
      // to another one (deleted, its log left behind). The file goes, so that none of them
      // can be read after the new database's records either.
      LogWarning("commit log " + log_path + " holds " + std::to_string(records.size()) +
                 " records of another database: not applied, and removed");
      log_.reset();
      std::filesystem::remove(log_path);
      log = CommitLog::Open(log_path, &records);
      if (!log.ok()) return log.status();
      log_ = std::move(log).value();
    }
    next_record_ = last + 1;
    const size_t missing = std::count_if(records.begin(), records.end(),
                                         [last](const auto& r) { return r.number > last; });
    if (missing > 0) {
      auto configuration = ReadMeta("commit_log_configuration");
      if (!configuration.ok()) return configuration.status();
      if (*configuration && **configuration != catalog_->Digest()) {
        return Status::InvalidArgument(
            "commit log " + log_path + " holds " + std::to_string(missing) +
            " committed transactions the database lacks, committed under another master "
            "configuration: start the master once with the configuration it ran with, then "
            "with the new one");
      }
    }
    size_t replayed = 0;
    for (const auto& record : records) {
      if (record.number <= last) continue;
      int64_t commit_time_us = 0;
      wire::SubmitRequest request;
      if (record.payload.size() < sizeof commit_time_us ||
          !request.ParseFromArray(
              record.payload.data() + sizeof commit_time_us,
              static_cast<int>(record.payload.size() - sizeof commit_time_us))) {
        return Status::Malformed("commit log " + log_path + ": record " +
                                 std::to_string(record.number) + " does not decode");
      }
      std::memcpy(&commit_time_us, record.payload.data(), sizeof commit_time_us);
      next_record_ = record.number + 1;
      auto applied = Apply(request, commit_time_us);
      // A rejection was a rejection the first time too; anything else stops the start.
      if (!applied.ok() && (applied.status().code() == Status::Code::kIoError ||
                            applied.status().code() == Status::Code::kInternal)) {
        return applied.status().Annotate("applying commit log record " +
                                         std::to_string(record.number) + " again");
      }
      ++replayed;
    }
    FERRY_RETURN_IF_ERROR(MakeDurable());
    return replayed;
  }

 private:
  sqlite::Db db_;
  std::shared_ptr<const Catalog> catalog_;
  LuTables tables_;
  std::map<std::string, StreamPosition> streams_;  // by site; ferry_streams as of Prune
  uint64_t last_transaction_id_ = 0;
  std::optional<sqlite::Statement> insert_outbox_, set_position_, set_meta_, read_outbox_,
      insert_submit_, find_submit_, savepoint_, rollback_, release_, prune_outbox_, prune_submits_;
  std::unique_ptr<CommitLog> log_;
  uint64_t next_record_ = 1;     // the commit log's next record number
  uint64_t durable_record_ = 0;  // records up to here are durable in SQLite
  Status broken_;                // a group that did not commit: reopen the store
  // SQLite's open transaction: the submitted transactions since the last Flush, each durable
  // by its commit log record. Last: it rolls back (leaving them to the log) before the rest go.
  std::optional<sqlite::Transaction> group_;
};

}  // namespace

StatusOr<std::unique_ptr<MasterStore>> OpenSqliteMasterStore(
    const std::string& path, std::shared_ptr<const Catalog> catalog) {
  // No fsync per SQLite commit: the commit log makes each transaction durable.
  auto db = sqlite::Db::Open(path, {.synchronous_full = false});
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqliteMasterStore>(std::move(db).value(), std::move(catalog));
  FERRY_RETURN_IF_ERROR(store->Init().Annotate("master database " + path));
  auto replayed = store->Recover(path + "-commits");
  if (!replayed.ok()) return replayed.status().Annotate("master database " + path);
  if (*replayed > 0) {
    LogWarning("master database " + path + ": " + std::to_string(*replayed) +
               " transactions applied again from its commit log (a crash took them from SQLite)");
  }
  return std::unique_ptr<MasterStore>(std::move(store));
}

}  // namespace ferry
