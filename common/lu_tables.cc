#include "common/lu_tables.h"

#include <algorithm>

namespace ferry {
namespace {

const char* SqlType(config::AttributeType type) {
  switch (type) {
    case config::INTEGER:
      return "INTEGER";
    case config::REAL:
      return "REAL";
    default:
      return "TEXT";
  }
}

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// "a=? AND b=?" for `columns`.
std::string Conditions(const std::vector<std::string>& columns) {
  std::vector<std::string> parts;
  for (const auto& c : columns) parts.push_back("\"" + c + "\"=?");
  return Join(parts, " AND ");
}

// How errors name the row a change is about. Built only for an error: Apply runs for every
// change at the master and at every replica.
std::string RowOf(const wire::LuChange& change) { return RowName(change.lu(), change.keys()); }

// `status` with the changed row's name in front, when it is an error.
Status ForRow(Status status, const wire::LuChange& change) {
  return status.ok() ? status : status.Annotate(RowOf(change));
}

// The row `s` is on (SELECT * or RETURNING *): its non-null columns by name.
Row RowAt(const config::LogicalUnit& lu, const sqlite::Statement& s) {
  Row row;
  for (int i = 0; i < lu.attributes_size(); ++i) {
    if (!s.ColumnIsNull(i)) row[lu.attributes(i).name()] = s.ColumnText(i);
  }
  return row;
}

std::vector<std::string> ToVector(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

}  // namespace

Status LuTables::CreateTables() {
  for (const auto& lu : catalog_->proto().lus()) {
    std::vector<std::string> columns;
    for (const auto& attribute : lu.attributes()) {
      bool is_key = std::find(lu.key().begin(), lu.key().end(), attribute.name()) != lu.key().end();
      columns.push_back("\"" + attribute.name() + "\" " + SqlType(attribute.type()) +
                        (is_key ? " NOT NULL" : ""));
    }
    std::vector<std::string> quoted_key;
    for (const auto& key : lu.key()) quoted_key.push_back("\"" + key + "\"");
    columns.push_back("PRIMARY KEY (" + Join(quoted_key, ", ") + ")");
    for (const auto& reference : lu.references()) {
      const config::LogicalUnit* target = catalog_->FindLu(reference.lu());
      std::vector<std::string> local, remote;
      for (const auto& a : reference.attributes()) local.push_back("\"" + a + "\"");
      for (const auto& k : target->key()) remote.push_back("\"" + k + "\"");
      columns.push_back("FOREIGN KEY (" + Join(local, ", ") + ") REFERENCES \"" +
                        TableName(target->name()) + "\" (" + Join(remote, ", ") + ")");
    }
    // WITHOUT ROWID: the row lives in its key's b-tree, so a write touches one page fewer.
    FERRY_RETURN_IF_ERROR(db_.Exec("CREATE TABLE IF NOT EXISTS \"" + TableName(lu.name()) + "\" (" +
                                   Join(columns, ", ") + ") WITHOUT ROWID"));
    // An index per reference, so refusing to remove a referenced row is not a table scan;
    // none where the key starts with the reference's attributes (its b-tree serves), and none
    // where the catalog says `unindexed` (dropped if an earlier configuration made it).
    for (int i = 0; i < lu.references_size(); ++i) {
      const auto& attributes = lu.references(i).attributes();
      if (attributes.size() <= lu.key_size() &&
          std::equal(attributes.begin(), attributes.end(), lu.key().begin())) {
        continue;
      }
      const std::string index = "\"" + TableName(lu.name()) + "_ref" + std::to_string(i) + "\"";
      if (lu.references(i).unindexed()) {
        FERRY_RETURN_IF_ERROR(db_.Exec("DROP INDEX IF EXISTS " + index));
        continue;
      }
      std::vector<std::string> local;
      for (const auto& a : attributes) local.push_back("\"" + a + "\"");
      FERRY_RETURN_IF_ERROR(db_.Exec("CREATE INDEX IF NOT EXISTS " + index + " ON \"" +
                                     TableName(lu.name()) + "\" (" + Join(local, ", ") + ")"));
    }
  }
  return Status::Ok();
}

StatusOr<sqlite::Statement*> LuTables::Cached(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    auto statement = db_.Prepare(sql);
    if (!statement.ok()) return statement.status();
    it = statements_.emplace(sql, std::move(statement).value()).first;
  }
  return &it->second;
}

StatusOr<std::optional<Row>> LuTables::ReadRow(const config::LogicalUnit& lu, const Row& key) {
  auto statement = Cached("SELECT * FROM \"" + TableName(lu.name()) + "\" WHERE " +
                          Conditions(ToVector(lu.key())));
  if (!statement.ok()) return statement.status();
  sqlite::Statement& s = **statement;
  for (int i = 0; i < lu.key_size(); ++i) s.Bind(i + 1, key.at(lu.key(i)));
  auto step = s.Step();
  if (!step.ok()) {
    s.Reset();
    return step.status();
  }
  std::optional<Row> row;
  if (*step == sqlite::Statement::StepResult::kRow) row = RowAt(lu, s);
  s.Reset();
  return row;
}

StatusOr<std::vector<Row>> LuTables::ReadAll(const config::LogicalUnit& lu) {
  std::vector<Row> rows;
  FERRY_RETURN_IF_ERROR(ForEachRow(lu, [&rows](Row row) {
    rows.push_back(std::move(row));
    return Status::Ok();
  }));
  return rows;
}

Status LuTables::ForEachRow(const config::LogicalUnit& lu,
                            const std::function<Status(Row)>& visit) {
  std::vector<std::string> key;
  for (const auto& k : lu.key()) key.push_back("\"" + k + "\"");
  auto statement =
      db_.Prepare("SELECT * FROM \"" + TableName(lu.name()) + "\" ORDER BY " + Join(key, ", "));
  if (!statement.ok()) return statement.status();
  while (true) {
    auto step = statement->Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) return Status::Ok();
    FERRY_RETURN_IF_ERROR(visit(RowAt(lu, *statement)));
  }
}

