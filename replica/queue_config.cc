#include "replica/queue_config.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace ferry {
namespace {

bool ParseInt(const std::string& text, int low, int high, int* out) {
  try {
    size_t used = 0;
    long value = std::stol(text, &used);
    if (used != text.size() || value < low || value > high) return false;
    *out = static_cast<int>(value);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string Trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t");
  size_t end = text.find_last_not_of(" \t");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

QueueConfig NewQueue(std::string name, std::vector<wire::MessageClass> classes = {}) {
  QueueConfig queue;
  queue.name = std::move(name);
  queue.classes = std::move(classes);
  return queue;
}

Status BadValue(const std::string& key, const std::string& value, const std::string& expected) {
  return Status::InvalidArgument(key + ": '" + value + "' is not " + expected);
}

}  // namespace

const char* OrderingName(Ordering ordering) {
  switch (ordering) {
    case Ordering::kStrict:
      return "strict";
    case Ordering::kDependency:
      return "dependency";
    case Ordering::kNone:
      return "none";
  }
  return "?";
}

std::chrono::milliseconds RetryPolicy::DelayAfter(int failures) const {
  double delay =
      static_cast<double>(initial_delay.count()) * std::pow(multiplier, std::max(0, failures - 1));
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(delay, static_cast<double>(max_delay.count()))));
}

std::string MessageClassName(wire::MessageClass message_class) {
  switch (message_class) {
    case wire::RECEIVE_MESSAGE:
      return "Receive_Message";
    case wire::RECEIVE_CONFIGURATION:
      return "Receive_Configuration";
    case wire::RECEIVE_SNAPSHOT:
      return "Receive_Snapshot";
    default:
      return "Unknown";
  }
}

bool ParseMessageClass(const std::string& name, wire::MessageClass* message_class) {
  for (auto c : {wire::RECEIVE_MESSAGE, wire::RECEIVE_CONFIGURATION, wire::RECEIVE_SNAPSHOT}) {
    if (name == MessageClassName(c)) {
      *message_class = c;
      return true;
    }
  }
  return false;
}

QueueSet::QueueSet() {
  queues_.push_back(NewQueue(kDefaultQueue, {wire::RECEIVE_CONFIGURATION}));
  queues_.push_back(NewQueue(kReplicationQueue, {wire::RECEIVE_MESSAGE}));
}

