#include "common/catalog.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

namespace ferry {
namespace {

bool IsIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Site names may also hold '-' ("SITE-A"); they name streams, never SQL.
bool IsSiteName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Collects protobuf's text-format parse errors with their line and column.
class ParseErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!text_.empty()) text_ += "; ";
    text_ += "line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) + ": " +
             message;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

}  // namespace

std::string RowName(const std::string& lu,
                    const google::protobuf::Map<std::string, std::string>& keys) {
  std::map<std::string, std::string> sorted(keys.begin(), keys.end());
  std::string out = lu + "[";
  bool first = true;
  for (const auto& [k, v] : sorted) {
    out += (first ? "" : ", ") + k + "=" + v;
    first = false;
  }
  return out + "]";
}

std::string RowName(const std::string& lu, const std::vector<std::string>& key_names,
                    const Row& row) {
  std::string out = lu + "[";
  for (size_t i = 0; i < key_names.size(); ++i) {
    auto it = row.find(key_names[i]);
    out += (i ? ", " : "") + key_names[i] + "=" + (it == row.end() ? "null" : it->second);
  }
  return out + "]";
}

bool ValueFitsType(const std::string& value, config::AttributeType type) {
  if (type == config::TEXT) return true;
  // Strict decimal forms only: no blanks, no hex, no inf or nan, which SQLite would store as
  // something other than what the sender meant.
  size_t i = 0;
  auto digits = [&value, &i] {
    size_t start = i;
    while (i < value.size() && std::isdigit(static_cast<unsigned char>(value[i]))) ++i;
    return i > start;
  };
  if (i < value.size() && value[i] == '-') ++i;
  if (!digits()) return false;
  if (type == config::INTEGER) {
    if (i != value.size()) return false;
    errno = 0;
    std::strtoll(value.c_str(), nullptr, 10);
    return errno == 0;  // out of range otherwise
  }
  if (i < value.size() && value[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < value.size() && (value[i] == 'e' || value[i] == 'E')) {
    ++i;
    if (i < value.size() && (value[i] == '-' || value[i] == '+')) ++i;
    if (!digits()) return false;
  }
  if (i != value.size()) return false;
  // "1e999" overflows to infinity, which SQLite would store as Inf.
  return !std::isinf(std::strtod(value.c_str(), nullptr));
}

bool ReferencesItself(const config::LogicalUnit& lu) {
  return std::any_of(lu.references().begin(), lu.references().end(),
                     [&](const config::Reference& r) { return r.lu() == lu.name(); });
}

std::vector<Row> SelfReferencedRowsFirst(const config::LogicalUnit& lu, std::vector<Row> rows) {
  // A row's identity: its key values, joined by a byte no value holds.
  auto key_of = [](const std::vector<const std::string*>& values) {
    std::string key;
    for (const std::string* value : values) key.append(*value).push_back('\x1f');
    return key;
  };
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<const std::string*> values;
    for (const auto& column : lu.key()) values.push_back(&rows[i].at(column));
    index.emplace(key_of(values), i);
  }
  // Kahn's order: a row is ready when every row of `rows` it references has been placed.
  std::vector<int> waits(rows.size(), 0);
  std::vector<std::vector<size_t>> children(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const auto& reference : lu.references()) {
      if (reference.lu() != lu.name()) continue;
      std::vector<const std::string*> values;
      for (const auto& column : reference.attributes()) {
        auto it = rows[i].find(column);
        if (it == rows[i].end()) break;  // a null part references nothing
        values.push_back(&it->second);
      }
      if (values.size() != static_cast<size_t>(reference.attributes_size())) continue;
      auto parent = index.find(key_of(values));
      if (parent == index.end() || parent->second == i) continue;
      ++waits[i];
      children[parent->second].push_back(i);
    }
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (waits[i] == 0) order.push_back(i);
  }
  for (size_t at = 0; at < order.size(); ++at) {
    for (size_t child : children[order[at]]) {
      if (--waits[child] == 0) order.push_back(child);
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (waits[i] > 0) order.push_back(i);  // in a cycle
  }
  std::vector<Row> ordered;
  ordered.reserve(rows.size());
  for (size_t i : order) ordered.push_back(std::move(rows[i]));
  return ordered;
}

StatusOr<std::shared_ptr<const Catalog>> Catalog::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read master configuration " + path);
  std::stringstream text;
  text << in.rdbuf();
  config::MasterConfiguration config;
  google::protobuf::TextFormat::Parser parser;
  ParseErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &config)) {
    return Status::InvalidArgument("master configuration " + path + ": " + errors.text());
  }
  auto catalog = FromProto(std::move(config));
  if (!catalog.ok()) return catalog.status().Annotate("master configuration " + path);
  return catalog;
}