Status LuTables::DeleteAll() {
  const auto& order = catalog_->ParentsFirst();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    FERRY_RETURN_IF_ERROR(db_.Exec("DELETE FROM \"" + TableName((*it)->name()) + "\""));
  }
  return Status::Ok();
}

Status LuTables::CheckReference(const wire::LuChange& change, const config::Reference& reference,
                                const Row& row) {
  Row target_key;
  const config::LogicalUnit* target = catalog_->FindLu(reference.lu());
  for (int i = 0; i < reference.attributes_size(); ++i) {
    auto it = row.find(reference.attributes(i));
    if (it == row.end()) return Status::Ok();  // a reference with a null part points nowhere
    target_key[target->key(i)] = it->second;
  }
  auto found = ReadRow(*target, target_key);
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return Status::NotFound(RowOf(change) + " references " +
                            RowName(target->name(), ToVector(target->key()), target_key) +
                            ", which does not exist");
  }
  return Status::Ok();
}

Status LuTables::CheckNotReferenced(const wire::LuChange& change, const config::LogicalUnit& lu,
                                    const Row& row) {
  for (const auto& [child, reference] : catalog_->ReferencesTo(lu.name())) {
    auto statement = Cached("SELECT * FROM \"" + TableName(child->name()) + "\" WHERE " +
                            Conditions(ToVector(reference->attributes())) + " LIMIT 1");
    if (!statement.ok()) return statement.status();
    sqlite::Statement& s = **statement;
    for (int i = 0; i < lu.key_size(); ++i) s.Bind(i + 1, row.at(lu.key(i)));
    auto step = s.Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kRow) {
      const Row child_row = RowAt(*child, s);
      s.Reset();
      return Status::InvalidArgument("cannot remove " + RowOf(change) + ": " +
                                     RowName(child->name(), ToVector(child->key()), child_row) +
                                     " references it");
    }
    s.Reset();
  }
  return Status::Ok();
}

