// Process-level tests of what Ferry promises when things break: snapshots for a site that
// fell past the outbox quota, lost its database or was added later; outbox retention;
// SIGKILL of workers, replicas and the master during a long run; hostile bytes on every port;
// and SIGTERM. Every test stops by itself.
#include <gmock/gmock.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <zmq_addon.hpp>

#include "common/catalog.h"
#include "common/child_process.h"
#include "common/codec.h"
#include "common/node_client.h"
#include "common/node_main.h"
#include "common/site_rows.h"
#include "common/sqlite.h"
#include "common/workload.h"
#include "e2e/deployment.h"
#include "replica/replica.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::Change;
using testing::Deployment;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::Transaction;

// SITE-A's master, played by a test on a ROUTER socket, so that it can send what a real
// master never would over one TCP connection (a gap, a duplicate, an unknown class, a silence)
// and see each hello and ack the replica sends.
class FakeMaster {
 public:
  FakeMaster(zmq::context_t& context, const Catalog& catalog)
      : socket_(context, zmq::socket_type::router), catalog_(catalog) {
    socket_.set(zmq::sockopt::linger, 0);
  }
  StatusOr<std::string> Bind() { return ferry::Bind(socket_, "tcp://127.0.0.1:*"); }

  // The replica's next StreamHello (its next_sequence) or Ack (its sequence), within 10 s.
  // Every ack on the way counts in acked().
  StatusOr<uint64_t> Next(bool want_hello) {
    for (int i = 0; i < 100; ++i) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      FERRY_RETURN_IF_ERROR(Poll(&item, 1, std::chrono::milliseconds(100)));
      auto received = TryReceive(socket_, /*router=*/true);
      if (!received || !received->envelope.ok()) continue;
      identity_ = received->identity;
      const wire::Envelope& envelope = *received->envelope;
      if (envelope.has_ack()) acked_ = std::max(acked_, envelope.ack().sequence());
      if (want_hello && envelope.has_stream_hello()) return envelope.stream_hello().next_sequence();
      if (!want_hello && envelope.has_ack()) return envelope.ack().sequence();
    }
    return Status::Unavailable("nothing from the replica");
  }

  // Sends SITE-A's message `sequence`: the configuration, a new Company, or (another class)
  // nothing but its header.
  Status SendMessage(uint64_t sequence, wire::MessageClass message_class) {
    wire::Envelope envelope;
    wire::ReplicationMessage* m = envelope.mutable_replication_message();
    m->set_site("SITE-A");
    m->set_sequence(sequence);
    m->set_message_class(message_class);
    if (message_class == wire::RECEIVE_CONFIGURATION)
      *m->mutable_configuration() = catalog_.proto();
    if (message_class == wire::RECEIVE_MESSAGE) {
      *m->add_changes() =
          Change("Company", wire::NEW, {{"company_id", "C" + std::to_string(sequence)}});
    }
    return Send(envelope);
  }

  // Sends `envelope` on the replica's connection (the one it spoke on last).
  Status Send(const wire::Envelope& envelope) {
    last_sent_at_ = std::chrono::steady_clock::now();
    return ferry::Send(socket_, envelope, identity_);
  }

  zmq::socket_t& socket() { return socket_; }
  uint64_t acked() const { return acked_; }  // the highest sequence acknowledged so far
  std::chrono::steady_clock::time_point last_sent_at() const { return last_sent_at_; }

 private:
  zmq::socket_t socket_;
  const Catalog& catalog_;
  std::string identity_;
  uint64_t acked_ = 0;
  std::chrono::steady_clock::time_point last_sent_at_ = std::chrono::steady_clock::now();
};

class ReliabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
  }

  // SITE-A's replica, streaming from a master the test plays on a ROUTER at `endpoint`; its
  // own ports are its own choice. Returns it once its control endpoint is known.
  StatusOr<ChildProcess> StartReplicaOfFakeMaster(const std::string& endpoint,
                                                  const std::vector<std::string>& extra_args,
                                                  std::string* control) {
    std::filesystem::remove(dir_.File("SITE-A.ready"));
    std::vector<std::string> argv = {testing::Executable("ferry-replica"),
                                     "--site",
                                     "SITE-A",
                                     "--master",
                                     endpoint,
                                     "--db",
                                     deployment_.db("SITE-A"),
                                     "--control-endpoint",
                                     "tcp://127.0.0.1:*",
                                     "--ready-file",
                                     dir_.File("SITE-A.ready")};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto replica = ChildProcess::Start(argv, deployment_.log("SITE-A"));
    if (!replica.ok()) return replica.status();
    *control = ReadReadyFile(dir_.File("SITE-A.ready"), std::chrono::seconds(10))["control"];
    if (control->empty()) return Status::Unavailable("the replica wrote no control endpoint");
    return replica;
  }

  // The same, streaming from `master`, which it binds first.
  StatusOr<ChildProcess> StartReplicaOfFakeMaster(FakeMaster& master,
                                                  const std::vector<std::string>& extra_args,
                                                  std::string* control) {
    auto endpoint = master.Bind();
    if (!endpoint.ok()) return endpoint.status();
    return StartReplicaOfFakeMaster(*endpoint, extra_args, control);
  }

  void ExpectRowsEqualMaster(const std::string& site, const Catalog* catalog = nullptr) {
    EXPECT_GT(testing::ExpectRowsEqualMaster(catalog ? *catalog : *catalog_,
                                             deployment_.master_db(), deployment_.db(site), site),
              0u);
  }

  // Attempts with `outcome` per job at `site`; those of one worker process if `pid` is set.
  std::map<uint64_t, int> AttemptsPerJob(const std::string& site, const std::string& outcome,
                                         int pid = 0) {
    std::map<uint64_t, int> attempts;
    auto db = sqlite::Db::Open(deployment_.db(site), {.create = false});
    EXPECT_OK(db.status());
    if (!db.ok()) return attempts;
    auto statement = db->Prepare(
        "SELECT job_id, COUNT(*) FROM ferry_job_attempts WHERE outcome = ? AND (? = 0 OR pid = ?) "
        "GROUP BY job_id");
    EXPECT_OK(statement.status());
    if (statement.ok()) statement->Bind(1, outcome).Bind(2, int64_t{pid}).Bind(3, int64_t{pid});
    while (statement.ok()) {
      auto step = statement->Step();
      if (!step.ok() || *step == sqlite::Statement::StepResult::kDone) break;
      attempts[statement->ColumnInt(0)] = static_cast<int>(statement->ColumnInt(1));
    }
    return attempts;
  }
  // Attempts that applied (outcome Ready) per job at `site`.
  std::map<uint64_t, int> AppliedAttempts(const std::string& site) {
    return AttemptsPerJob(site, "Ready");
  }
  // Every job `site` received was applied by exactly one attempt.
  void ExpectEachJobAppliedOnce(const std::string& site) {
    auto status = deployment_.ReplicaStatus(site);
    ASSERT_OK(status.status());
    auto applied = AppliedAttempts(site);
    EXPECT_EQ(applied.size(), status->last_received_sequence()) << site;
    for (const auto& [job, count] : applied) {
      EXPECT_EQ(count, 1) << site << " job " << job << " applied " << count << " times";
    }
  }

  wire::StreamStatus Stream(const std::string& site) {
    auto status = deployment_.MasterStatus();
    EXPECT_OK(status.status());
    if (status.ok()) {
      for (const auto& stream : status->streams()) {
        if (stream.site() == site) return stream;
      }
    }
    return {};
  }

  TempDir dir_;
  std::shared_ptr<const Catalog> catalog_;
  Deployment deployment_{dir_};
  OrdersWorkload workload_;
};

TEST_F(ReliabilityTest, SiteThatFellPastTheQuotaGetsASnapshotThenTheStream) {
  ASSERT_OK(deployment_.StartMaster({"--outbox-quota", "40"}));
  // SITE-A is down while the master takes far more than the quota.
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 300, /*setup=*/true));
  ASSERT_TRUE(testing::WaitFor([&] { return Stream("SITE-A").outbox_entries() <= 40; },
                               std::chrono::seconds(10)));
  EXPECT_THAT(testing::ReadFile(dir_.File("master.log")),
              HasSubstr("site SITE-A fell past the outbox quota of 40 messages"));
  ASSERT_OK(deployment_.StartReplica("SITE-A"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ExpectRowsEqualMaster("SITE-A");
  EXPECT_THAT(testing::ReadFile(deployment_.log("SITE-A")),
              HasSubstr("resets this site's stream to sequence"));
  // After the snapshot, the stream goes on: no gap, no overlap.
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 301, 400, /*setup=*/false));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ExpectRowsEqualMaster("SITE-A");
}