StatusOr<QueueSet> QueueSet::FromSettings(
    const std::vector<std::pair<std::string, std::string>>& settings) {
  QueueSet set;
  std::set<std::string> routed_explicitly;  // queues whose `classes` the settings give
  std::set<std::string> max_delay_given;    // queues whose retry-max-delay-ms the settings give
  for (const auto& [key, raw_value] : settings) {
    const std::string value = Trim(raw_value);
    // queue.<NAME>.<field>
    size_t dot = key.find('.', 6);
    if (key.rfind("queue.", 0) != 0 || dot == std::string::npos || dot == 6) {
      return Status::InvalidArgument(key + ": not a queue setting (queue.<NAME>.<key>)");
    }
    const std::string name = key.substr(6, dot - 6);
    const std::string field = key.substr(dot + 1);
    if (!std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        })) {
      return Status::InvalidArgument(key + ": queue name '" + name +
                                     "' must be letters, digits or '_'");
    }
    QueueConfig* queue = set.Find(name);
    if (!queue) {
      set.queues_.push_back(NewQueue(name));
      queue = &set.queues_.back();
    }
    if (field == "processes") {
      if (!ParseInt(value, 1, 64, &queue->processes))
        return BadValue(key, value, "a number from 1 to 64");
    } else if (field == "ordering") {
      if (value == "strict") {
        queue->ordering = Ordering::kStrict;
      } else if (value == "dependency") {
        queue->ordering = Ordering::kDependency;
      } else if (value == "none") {
        queue->ordering = Ordering::kNone;
      } else {
        return BadValue(key, value, "strict, dependency or none");
      }
    } else if (field == "classes") {
      routed_explicitly.insert(name);
      queue->classes.clear();
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string item = Trim(value.substr(start, comma - start));
        if (!item.empty()) {
          wire::MessageClass c;
          if (!ParseMessageClass(item, &c)) {
            return BadValue(key, item, "a message class (Receive_Message, Receive_Configuration)");
          }
          queue->classes.push_back(c);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (field == "retry-attempts") {
      if (!ParseInt(value, 1, 1000, &queue->retry.attempts))
        return BadValue(key, value, "a number from 1 to 1000");
    } else if (field == "retry-delay-ms" || field == "retry-max-delay-ms") {
      int ms = 0;
      if (!ParseInt(value, 1, 86400000, &ms))
        return BadValue(key, value, "milliseconds from 1 to 86400000");
      (field == "retry-delay-ms" ? queue->retry.initial_delay : queue->retry.max_delay) =
          std::chrono::milliseconds(ms);
      if (field == "retry-max-delay-ms") max_delay_given.insert(name);
    } else if (field == "retry-multiplier") {
      try {
        size_t used = 0;
        queue->retry.multiplier = std::stod(value, &used);
        const double m = queue->retry.multiplier;
        if (used != value.size() || !(m >= 1.0 && m <= 10.0)) {  // NaN fails both
          return BadValue(key, value, "a number from 1.0 to 10.0");
        }
      } catch (const std::exception&) {
        return BadValue(key, value, "a number from 1.0 to 10.0");
      }
    } else {
      return Status::InvalidArgument(key + ": unknown queue setting '" + field +
                                     "' (processes, ordering, classes, retry-attempts, "
                                     "retry-delay-ms, retry-max-delay-ms, retry-multiplier)");
    }
  }
  // A class that a queue's own `classes` names leaves the default queue it had.
  for (auto& queue : set.queues_) {
    if (routed_explicitly.count(queue.name)) continue;
    std::erase_if(queue.classes, [&](wire::MessageClass c) {
      return std::any_of(set.queues_.begin(), set.queues_.end(), [&](const QueueConfig& other) {
        return routed_explicitly.count(other.name) &&
               std::count(other.classes.begin(), other.classes.end(), c);
      });
    });
  }
  std::map<wire::MessageClass, std::string> owner;
  for (const auto& queue : set.queues_) {
    for (auto c : queue.classes) {
      auto [it, inserted] = owner.emplace(c, queue.name);
      if (!inserted) {
        return Status::InvalidArgument("queue." + queue.name + ".classes: " + MessageClassName(c) +
                                       " is routed to queue " + it->second + " too");
      }
    }
  }
  for (auto& queue : set.queues_) {
    if (queue.retry.max_delay < queue.retry.initial_delay) {
      // A long first delay with the default cap: the cap rises to it rather than fail on a
      // key the operator did not write.
      if (!max_delay_given.count(queue.name)) {
        queue.retry.max_delay = queue.retry.initial_delay;
        continue;
      }
      return Status::InvalidArgument("queue." + queue.name +
                                     ".retry-max-delay-ms: shorter than retry-delay-ms");
    }
  }
  return set;
}

QueueConfig* QueueSet::Find(const std::string& name) {
  for (auto& queue : queues_) {
    if (queue.name == name) return &queue;
  }
  return nullptr;
}

const QueueConfig* QueueSet::Find(const std::string& name) const {
  return const_cast<QueueSet*>(this)->Find(name);
}

const QueueConfig& QueueSet::QueueFor(wire::MessageClass message_class) const {
  for (const auto& queue : queues_) {
    if (std::count(queue.classes.begin(), queue.classes.end(), message_class)) return queue;
  }
  return *Find(kDefaultQueue);
}

std::vector<std::string> QueueSet::Warnings() const {
  std::vector<std::string> warnings;
  const QueueConfig& messages = QueueFor(wire::RECEIVE_MESSAGE);
  if (messages.ordering == Ordering::kNone && messages.processes > 1) {
    warnings.push_back("queue " + messages.name + " runs Receive_Message with " +
                       std::to_string(messages.processes) +
                       " processes and ordering 'none': a dependent update can run before the "
                       "update it references has committed, and fail until it is retried; use "
                       "ordering 'dependency' or 'strict'");
  }
  for (const auto& queue : queues_) {
    if (queue.classes.empty() && queue.name != kDefaultQueue) {
      warnings.push_back("queue " + queue.name + " receives no message class (classes = ...)");
    }
  }
  return warnings;
}

}  // namespace ferry