Status LuTables::Apply(const wire::LuChange& change, Row* row_out) {
  const config::LogicalUnit* lu = catalog_->FindLu(change.lu());
  if (!lu) return Status::InvalidArgument("unknown LU '" + change.lu() + "'");
  LuStatements& statements = lu_statements_[lu];
  // The SQL is built only when a statement is first prepared.
  auto table = [lu] { return "\"" + TableName(lu->name()) + "\""; };
  auto where = [lu] { return " WHERE " + Conditions(ToVector(lu->key())); };

  if (change.action() == wire::NEW) {
    if (!statements.insert) {
      // Every column, absent ones null: one statement per LU whatever a change carries.
      std::vector<std::string> columns, marks;
      for (const auto& attribute : lu->attributes()) {
        columns.push_back("\"" + attribute.name() + "\"");
        marks.push_back("?");
      }
      auto insert = db_.Prepare("INSERT INTO " + table() + " (" + Join(columns, ", ") +
                                ") VALUES (" + Join(marks, ", ") + ")");
      if (!insert.ok()) return insert.status();
      statements.insert.emplace(std::move(insert).value());
    }
    sqlite::Statement& s = *statements.insert;
    for (int i = 0; i < lu->attributes_size(); ++i) {
      const std::string& name = lu->attributes(i).name();
      auto key = change.keys().find(name);
      auto attribute = change.attributes().find(name);
      if (key != change.keys().end()) {
        s.Bind(i + 1, key->second);
      } else if (attribute != change.attributes().end()) {
        s.Bind(i + 1, attribute->second);
      } else {
        s.BindNull(i + 1);
      }
    }
    Status inserted = s.Run();
    if (!inserted.ok()) return Explain(change, *lu, inserted);
    if (row_out) {
      row_out->clear();
      row_out->insert(change.keys().begin(), change.keys().end());
      row_out->insert(change.attributes().begin(), change.attributes().end());
    }
    return Status::Ok();
  }

  // MODIFY and REMOVE: RETURNING gives the row (routing needs it); no row, no such row.
  sqlite::Statement* statement = nullptr;
  int index = 1;
  if (change.action() == wire::REMOVE) {
    if (!statements.remove) {
      auto remove = db_.Prepare("DELETE FROM " + table() + where() + " RETURNING *");
      if (!remove.ok()) return remove.status();
      statements.remove.emplace(std::move(remove).value());
    }
    statement = &*statements.remove;
  } else {
    std::string which(lu->attributes_size(), '0');
    for (int i = 0; i < lu->attributes_size(); ++i) {
      if (change.attributes().count(lu->attributes(i).name())) which[i] = '1';
    }
    auto it = statements.update.find(which);
    if (it == statements.update.end()) {
      std::vector<std::string> assignments;
      for (int i = 0; i < lu->attributes_size(); ++i) {
        if (which[i] == '1') assignments.push_back("\"" + lu->attributes(i).name() + "\"=?");
      }
      auto update = db_.Prepare("UPDATE " + table() + " SET " + Join(assignments, ", ") + where() +
                                " RETURNING *");
      if (!update.ok()) return update.status();
      it = statements.update.emplace(which, std::move(update).value()).first;
    }
    statement = &it->second;
    for (int i = 0; i < lu->attributes_size(); ++i) {
      if (which[i] == '1') {
        statement->Bind(index++, change.attributes().at(lu->attributes(i).name()));
      }
    }
  }
  for (const auto& k : lu->key()) statement->Bind(index++, change.keys().at(k));
  auto step = statement->Step();
  if (!step.ok()) {
    statement->Reset();
    return Explain(change, *lu, step.status());
  }
  if (*step == sqlite::Statement::StepResult::kDone) {
    statement->Reset();
    return Status::NotFound(RowOf(change) + " does not exist");
  }
  if (row_out) *row_out = RowAt(*lu, *statement);
  // Stepped to the end: the statement is complete before it is reset.
  auto done = statement->Step();
  statement->Reset();
  return done.ok() ? Status::Ok() : ForRow(done.status(), change);
}

Status LuTables::Explain(const wire::LuChange& change, const config::LogicalUnit& lu,
                         Status failure) {
  // Step reports a failed constraint as InvalidArgument; anything else is not the change's.
  if (failure.code() != Status::Code::kInvalidArgument) return ForRow(failure, change);
  Row key(change.keys().begin(), change.keys().end());
  auto before = ReadRow(lu, key);
  if (!before.ok()) return ForRow(before.status(), change);
  if (change.action() == wire::NEW) {
    if (before->has_value()) return Status::AlreadyExists(RowOf(change) + " already exists");
    Row after = key;
    after.insert(change.attributes().begin(), change.attributes().end());
    for (const auto& reference : lu.references()) {
      FERRY_RETURN_IF_ERROR(CheckReference(change, reference, after));
    }
  } else if (before->has_value() && change.action() == wire::REMOVE) {
    FERRY_RETURN_IF_ERROR(CheckNotReferenced(change, lu, **before));
  } else if (before->has_value()) {
    Row after = std::move(**before);
    for (const auto& [column, value] : change.attributes()) after[column] = value;
    for (const auto& reference : lu.references()) {
      FERRY_RETURN_IF_ERROR(CheckReference(change, reference, after));
    }
  }
  return ForRow(failure, change);  // a constraint the reads do not explain: SQLite's words
}

}  // namespace ferry