TEST_F(ReliabilityTest, SiteThatLostItsDatabaseGetsASnapshot) {
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.StartReplica("SITE-B"));
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 200, /*setup=*/true));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ASSERT_TRUE(testing::WaitFor([&] { return Stream("SITE-B").outbox_entries() == 0; },
                               std::chrono::seconds(10)))
      << "acknowledged entries are pruned from the outbox";
  deployment_.StopReplica("SITE-B");
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(deployment_.db("SITE-B") + suffix);
  }
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 201, 250, /*setup=*/false));
  ASSERT_OK(deployment_.StartReplica("SITE-B"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ExpectRowsEqualMaster("SITE-B");
  EXPECT_THAT(testing::ReadFile(dir_.File("master.log")),
              HasSubstr("its database was lost or replaced"));
}

TEST_F(ReliabilityTest, SiteAddedAfterRowsExistGetsASnapshot) {
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 150, /*setup=*/true));
  // The master configuration gains SITE-C, which gets company C1 like SITE-A.
  const std::string config = dir_.File("three_sites.txtpb");
  {
    std::ofstream out(config);
    out << testing::ReadFile(testing::DeployedMasterConfiguration())
        << "replicas {\n  name: \"SITE-C\"\n  companies: \"C1\"\n"
        << "  sites: [ \"C1-S1\", \"C1-S2\", \"C1-S3\" ]\n"
        << "  lus: [ \"Company\", \"Site\", \"Customer\", \"Item\", \"CustomerOrder\", "
           "\"CustomerOrderLine\" ]\n}\n";
  }
  auto three_sites = Catalog::Load(config);
  ASSERT_OK(three_sites.status());
  ASSERT_OK(deployment_.StartMaster({}, config));
  ASSERT_OK(deployment_.StartReplica("SITE-C"));
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 151, 200, /*setup=*/false));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ExpectRowsEqualMaster("SITE-C", three_sites->get());
}

// The long run: the reference workload while workers, replicas and the master are killed with
// SIGKILL at random points and restarted, and one replica is stopped for a while.
TEST_F(ReliabilityTest, NothingIsLostOrAppliedTwiceThroughKillsAndRestarts) {
  constexpr uint64_t kTransactions = 20000;
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.StartReplica("SITE-A"));
  ASSERT_OK(deployment_.StartReplica("SITE-B"));
  // Each transaction has an idempotency key, so a retry after a lost reply (the master died
  // after committing) does not commit it twice.
  std::atomic<uint64_t> submitted{0};
  std::atomic<bool> failed{false};
  const std::string submit_endpoint = deployment_.submit_endpoint();
  std::thread load([&] {
    zmq::context_t context;
    OrdersWorkload workload;
    auto submit = [&](wire::SubmitRequest request, const std::string& key) {
      request.set_idempotency_key(key);
      for (int tries = 0; tries < 200; ++tries) {
        NodeClient client(context, submit_endpoint, 1000);
        auto reply = client.Submit(request);
        if (reply.ok()) return true;
        if (reply.status().code() != Status::Code::kUnavailable) {
          ADD_FAILURE() << key << ": " << reply.status().ToString();
          return false;
        }
      }
      ADD_FAILURE() << key << ": no answer from the master";
      return false;
    };
    int n = 0;
    for (const auto& request : workload.SetUp()) {
      if (!submit(request, "setup-" + std::to_string(n++))) return failed.store(true);
    }
    for (uint64_t i = 1; i <= kTransactions; ++i) {
      if (!submit(workload.Transaction(i), "tx-" + std::to_string(i))) return failed.store(true);
      submitted = i;
    }
  });

  // The kinds of fault take turns (sites and pauses are random), and the faults go on until
  // the load is in and every kind has struck twice: a fast machine that submits the load in a
  // few seconds still sees every fault.
  std::mt19937 random(7);
  std::map<std::string, int> kills;
  for (int round = 0; !failed && (submitted < kTransactions || round < 8); ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700 + random() % 900));
    const std::string site = random() % 2 ? "SITE-A" : "SITE-B";
    switch (round % 4) {
      case 0: {  // a worker of either queue, once the site has one connected again
        StatusOr<wire::ReplicaStatus> status = Status::Unavailable("not asked yet");
        testing::WaitFor(
            [&] {
              status = deployment_.ReplicaStatus(site);
              return status.ok() && status->workers_size() > 0;
            },
            std::chrono::seconds(10));
        if (status.ok() && status->workers_size() > 0 &&
            kill(status->workers(random() % status->workers_size()).pid(), SIGKILL) == 0) {
          ++kills["worker"];
        }
        break;
      }
      case 1:
        deployment_.KillReplica(site);
        ASSERT_OK(deployment_.StartReplica(site));
        ++kills["replica"];
        break;
      case 2:
        deployment_.KillMaster();
        ASSERT_OK(deployment_.StartMaster());
        ++kills["master"];
        break;
      case 3:  // a site down for a while
        if (kills["stopped"] < 2) {
          deployment_.StopReplica(site);
          std::this_thread::sleep_for(std::chrono::seconds(2));
          ASSERT_OK(deployment_.StartReplica(site));
          ++kills["stopped"];
        }
        break;
    }
  }
  load.join();
  ASSERT_FALSE(failed);
  EXPECT_GE(kills["worker"], 2);
  EXPECT_GE(kills["replica"], 2);
  EXPECT_GE(kills["master"], 2);
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(300))) << "logs in " << dir_.path();

  // Every transaction committed once at the master...
  auto master = deployment_.MasterStatus();
  ASSERT_OK(master.status());
  EXPECT_EQ(master->last_transaction_id(), workload_.SetUp().size() + kTransactions);
  // ...reached its sites exactly...
  ExpectRowsEqualMaster("SITE-A");
  ExpectRowsEqualMaster("SITE-B");
  // ...and every job was applied exactly once.
  ExpectEachJobAppliedOnce("SITE-A");
  ExpectEachJobAppliedOnce("SITE-B");
  std::cout << "kills: worker " << kills["worker"] << ", replica " << kills["replica"]
            << ", master " << kills["master"] << ", replica stopped " << kills["stopped"] << "\n";
}

