// The replica's queue configuration: the default queues and routes, each "queue.<NAME>.<key>"
// setting, errors that name the key, start-up warnings, and the retry policy's delays.
#include "replica/queue_config.h"

#include <gmock/gmock.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace ferry {
namespace {

using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Settings = std::vector<std::pair<std::string, std::string>>;

// The queue set `settings` give; a test that expects success fails when they are refused.
QueueSet Parse(const Settings& settings) {
  StatusOr<QueueSet> set = QueueSet::FromSettings(settings);
  EXPECT_OK(set.status());
  return set.ok() ? set.value() : QueueSet();
}

// The message of the error that `settings` give; a test fails when they are accepted.
std::string ErrorOf(const Settings& settings) {
  StatusOr<QueueSet> set = QueueSet::FromSettings(settings);
  EXPECT_FALSE(set.ok()) << "accepted settings that should be refused";
  if (set.ok()) return "";
  EXPECT_EQ(set.status().code(), Status::Code::kInvalidArgument);
  return set.status().message();
}

void ExpectSameQueue(const QueueConfig& actual, const QueueConfig& expected) {
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.processes, expected.processes) << actual.name;
  EXPECT_EQ(actual.ordering, expected.ordering) << actual.name;
  EXPECT_EQ(actual.retry.attempts, expected.retry.attempts) << actual.name;
  EXPECT_EQ(actual.retry.initial_delay, expected.retry.initial_delay) << actual.name;
  EXPECT_EQ(actual.retry.max_delay, expected.retry.max_delay) << actual.name;
  EXPECT_DOUBLE_EQ(actual.retry.multiplier, expected.retry.multiplier) << actual.name;
  EXPECT_EQ(actual.classes, expected.classes) << actual.name;
}

TEST(QueueSetTest, DefaultsAreReplicationAndDefaultQueuesWithOneStrictProcess) {
  QueueSet set = Parse({});
  ASSERT_EQ(set.queues().size(), 2u);
  const RetryPolicy default_retry;
  for (const char* name : {kDefaultQueue, kReplicationQueue}) {
    const QueueConfig* queue = set.Find(name);
    ASSERT_NE(queue, nullptr) << name;
    EXPECT_EQ(queue->processes, 1) << name;
    EXPECT_EQ(queue->ordering, Ordering::kStrict) << name;
    EXPECT_EQ(queue->retry.attempts, default_retry.attempts) << name;
    EXPECT_EQ(queue->retry.initial_delay, default_retry.initial_delay) << name;
    EXPECT_EQ(queue->retry.max_delay, default_retry.max_delay) << name;
    EXPECT_DOUBLE_EQ(queue->retry.multiplier, default_retry.multiplier) << name;
  }
  EXPECT_EQ(default_retry.attempts, 5);
  EXPECT_EQ(default_retry.initial_delay, std::chrono::milliseconds(1000));
  EXPECT_EQ(default_retry.max_delay, std::chrono::milliseconds(60000));
  EXPECT_DOUBLE_EQ(default_retry.multiplier, 2.0);
  EXPECT_THAT(set.Find(kReplicationQueue)->classes, ElementsAre(wire::RECEIVE_MESSAGE));
  EXPECT_THAT(set.Find(kDefaultQueue)->classes, ElementsAre(wire::RECEIVE_CONFIGURATION));
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).name, kReplicationQueue);
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_CONFIGURATION).name, kDefaultQueue);
  EXPECT_EQ(set.Find("NOPE"), nullptr);
  EXPECT_TRUE(set.Warnings().empty()) << ::testing::PrintToString(set.Warnings());
}

TEST(QueueSetTest, ClassWithoutRouteGoesToDefaultQueue) {
  QueueSet set = Parse({{"queue.REPLICATION.classes", ""}});
  EXPECT_TRUE(set.Find(kReplicationQueue)->classes.empty());
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).name, kDefaultQueue);
  EXPECT_EQ(set.QueueFor(wire::MESSAGE_CLASS_UNSPECIFIED).name, kDefaultQueue);
}

TEST(QueueSetTest, DefaultConstructedSetEqualsParsedDefaults) {
  QueueSet constructed;
  QueueSet parsed = Parse({});
  ASSERT_EQ(constructed.queues().size(), parsed.queues().size());
  for (size_t i = 0; i < parsed.queues().size(); ++i) {
    ExpectSameQueue(constructed.queues()[i], parsed.queues()[i]);
  }
  EXPECT_EQ(constructed.queues()[0].name, kDefaultQueue);
  EXPECT_EQ(constructed.queues()[1].name, kReplicationQueue);
}