StatusOr<std::shared_ptr<const Catalog>> Catalog::FromProto(config::MasterConfiguration config) {
  std::shared_ptr<Catalog> catalog(new Catalog(std::move(config)));
  FERRY_RETURN_IF_ERROR(catalog->Check());
  return std::shared_ptr<const Catalog>(std::move(catalog));
}

Status Catalog::Check() {
  if (config_.master_site().empty()) return Status::InvalidArgument("master_site is not set");
  if (config_.lus().empty()) return Status::InvalidArgument("no LU is defined (lus)");
  for (int i = 0; i < config_.lus_size(); ++i) {
    const auto& lu = config_.lus(i);
    if (!IsIdentifier(lu.name())) {
      return Status::InvalidArgument("LU name " + Quote(lu.name()) +
                                     " is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (!lu_index_.emplace(lu.name(), i).second) {
      return Status::InvalidArgument("LU " + lu.name() + " is defined twice");
    }
  }
  for (const auto& lu : config_.lus()) {
    std::set<std::string> names;
    for (const auto& attribute : lu.attributes()) {
      if (!IsIdentifier(attribute.name())) {
        return Status::InvalidArgument("LU " + lu.name() + ": attribute name " +
                                       Quote(attribute.name()) + " is not an identifier");
      }
      if (!names.insert(attribute.name()).second) {
        return Status::InvalidArgument("LU " + lu.name() + ": attribute " + attribute.name() +
                                       " is defined twice");
      }
    }
    if (lu.key().empty()) return Status::InvalidArgument("LU " + lu.name() + " has no key");
    std::set<std::string> keys;
    for (const auto& key : lu.key()) {
      if (!keys.insert(key).second) {
        return Status::InvalidArgument("LU " + lu.name() + ": key " + Quote(key) +
                                       " is listed twice");
      }
      if (!names.count(key)) {
        return Status::InvalidArgument("LU " + lu.name() + ": key " + Quote(key) +
                                       " is not one of its attributes");
      }
    }
    for (const auto& [what, attribute] : {std::pair{"company_attribute", lu.company_attribute()},
                                          std::pair{"site_attribute", lu.site_attribute()}}) {
      if (!attribute.empty() && !names.count(attribute)) {
        return Status::InvalidArgument("LU " + lu.name() + ": " + what + " " + Quote(attribute) +
                                       " is not one of its attributes");
      }
    }
    for (const auto& reference : lu.references()) {
      const config::LogicalUnit* target = FindLu(reference.lu());
      if (!target) {
        return Status::InvalidArgument("LU " + lu.name() + " references unknown LU " +
                                       Quote(reference.lu()));
      }
      if (reference.attributes_size() != target->key_size()) {
        return Status::InvalidArgument("LU " + lu.name() + ": reference to " + target->name() +
                                       " names " + std::to_string(reference.attributes_size()) +
                                       " attributes, but " + target->name() + "'s key has " +
                                       std::to_string(target->key_size()));
      }
      for (const auto& attribute : reference.attributes()) {
        if (!names.count(attribute)) {
          return Status::InvalidArgument("LU " + lu.name() + ": reference to " + target->name() +
                                         " uses " + Quote(attribute) +
                                         ", which is not one of its attributes");
        }
      }
    }
  }
  // Parents first; a reference cycle (other than an LU referencing itself) has no such order.
  std::set<std::string> placed;
  while (parents_first_.size() < static_cast<size_t>(config_.lus_size())) {
    bool progress = false;
    for (const auto& lu : config_.lus()) {
      if (placed.count(lu.name())) continue;
      bool ready = std::all_of(
          lu.references().begin(), lu.references().end(),
          [&](const config::Reference& r) { return r.lu() == lu.name() || placed.count(r.lu()); });
      if (!ready) continue;
      placed.insert(lu.name());
      parents_first_.push_back(&lu);
      progress = true;
    }
    if (!progress) {
      return Status::InvalidArgument("the LUs' references form a cycle (e.g. through LU " + [&] {
        for (const auto& lu : config_.lus()) {
          if (!placed.count(lu.name())) return lu.name();
        }
        return std::string();
      }() + "): no LU order puts every parent first");
    }
  }
  for (int i = 0; i < config_.replicas_size(); ++i) {
    const auto& replica = config_.replicas(i);
    if (!IsSiteName(replica.name())) {
      return Status::InvalidArgument("replica site name " + Quote(replica.name()) +
                                     " must be letters, digits, '_' or '-'");
    }
    if (replica.name() == config_.master_site()) {
      return Status::InvalidArgument("replica site " + replica.name() + " is the master site");
    }
    if (!replica_index_.emplace(replica.name(), i).second) {
      return Status::InvalidArgument("replica site " + replica.name() + " is defined twice");
    }
    if (replica.lus().empty()) {
      return Status::InvalidArgument("replica site " + replica.name() + " gets no LU (lus)");
    }
    for (const auto& lu : replica.lus()) {
      if (!FindLu(lu)) {
        return Status::InvalidArgument("replica site " + replica.name() + " gets unknown LU " +
                                       Quote(lu));
      }
    }
  }
  return Status::Ok();
}

const config::LogicalUnit* Catalog::FindLu(const std::string& name) const {
  auto it = lu_index_.find(name);
  return it == lu_index_.end() ? nullptr : &config_.lus(it->second);
}

const config::Attribute* Catalog::FindAttribute(const config::LogicalUnit& lu,
                                                const std::string& name) const {
  for (const auto& attribute : lu.attributes()) {
    if (attribute.name() == name) return &attribute;
  }
  return nullptr;
}

const config::ReplicaSite* Catalog::FindReplica(const std::string& name) const {
  auto it = replica_index_.find(name);
  return it == replica_index_.end() ? nullptr : &config_.replicas(it->second);
}

std::vector<std::pair<const config::LogicalUnit*, const config::Reference*>> Catalog::ReferencesTo(
    const std::string& lu) const {
  std::vector<std::pair<const config::LogicalUnit*, const config::Reference*>> out;
  for (const auto& other : config_.lus()) {
    for (const auto& reference : other.references()) {
      if (reference.lu() == lu) out.emplace_back(&other, &reference);
    }
  }
  return out;
}

Status Catalog::ValidateChange(const wire::LuChange& change) const {
  const config::LogicalUnit* lu = FindLu(change.lu());
  if (!lu) return Status::InvalidArgument("unknown LU " + Quote(change.lu()));
  // Built only for an error: this runs for every change of every transaction.
  auto row = [&change] { return RowName(change.lu(), change.keys()); };
  if (change.action() == wire::ACTION_UNSPECIFIED) {
    return Status::InvalidArgument(row() + ": no action (NEW, MODIFY or REMOVE)");
  }
  for (const auto& key : lu->key()) {
    auto it = change.keys().find(key);
    if (it == change.keys().end() || it->second.empty()) {
      return Status::InvalidArgument(row() + ": key attribute " + key + " is missing");
    }
    if (!ValueFitsType(it->second, FindAttribute(*lu, key)->type())) {
      return Status::InvalidArgument(row() + ": key attribute " + key + " value " +
                                     Quote(it->second) + " is not " +
                                     config::AttributeType_Name(FindAttribute(*lu, key)->type()));
    }
  }
  for (const auto& [name, value] : change.keys()) {
    if (!Contains(lu->key(), name)) {
      return Status::InvalidArgument(row() + ": " + name + " is not a key attribute of " +
                                     lu->name());
    }
  }
  if (change.action() == wire::REMOVE && !change.attributes().empty()) {
    return Status::InvalidArgument(row() + ": REMOVE takes only the key, not attributes");
  }
  if (change.action() == wire::MODIFY && change.attributes().empty()) {
    return Status::InvalidArgument(row() + ": MODIFY names no attribute to change");
  }
  for (const auto& [name, value] : change.attributes()) {
    const config::Attribute* attribute = FindAttribute(*lu, name);
    if (!attribute) {
      return Status::InvalidArgument(row() + ": unknown attribute " + Quote(name) + " of LU " +
                                     lu->name());
    }
    if (Contains(lu->key(), name)) {
      return Status::InvalidArgument(row() + ": key attribute " + name +
                                     " belongs in keys, not attributes");
    }
    if (!ValueFitsType(value, attribute->type())) {
      return Status::InvalidArgument(row() + ": attribute " + name + " value " + Quote(value) +
                                     " is not " + config::AttributeType_Name(attribute->type()));
    }
  }
  return Status::Ok();
}

bool Catalog::RoutesTo(const config::ReplicaSite& replica, const config::LogicalUnit& lu,
                       const Row& row) const {
  if (!Contains(replica.lus(), lu.name())) return false;
  auto value_in = [&row](const std::string& column,
                         const google::protobuf::RepeatedPtrField<std::string>& allowed) {
    if (column.empty()) return true;
    auto it = row.find(column);
    return it != row.end() && Contains(allowed, it->second);
  };
  return value_in(lu.company_attribute(), replica.companies()) &&
         value_in(lu.site_attribute(), replica.sites());
}

std::string Catalog::Digest() const {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  {
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    config_.SerializeToCodedStream(&coded);
  }
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a: stable across builds, unlike std::hash
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ULL;
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace ferry