// Random bytes, truncated and oversized frames, the wrong protocol version, valid protobuf of
// the wrong kind and unknown names on every port of every node, while a replication run goes
// on beside them.
TEST_F(ReliabilityTest, HostileInputOnEveryPortIsAnsweredAndLosesNothing) {
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.StartReplica("SITE-A"));
  std::atomic<bool> done{false};
  std::thread load([&] {
    EXPECT_OK(deployment_.SubmitWorkload(workload_, 1, 1500, /*setup=*/true));
    done = true;
  });

  zmq::context_t context;
  std::mt19937 random(99);
  auto random_bytes = [&](size_t n) {
    std::string bytes(n, '\0');
    for (auto& b : bytes) b = static_cast<char>(random());
    return bytes;
  };
  auto envelope_bytes = [](const wire::Envelope& envelope) { return envelope.SerializeAsString(); };
  wire::Envelope wrong_kind;  // valid, but no port takes a JobList from a client
  wrong_kind.mutable_job_list();
  wire::Envelope unknown_lu;
  *unknown_lu.mutable_submit_request() =
      Transaction({Change("Spaceship", wire::NEW, {{"id", "1"}})});
  wire::Envelope unknown_site;
  unknown_site.mutable_stream_hello()->set_site("SITE-Z");
  wire::Envelope unknown_queue;
  unknown_queue.mutable_worker_hello()->set_queue("NO_SUCH_QUEUE");
  wire::Envelope stray_outcome;  // an outcome for a job nobody was given
  wire::JobResult* stray = stray_outcome.mutable_job_outcome()->add_results();
  stray->set_job_id(999999);
  stray->set_ready(true);

  const std::vector<std::vector<std::string>> attacks = {
      {random_bytes(64)},
      {"FERRY/1", random_bytes(200)},
      {"FERRY/1"},                                      // truncated: no body
      {"FERRY/1", std::string("\x0a\xff\xff\xff", 4)},  // truncated protobuf
      {"FERRY/2", envelope_bytes(unknown_lu)},
      {"FERRY/1", envelope_bytes(wrong_kind)},
      {"FERRY/1", envelope_bytes(unknown_lu)},
      {"FERRY/1", envelope_bytes(unknown_site)},
      {"FERRY/1", envelope_bytes(unknown_queue)},
      {"FERRY/1", envelope_bytes(stray_outcome)},
      {"FERRY/1", std::string(kMaxBodyBytes + 4096, 'x')},  // oversized: the peer is dropped
  };
  const std::vector<std::string> ports = {deployment_.submit_endpoint(), "stream",
                                          deployment_.control_endpoint("SITE-A"),
                                          deployment_.worker_endpoint("SITE-A")};
  auto master_stream = [&] {
    // The stream endpoint is in the master's ready file.
    return ReadReadyFile(dir_.File("master.ready"), std::chrono::seconds(1))["stream"];
  };
  int answered = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::string port : ports) {
      if (port == "stream") port = master_stream();
      for (const auto& frames : attacks) {
        zmq::socket_t socket(context, zmq::socket_type::dealer);
        socket.set(zmq::sockopt::linger, 0);
        socket.connect(port);
        std::vector<zmq::message_t> message;
        for (const auto& f : frames) message.emplace_back(f.data(), f.size());
        ASSERT_TRUE(zmq::send_multipart(socket, message));
        // Where the pattern has a reply, it is an Error naming the problem.
        auto reply = ReceiveWithin(socket, 200);
        if (reply.ok()) {
          EXPECT_TRUE(reply->has_error()) << port << ": " << BodyName(*reply);
          EXPECT_FALSE(reply->error().message().empty());
          ++answered;
        }
      }
    }
  }
  EXPECT_GT(answered, 20);
  load.join();
  // Every node still serves, and the run beside the attacks lost nothing.
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ExpectRowsEqualMaster("SITE-A");
  const std::string master_log = testing::ReadFile(dir_.File("master.log"));
  EXPECT_THAT(master_log, HasSubstr("unsupported protocol version 'FERRY/2'"));
  EXPECT_THAT(master_log, HasSubstr("does not decode as a Ferry envelope"));
  EXPECT_THAT(master_log, HasSubstr("SITE-Z"));
  const std::string replica_log = testing::ReadFile(deployment_.log("SITE-A"));
  EXPECT_THAT(replica_log, HasSubstr("control port: rejected message"));
  EXPECT_THAT(replica_log, HasSubstr("worker port: rejected message"));
  EXPECT_THAT(replica_log, HasSubstr("NO_SUCH_QUEUE"));
}