TEST(QueueSetTest, ParsesProcessesAndOrdering) {
  QueueSet set = Parse({{"queue.REPLICATION.processes", "4"},
                        {"queue.REPLICATION.ordering", "dependency"},
                        {"queue.DEFAULT.processes", " 64 "},
                        {"queue.DEFAULT.ordering", "none"}});
  ASSERT_EQ(set.queues().size(), 2u);
  EXPECT_EQ(set.Find(kReplicationQueue)->processes, 4);
  EXPECT_EQ(set.Find(kReplicationQueue)->ordering, Ordering::kDependency);
  EXPECT_EQ(set.Find(kDefaultQueue)->processes, 64);
  EXPECT_EQ(set.Find(kDefaultQueue)->ordering, Ordering::kNone);
  EXPECT_EQ(Parse({{"queue.DEFAULT.ordering", "dependency"}, {"queue.DEFAULT.ordering", "strict"}})
                .Find(kDefaultQueue)
                ->ordering,
            Ordering::kStrict);
  EXPECT_EQ(Parse({{"queue.REPLICATION.processes", "1"}}).Find(kReplicationQueue)->processes, 1);
}

TEST(QueueSetTest, OrderingNamesAreTheSettingValues) {
  EXPECT_STREQ(OrderingName(Ordering::kStrict), "strict");
  EXPECT_STREQ(OrderingName(Ordering::kDependency), "dependency");
  EXPECT_STREQ(OrderingName(Ordering::kNone), "none");
}

TEST(QueueSetTest, ParsesClassesSeparatedByCommasAndSpaces) {
  QueueSet set = Parse({{"queue.ALL.classes", " Receive_Message ,Receive_Configuration, "}});
  ASSERT_NE(set.Find("ALL"), nullptr);
  EXPECT_THAT(set.Find("ALL")->classes,
              ElementsAre(wire::RECEIVE_MESSAGE, wire::RECEIVE_CONFIGURATION));
  EXPECT_TRUE(set.Find(kReplicationQueue)->classes.empty());
  EXPECT_TRUE(set.Find(kDefaultQueue)->classes.empty());
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).name, "ALL");
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_CONFIGURATION).name, "ALL");
}

TEST(QueueSetTest, ParsesRetryPolicy) {
  QueueSet set = Parse({{"queue.REPLICATION.retry-attempts", "7"},
                        {"queue.REPLICATION.retry-delay-ms", "250"},
                        {"queue.REPLICATION.retry-max-delay-ms", "9000"},
                        {"queue.REPLICATION.retry-multiplier", "1.5"}});
  const RetryPolicy& retry = set.Find(kReplicationQueue)->retry;
  EXPECT_EQ(retry.attempts, 7);
  EXPECT_EQ(retry.initial_delay, std::chrono::milliseconds(250));
  EXPECT_EQ(retry.max_delay, std::chrono::milliseconds(9000));
  EXPECT_DOUBLE_EQ(retry.multiplier, 1.5);
  // The other queue keeps the default policy.
  EXPECT_EQ(set.Find(kDefaultQueue)->retry.attempts, RetryPolicy().attempts);
  EXPECT_EQ(set.Find(kDefaultQueue)->retry.initial_delay, RetryPolicy().initial_delay);
}

TEST(QueueSetTest, NewQueueTakingReceiveMessageMovesItFromReplication) {
  QueueSet set = Parse({{"queue.FAST.classes", "Receive_Message"},
                        {"queue.FAST.processes", "3"},
                        {"queue.FAST.ordering", "dependency"}});
  ASSERT_EQ(set.queues().size(), 3u);
  EXPECT_EQ(set.queues()[2].name, "FAST");
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).name, "FAST");
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).processes, 3);
  EXPECT_TRUE(set.Find(kReplicationQueue)->classes.empty());
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_CONFIGURATION).name, kDefaultQueue);
}

TEST(QueueSetTest, NewQueueTakingReceiveConfigurationMovesItFromDefault) {
  QueueSet set = Parse({{"queue.CONFIG.classes", "Receive_Configuration"}});
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_CONFIGURATION).name, "CONFIG");
  EXPECT_TRUE(set.Find(kDefaultQueue)->classes.empty());
  EXPECT_EQ(set.QueueFor(wire::RECEIVE_MESSAGE).name, kReplicationQueue);
}

TEST(QueueSetTest, BadProcessesIsAnErrorNamingTheKey) {
  for (const char* value : {"0", "65", "two", "-1", "2x", ""}) {
    EXPECT_THAT(ErrorOf({{"queue.REPLICATION.processes", value}}),
                HasSubstr("queue.REPLICATION.processes"))
        << "processes = '" << value << "'";
  }
}

TEST(QueueSetTest, MisspelledOrderingIsAnErrorNamingTheKey) {
  std::string error = ErrorOf({{"queue.REPLICATION.ordering", "paralel"}});
  EXPECT_THAT(error, HasSubstr("queue.REPLICATION.ordering"));
  EXPECT_THAT(error, HasSubstr("paralel"));
}