TEST_F(ReliabilityTest, ReplicaAsksAgainOnAGapOrASilenceAndDropsDuplicates) {
  zmq::context_t context;
  FakeMaster master(context, *catalog_);
  std::string control;
  // Every batch synced and acknowledged at once (--sync-interval-ms 0): each ack below comes
  // without waiting for an interval.
  auto replica = StartReplicaOfFakeMaster(
      master, {"--master-timeout-ms", "1500", "--sync-interval-ms", "0"}, &control);
  ASSERT_OK(replica.status());

  auto hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 1u);
  ASSERT_OK(master.SendMessage(1, wire::RECEIVE_CONFIGURATION));
  auto ack = master.Next(/*want_hello=*/false);
  ASSERT_OK(ack.status());
  EXPECT_EQ(*ack, 1u);
  ASSERT_OK(master.SendMessage(3, wire::RECEIVE_MESSAGE));  // 2 is missing
  hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 2u) << "a gap makes the replica ask again from the first it lacks";
  ASSERT_OK(master.SendMessage(2, wire::RECEIVE_MESSAGE));
  ASSERT_OK(master.SendMessage(2, wire::RECEIVE_MESSAGE));  // a duplicate
  ASSERT_OK(master.SendMessage(3, wire::RECEIVE_MESSAGE));
  // A class this protocol does not know.
  ASSERT_OK(master.SendMessage(4, static_cast<wire::MessageClass>(99)));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto a = master.Next(/*want_hello=*/false);
        return a.ok() && *a == 4;
      },
      std::chrono::seconds(10)));
  NodeClient client(context, control, 2000);
  wire::Envelope query;
  query.mutable_job_query()->set_limit(100);
  StatusOr<wire::Envelope> jobs = Status::Unavailable("not asked");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        jobs = client.Call(query);
        if (!jobs.ok() || jobs->job_list().jobs_size() != 4) return false;
        return jobs->job_list().jobs(0).state() == "Error";  // newest first: sequence 4
      },
      std::chrono::seconds(10)));
  ASSERT_EQ(jobs->job_list().jobs_size(), 4) << "one job per sequence: the duplicate was dropped";
  EXPECT_THAT(jobs->job_list().jobs(0).error(), HasSubstr("unknown message class 99"));
  for (int i = 1; i < 4; ++i) EXPECT_EQ(jobs->job_list().jobs(i).state(), "Ready");

  // A heartbeat says what was sent before it: holding all of it, the replica asks for nothing;
  // lacking some, it asks again from the first it lacks.
  auto heartbeat = [&](uint64_t last_sent) {
    wire::Envelope envelope;
    envelope.mutable_heartbeat()->set_last_sent_sequence(last_sent);
    ASSERT_OK(master.Send(envelope));
  };
  // A hello the silence timer sent before now is not the heartbeat's doing: read it first.
  while (auto stale = TryReceive(master.socket(), /*router=*/true)) {
  }
  heartbeat(4);
  const auto quiet_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < quiet_until) {
    zmq::pollitem_t item{master.socket().handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_OK(Poll(&item, 1, std::chrono::milliseconds(50)));
    auto received = TryReceive(master.socket(), /*router=*/true);
    if (!received || !received->envelope.ok()) continue;
    EXPECT_FALSE(received->envelope->has_stream_hello())
        << "a heartbeat of what the replica holds made it ask again";
  }
  heartbeat(6);  // 5 and 6 were lost on the way
  const auto told = std::chrono::steady_clock::now();
  hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 5u);
  // Before the silence timeout (1,500 ms after the heartbeat): the heartbeat's, not the timer's.
  EXPECT_LT(std::chrono::steady_clock::now() - told, std::chrono::milliseconds(1500));

  // A master that goes silent (no message, no heartbeat) is asked again after the timeout, and
  // the replica's log says so once.
  hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 5u);
  EXPECT_GE(std::chrono::steady_clock::now() - master.last_sent_at(),
            std::chrono::milliseconds(1500));
  const std::string silence = "no word from the master for 1500 ms (received up to sequence 4)";
  auto said = [&] {
    const std::string log = testing::ReadFile(deployment_.log("SITE-A"));
    int count = 0;
    for (size_t at = log.find(silence); at != std::string::npos; at = log.find(silence, at + 1)) {
      ++count;
    }
    return count;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return said() > 0; }, std::chrono::seconds(5)));
  // It keeps asking while the silence lasts, and says so only the once.
  hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 5u);
  EXPECT_EQ(said(), 1);
}

// An ack the replica cannot send (its master went away between a message and the sync that
// makes it durable) is logged with its sequence and what stopped it.
TEST_F(ReliabilityTest, AnAckThatCannotBeSentIsLogged) {
  zmq::context_t context;
  auto master = std::make_unique<zmq::socket_t>(context, zmq::socket_type::router);
  master->set(zmq::sockopt::linger, 0);
  auto endpoint = Bind(*master, "tcp://127.0.0.1:*");
  ASSERT_OK(endpoint.status());
  // A second between syncs: time for the connection to be gone before the ack is sent.
  std::string control_endpoint;
  auto replica =
      StartReplicaOfFakeMaster(*endpoint, {"--sync-interval-ms", "1000"}, &control_endpoint);
  ASSERT_OK(replica.status());
  NodeClient control(context, control_endpoint);
  std::optional<Received> hello;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        zmq::pollitem_t item{master->handle(), 0, ZMQ_POLLIN, 0};
        if (!Poll(&item, 1, std::chrono::milliseconds(100)).ok()) return false;
        hello = TryReceive(*master, /*router=*/true);
        return hello && hello->envelope.ok() && hello->envelope->has_stream_hello();
      },
      std::chrono::seconds(10)));
  wire::Envelope envelope;
  wire::ReplicationMessage* message = envelope.mutable_replication_message();
  message->set_site("SITE-A");
  message->set_sequence(1);
  message->set_message_class(wire::RECEIVE_CONFIGURATION);
  *message->mutable_configuration() = catalog_->proto();
  ASSERT_OK(Send(*master, envelope, hello->identity));
  // Received (its sync, a second later, stores and acknowledges it); then the master goes.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = control.GetStatus();
        return status.ok() && status->replica().last_received_sequence() == 1;
      },
      std::chrono::seconds(10)));
  master.reset();
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return testing::ReadFile(deployment_.log("SITE-A"))
                   .find("ack of sequence 1 not sent: no connected peer takes Ack") !=
               std::string::npos;
      },
      std::chrono::seconds(10)))
      << testing::ReadFile(deployment_.log("SITE-A"));
}

// A hello acknowledges everything before the sequence it asks for. A replica whose store
// fails (here its database is locked by another connection) has received messages it has not
// made durable: its hello asks for them again, and nothing of them is acknowledged until a
// sync succeeds.
TEST_F(ReliabilityTest, AHelloAfterAFailedSyncAsksAgainForWhatIsNotDurable) {
  zmq::context_t context;
  FakeMaster master(context, *catalog_);
  std::string control;
  // Each batch synced at once; a locked database fails a store after 100 ms; half a second of
  // silence brings a hello.
  auto replica = StartReplicaOfFakeMaster(
      master,
      {"--master-timeout-ms", "500", "--sync-interval-ms", "0", "--db-lock-timeout-ms", "100"},
      &control);
  ASSERT_OK(replica.status());
  ASSERT_OK(master.Next(/*want_hello=*/true).status());
  ASSERT_OK(master.SendMessage(1, wire::RECEIVE_CONFIGURATION));
  ASSERT_OK(master.Next(/*want_hello=*/false).status());
  ASSERT_EQ(master.acked(), 1u);

  // Another connection holds the database's write lock: the replica receives 2 and 3 and
  // hands them out, but cannot store them.
  auto lock = sqlite::Db::Open(deployment_.db("SITE-A"), {.create = false});
  ASSERT_OK(lock.status());
  ASSERT_OK(lock->Exec("BEGIN IMMEDIATE"));
  ASSERT_OK(master.SendMessage(2, wire::RECEIVE_MESSAGE));
  ASSERT_OK(master.SendMessage(3, wire::RECEIVE_MESSAGE));
  NodeClient client(context, control, 2000);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = client.GetStatus();
        return status.ok() && status->replica().last_received_sequence() == 3;
      },
      std::chrono::seconds(10)));
  // The master says nothing more: the replica says hello again, with its store still failing.
  auto hello = master.Next(/*want_hello=*/true);
  ASSERT_OK(hello.status());
  EXPECT_EQ(*hello, 2u) << "the hello acknowledged messages that are not durable";
  EXPECT_EQ(master.acked(), 1u) << "an ack for messages that are not durable";
  EXPECT_THAT(testing::ReadFile(deployment_.log("SITE-A")), HasSubstr("storing messages 2..3"));

  // The lock goes: the next sync stores them, makes them durable, acknowledges them, and both
  // are applied.
  ASSERT_OK(lock->Exec("ROLLBACK"));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        (void)master.Next(/*want_hello=*/false);
        return master.acked() == 3;
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = client.GetStatus();
        return status.ok() && status->replica().last_applied_sequence() == 3;
      },
      std::chrono::seconds(10)));
  auto applied = AppliedAttempts("SITE-A");
  EXPECT_EQ(applied.size(), 3u);
  for (const auto& [job, count] : applied) EXPECT_EQ(count, 1) << "job " << job;
}