TEST(QueueSetTest, UnknownFieldIsAnErrorNamingTheKey) {
  EXPECT_THAT(ErrorOf({{"queue.REPLICATION.threads", "2"}}),
              HasSubstr("queue.REPLICATION.threads"));
}

TEST(QueueSetTest, UnknownMessageClassIsAnErrorNamingTheKey) {
  std::string error = ErrorOf({{"queue.REPLICATION.classes", "Receive_Message, Receive_Gossip"}});
  EXPECT_THAT(error, HasSubstr("queue.REPLICATION.classes"));
  EXPECT_THAT(error, HasSubstr("Receive_Gossip"));
}

TEST(QueueSetTest, ClassRoutedToTwoQueuesExplicitlyIsAnError) {
  std::string error =
      ErrorOf({{"queue.A.classes", "Receive_Message"}, {"queue.B.classes", "Receive_Message"}});
  EXPECT_THAT(error, AnyOf(HasSubstr("queue.A.classes"), HasSubstr("queue.B.classes")));
  EXPECT_THAT(error, HasSubstr("Receive_Message"));
  EXPECT_THAT(ErrorOf({{"queue.REPLICATION.classes", "Receive_Message"},
                       {"queue.OTHER.classes", "Receive_Message"}}),
              AllOf(HasSubstr(".classes"), HasSubstr("Receive_Message")));
}

TEST(QueueSetTest, BadQueueNameIsAnErrorNamingTheKey) {
  for (const char* key : {"queue.RE-PL.processes", "queue.A B.processes", "queue.Ä.processes"}) {
    EXPECT_THAT(ErrorOf({{key, "2"}}), HasSubstr(key)) << key;
  }
}

TEST(QueueSetTest, MaxDelayShorterThanDelayIsAnErrorNamingTheKey) {
  EXPECT_THAT(ErrorOf({{"queue.REPLICATION.retry-delay-ms", "5000"},
                       {"queue.REPLICATION.retry-max-delay-ms", "2000"}}),
              HasSubstr("queue.REPLICATION.retry-max-delay-ms"));
  // Equal is allowed: every wait is the same.
  QueueSet set = Parse({{"queue.REPLICATION.retry-delay-ms", "2000"},
                        {"queue.REPLICATION.retry-max-delay-ms", "2000"}});
  EXPECT_EQ(set.Find(kReplicationQueue)->retry.DelayAfter(3), std::chrono::milliseconds(2000));
}

TEST(QueueSetTest, LongFirstDelayRaisesTheDefaultCapInsteadOfFailing) {
  QueueSet set = Parse({{"queue.REPLICATION.retry-delay-ms", "90000"}});
  EXPECT_EQ(set.Find(kReplicationQueue)->retry.max_delay, std::chrono::milliseconds(90000));
  EXPECT_EQ(set.Find(kReplicationQueue)->retry.DelayAfter(3), std::chrono::milliseconds(90000));
}

TEST(QueueSetTest, BadRetryValuesAreErrorsNamingTheKey) {
  const Settings bad = {
      {"queue.REPLICATION.retry-attempts", "0"},      {"queue.REPLICATION.retry-attempts", "1001"},
      {"queue.REPLICATION.retry-delay-ms", "0"},      {"queue.REPLICATION.retry-delay-ms", "soon"},
      {"queue.REPLICATION.retry-max-delay-ms", "-5"}, {"queue.REPLICATION.retry-multiplier", "0.5"},
      {"queue.REPLICATION.retry-multiplier", "11"},   {"queue.REPLICATION.retry-multiplier", "2x"}};
  for (const auto& [key, value] : bad) {
    EXPECT_THAT(ErrorOf({{key, value}}), HasSubstr(key)) << key << " = '" << value << "'";
  }
}

// std::stod reads "nan", and NaN fails both range comparisons; a NaN multiplier would make
// every delay after the first NaN, which does not convert to milliseconds.
TEST(QueueSetTest, NotANumberMultiplierIsAnErrorNamingTheKey) {
  for (const char* value : {"nan", "NAN", "-nan"}) {
    EXPECT_THAT(ErrorOf({{"queue.REPLICATION.retry-multiplier", value}}),
                HasSubstr("queue.REPLICATION.retry-multiplier"))
        << "retry-multiplier = '" << value << "'";
  }
}

TEST(QueueSetTest, KeyWithoutQueuePartIsAnErrorNamingTheKey) {
  for (const char* key :
       {"queue.processes", "queue..processes", "processes", "queues.A.processes"}) {
    EXPECT_THAT(ErrorOf({{key, "2"}}), HasSubstr(key)) << key;
  }
}