// Workers apply batches of jobs in one transaction each, without an fsync per commit. A
// replica and its workers killed in the middle of catching up lose nothing and apply nothing
// twice: what a lost batch held is in the durable inbox and is applied again, once.
TEST_F(ReliabilityTest, KilledInTheMiddleOfABatchLosesNothing) {
  ASSERT_OK(deployment_.StartMaster());
  constexpr uint64_t kPerRound = 4 * kMaxBatch;  // several full batches each round
  uint64_t next = 1;
  auto submit_round = [&] {
    Status submitted = deployment_.SubmitWorkload(workload_, next, next + kPerRound - 1,
                                                  /*setup=*/next == 1);
    next += kPerRound;
    return submitted;
  };
  uint64_t applied_before = 0;
  for (int kill_round = 0; kill_round < 3; ++kill_round) {
    // Fresh work while the replica is down, so every round has a catch-up to interrupt.
    ASSERT_OK(submit_round());
    ASSERT_OK(deployment_.StartReplica("SITE-A"));
    // Once this round has committed a batch and a worker holds the next, kill the replica and
    // every worker at once. A machine fast enough to catch up between two looks gets more
    // work, sent while the replica runs.
    bool killed = false;
    for (int tries = 0; !killed && tries < 5; ++tries) {
      bool drained = false;
      ASSERT_TRUE(testing::WaitFor(
          [&] {
            auto status = deployment_.ReplicaStatus("SITE-A");
            if (!status.ok()) return false;
            bool busy = false;
            for (const auto& w : status->workers()) busy = busy || w.current_job() != 0;
            if (busy && status->last_applied_sequence() > applied_before) {
              for (const auto& w : status->workers()) kill(w.pid(), SIGKILL);
              applied_before = status->last_applied_sequence();
              return killed = true;
            }
            drained = status->last_applied_sequence() == Stream("SITE-A").latest_sequence();
            return drained;
          },
          std::chrono::seconds(20)))
          << "round " << kill_round << ": neither a busy worker after a commit nor caught up";
      if (drained) ASSERT_OK(submit_round());
    }
    ASSERT_TRUE(killed) << "round " << kill_round << ": never saw a worker busy after a commit";
    deployment_.KillReplica("SITE-A");
  }
  ASSERT_OK(deployment_.StartReplica("SITE-A"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(120)));
  ExpectRowsEqualMaster("SITE-A");
  ExpectEachJobAppliedOnce("SITE-A");
}

// A worker outlives its killed replica (it finishes the batch it holds) while the restarted
// replica hands the same jobs out again under the same attempt numbers: each job is applied
// once, and each attempt keeps its own record.
TEST_F(ReliabilityTest, AWorkerThatOutlivesItsReplicaAppliesNothingTwice) {
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 50, /*setup=*/true));
  // Each batch waits 4 s before its transaction: time to restart the replica meanwhile, even
  // on a slow machine.
  const std::vector<std::string> slow = {"--worker-arg=--apply-delay=*=4000"};
  ASSERT_OK(deployment_.StartReplica("SITE-A", slow));
  int orphan = 0;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = deployment_.ReplicaStatus("SITE-A");
        if (!status.ok()) return false;
        for (const auto& w : status->workers()) {
          if (w.queue() == "REPLICATION" && w.current_job() != 0) orphan = w.pid();
        }
        return orphan != 0;
      },
      std::chrono::seconds(20)))
      << "no REPLICATION worker took a batch";
  deployment_.KillReplica("SITE-A");
  ASSERT_OK(deployment_.StartReplica("SITE-A", slow));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));

  ExpectRowsEqualMaster("SITE-A");
  EXPECT_FALSE(AttemptsPerJob("SITE-A", "Ready", orphan).empty())
      << "the worker of the killed replica committed nothing: the test tested nothing";
  EXPECT_FALSE(AttemptsPerJob("SITE-A", "AlreadyReady").empty())
      << "no job was handed out again: the test tested nothing";
  ExpectEachJobAppliedOnce("SITE-A");
}