TEST(QueueSetTest, ReceiveMessageOnParallelNoneQueueWarnsNamingTheQueue) {
  QueueSet set =
      Parse({{"queue.REPLICATION.processes", "4"}, {"queue.REPLICATION.ordering", "none"}});
  std::vector<std::string> warnings = set.Warnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("REPLICATION"));
  EXPECT_THAT(warnings[0], HasSubstr("Receive_Message"));

  QueueSet moved = Parse({{"queue.FAST.classes", "Receive_Message"},
                          {"queue.FAST.processes", "2"},
                          {"queue.FAST.ordering", "none"}});
  bool names_fast = false;
  for (const auto& warning : moved.Warnings()) {
    if (warning.find("FAST") != std::string::npos &&
        warning.find("Receive_Message") != std::string::npos) {
      names_fast = true;
    }
  }
  EXPECT_TRUE(names_fast) << ::testing::PrintToString(moved.Warnings());
}

TEST(QueueSetTest, OrderedOrSingleProcessReceiveMessageQueueDoesNotWarn) {
  for (const Settings& settings :
       {Settings{{"queue.REPLICATION.processes", "4"}, {"queue.REPLICATION.ordering", "strict"}},
        Settings{{"queue.REPLICATION.processes", "4"},
                 {"queue.REPLICATION.ordering", "dependency"}},
        Settings{{"queue.REPLICATION.processes", "1"}, {"queue.REPLICATION.ordering", "none"}},
        // Parallel `none` is fine for a queue that does not take Receive_Message.
        Settings{{"queue.DEFAULT.processes", "4"}, {"queue.DEFAULT.ordering", "none"}}}) {
    std::vector<std::string> warnings = Parse(settings).Warnings();
    EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(settings) << ": "
                                  << ::testing::PrintToString(warnings);
  }
}

TEST(QueueSetTest, QueueWithoutClassesWarns) {
  QueueSet set = Parse({{"queue.SPARE.processes", "2"}});
  ASSERT_NE(set.Find("SPARE"), nullptr);
  EXPECT_TRUE(set.Find("SPARE")->classes.empty());
  std::vector<std::string> warnings = set.Warnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("SPARE"));
}

TEST(RetryPolicyTest, DelayGrowsByMultiplierUpToMaxDelay) {
  RetryPolicy retry;
  retry.initial_delay = std::chrono::milliseconds(100);
  retry.max_delay = std::chrono::milliseconds(1000);
  retry.multiplier = 3.0;
  EXPECT_EQ(retry.DelayAfter(1), std::chrono::milliseconds(100));
  EXPECT_EQ(retry.DelayAfter(2), std::chrono::milliseconds(300));
  EXPECT_EQ(retry.DelayAfter(3), std::chrono::milliseconds(900));
  EXPECT_EQ(retry.DelayAfter(4), std::chrono::milliseconds(1000));
  EXPECT_EQ(retry.DelayAfter(50), std::chrono::milliseconds(1000));

  RetryPolicy defaults;
  EXPECT_EQ(defaults.DelayAfter(1), std::chrono::milliseconds(1000));
  EXPECT_EQ(defaults.DelayAfter(2), std::chrono::milliseconds(2000));
  EXPECT_EQ(defaults.DelayAfter(3), std::chrono::milliseconds(4000));
  EXPECT_EQ(defaults.DelayAfter(7), std::chrono::milliseconds(60000));
}

TEST(RetryPolicyTest, MultiplierOneKeepsTheDelay) {
  RetryPolicy retry;
  retry.initial_delay = std::chrono::milliseconds(40);
  retry.multiplier = 1.0;
  EXPECT_EQ(retry.DelayAfter(1), std::chrono::milliseconds(40));
  EXPECT_EQ(retry.DelayAfter(10), std::chrono::milliseconds(40));
}

TEST(MessageClassTest, NamesRoundTrip) {
  for (wire::MessageClass message_class : {wire::RECEIVE_MESSAGE, wire::RECEIVE_CONFIGURATION}) {
    wire::MessageClass parsed = wire::MESSAGE_CLASS_UNSPECIFIED;
    ASSERT_TRUE(ParseMessageClass(MessageClassName(message_class), &parsed))
        << MessageClassName(message_class);
    EXPECT_EQ(parsed, message_class);
  }
  EXPECT_EQ(MessageClassName(wire::RECEIVE_MESSAGE), "Receive_Message");
  EXPECT_EQ(MessageClassName(wire::RECEIVE_CONFIGURATION), "Receive_Configuration");
  wire::MessageClass untouched = wire::RECEIVE_MESSAGE;
  EXPECT_FALSE(ParseMessageClass("receive_message", &untouched));
  EXPECT_FALSE(ParseMessageClass("Unknown", &untouched));
  EXPECT_FALSE(ParseMessageClass("", &untouched));
  EXPECT_EQ(untouched, wire::RECEIVE_MESSAGE);
}

}  // namespace
}  // namespace ferry