// The replica defers its fsync (--sync-interval-ms) and acknowledges only what an fsync made
// durable; the master keeps the rest. Killed with a deferred batch stored but not synced, it
// starts again from what it holds and loses nothing.
TEST_F(ReliabilityTest, AcknowledgesOnlyWhatIsSyncedAndAKillInADeferredBatchLosesNothing) {
  ASSERT_OK(deployment_.StartMaster());
  // A minute between syncs: what arrives is applied (the worker a job is handed to stores its
  // message: nothing else would before the sync), but acknowledged only once 256 messages
  // wait for a sync.
  ASSERT_OK(deployment_.StartReplica("SITE-A", {"--sync-interval-ms", "60000"}));
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 100, /*setup=*/true));
  const uint64_t latest = Stream("SITE-A").latest_sequence();
  ASSERT_LT(latest, kSyncEvery) << "the test wants one deferred batch here";
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = deployment_.ReplicaStatus("SITE-A");
        return status.ok() && status->last_applied_sequence() == latest;
      },
      std::chrono::seconds(30)));
  EXPECT_LT(Stream("SITE-A").acknowledged_sequence(), latest) << "acknowledged before an fsync";
  auto durable = [&] {
    auto db = sqlite::Db::Open(deployment_.db("SITE-A"), {.create = false});
    if (!db.ok()) return uint64_t{0};
    auto read = db->Prepare("SELECT value FROM ferry_meta WHERE key = 'durable_sequence'");
    if (!read.ok() || !read->Step().ok()) return uint64_t{0};
    return static_cast<uint64_t>(read->ColumnInt(0));
  };
  EXPECT_LT(durable(), latest);

  // Past 256 waiting messages the replica syncs at once, whatever the interval.
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 101, 800, /*setup=*/false));
  ASSERT_TRUE(
      testing::WaitFor([&] { return Stream("SITE-A").acknowledged_sequence() >= kSyncEvery; },
                       std::chrono::seconds(30)));

  // Killed with the newest messages stored, applied, and neither synced nor acknowledged. A
  // replica that lagged may have received the last ones in a chunk that filled a sync: then
  // more transactions, one at a time, until one waits unsynced.
  uint64_t next = 801;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const wire::StreamStatus stream = Stream("SITE-A");
        auto status = deployment_.ReplicaStatus("SITE-A");
        if (!status.ok() || status->last_applied_sequence() < stream.latest_sequence()) {
          return false;
        }
        if (stream.acknowledged_sequence() < stream.latest_sequence()) return true;
        EXPECT_OK(deployment_.SubmitWorkload(workload_, next, next, /*setup=*/false));
        ++next;
        return false;
      },
      std::chrono::seconds(30)));
  ASSERT_LT(Stream("SITE-A").acknowledged_sequence(), Stream("SITE-A").latest_sequence());
  deployment_.KillReplica("SITE-A");
  ASSERT_OK(deployment_.StartReplica("SITE-A"));  // the default interval: 10 ms
  ASSERT_OK(deployment_.SubmitWorkload(workload_, next, 1000, /*setup=*/false));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  const uint64_t last = Stream("SITE-A").latest_sequence();
  EXPECT_TRUE(testing::WaitFor([&] { return Stream("SITE-A").acknowledged_sequence() == last; },
                               std::chrono::seconds(5)));
  EXPECT_EQ(durable(), last);
  ExpectRowsEqualMaster("SITE-A");
  auto applied = AppliedAttempts("SITE-A");
  EXPECT_EQ(applied.size(), last);
  for (const auto& [job, count] : applied) EXPECT_EQ(count, 1) << "job " << job;
}

TEST_F(ReliabilityTest, SigtermLetsTheRunningJobFinish) {
  ASSERT_OK(deployment_.StartMaster());
  ASSERT_OK(deployment_.StartReplica("SITE-A", {"--worker-arg=--apply-delay=Customer=1500"}));
  ASSERT_OK(deployment_.Submit(Transaction({Change("Company", wire::NEW, {{"company_id", "C1"}})}))
                .status());
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  auto customer = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-1"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(customer.status());
  // Once the customer's job is executing (its worker is in its slow part), SIGTERM.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = deployment_.ReplicaStatus("SITE-A");
        if (!status.ok()) return false;
        for (const auto& w : status->workers()) {
          if (w.current_job() != 0) return true;
        }
        return false;
      },
      std::chrono::seconds(10)));
  const auto stopped_at = std::chrono::steady_clock::now();
  deployment_.StopReplica("SITE-A");  // SIGTERM, waits for the exit
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::seconds(5));
  // The job finished before the worker left: one attempt, applied.
  auto db = sqlite::Db::Open(deployment_.db("SITE-A"), {.create = false});
  ASSERT_OK(db.status());
  auto rows = db->Prepare("SELECT COUNT(*) FROM lu_Customer WHERE customer_id = 'CU-1'");
  ASSERT_OK(rows.status());
  ASSERT_TRUE(rows->Step().ok());
  EXPECT_EQ(rows->ColumnInt(0), 1) << "the running job was not allowed to finish";
  auto errors = db->Prepare("SELECT COUNT(*) FROM ferry_job_attempts WHERE outcome != 'Ready'");
  ASSERT_OK(errors.status());
  ASSERT_TRUE(errors->Step().ok());
  EXPECT_EQ(errors->ColumnInt(0), 0);
}

}  // namespace
}  // namespace ferry
