// The Master node over real ZeroMQ sockets on 127.0.0.1: submits and their replies, bad input
// answered with an error while the node keeps serving, and a replica's stream: hello, the
// messages in order, acks, resend from a requested sequence, the window, unknown sites.
#include "master/master.h"

#include <gmock/gmock.h>

#include <set>
#include <thread>
#include <zmq_addon.hpp>

#include "common/codec.h"
#include "common/node_client.h"
#include "common/workload.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::Change;
using ::testing::HasSubstr;
using testing::TempDir;

class MasterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    MasterOptions options;
    options.submit_endpoint = "tcp://127.0.0.1:*";
    options.stream_endpoint = "tcp://127.0.0.1:*";
    options.db_path = dir_.File("master.db");
    options.heartbeat_interval = std::chrono::milliseconds(100);
    options.stream_window = 10;
    auto master = Master::Create(context_, options, *catalog, SystemClock::Default());
    ASSERT_OK(master.status());
    master_ = std::move(master).value();
    thread_ = std::thread([this] { run_status_ = master_->Run(stop_); });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    EXPECT_OK(run_status_);
  }

  // A DEALER that speaks for a replica site on the master's stream port.
  zmq::socket_t ConnectReplica() {
    zmq::socket_t socket(context_, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(master_->stream_endpoint());
    return socket;
  }
  void Hello(zmq::socket_t& socket, const std::string& site, uint64_t next) {
    wire::Envelope hello;
    hello.mutable_stream_hello()->set_site(site);
    hello.mutable_stream_hello()->set_next_sequence(next);
    ASSERT_OK(Send(socket, hello));
  }
  void Ack(zmq::socket_t& socket, const std::string& site, uint64_t sequence) {
    wire::Envelope ack;
    ack.mutable_ack()->set_site(site);
    ack.mutable_ack()->set_sequence(sequence);
    ASSERT_OK(Send(socket, ack));
  }
  // The next replication message on `socket`, skipping heartbeats.
  StatusOr<wire::ReplicationMessage> NextMessage(zmq::socket_t& socket, int timeout_ms = 2000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::Unavailable("no replication message in time");
      auto envelope = ReceiveWithin(socket, static_cast<int>(left.count()));
      if (!envelope.ok()) return envelope.status();
      if (envelope->has_heartbeat()) continue;
      if (!envelope->has_replication_message()) {
        return Status::Internal("expected a ReplicationMessage, got " + BodyName(*envelope));
      }
      return std::move(*envelope->mutable_replication_message());
    }
  }
  void SubmitWorkload(int transactions) {
    NodeClient client(context_, master_->submit_endpoint());
    OrdersWorkload workload;
    for (const auto& request : workload.SetUp()) ASSERT_OK(client.Submit(request).status());
    for (int i = 1; i <= transactions; ++i)
      ASSERT_OK(client.Submit(workload.Transaction(i)).status());
  }

  TempDir dir_;
  zmq::context_t context_;
  std::unique_ptr<Master> master_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Status run_status_;
};

TEST_F(MasterTest, SubmitIsCommittedAndAnswered) {
  NodeClient client(context_, master_->submit_endpoint());
  OrdersWorkload workload;
  auto reply = client.Submit(workload.SetUp()[0]);
  ASSERT_OK(reply.status());
  EXPECT_EQ(reply->transaction_id(), 1u);
  ASSERT_EQ(reply->published_size(), 2);          // companies and sites of both sites
  EXPECT_EQ(reply->published(0).sequence(), 2u);  // after the configuration

  auto status = client.GetStatus();
  ASSERT_OK(status.status());
  ASSERT_TRUE(status->has_master());
  EXPECT_EQ(status->master().last_transaction_id(), 1u);
  EXPECT_EQ(status->master().streams_size(), 2);
}

TEST_F(MasterTest, RejectedSubmitGetsAnErrorNamingTheProblem) {
  NodeClient client(context_, master_->submit_endpoint());
  wire::SubmitRequest request;
  auto* change = request.add_changes();
  change->set_lu("Customer");
  change->set_action(wire::NEW);
  (*change->mutable_keys())["customer_id"] = "CU-1";
  (*change->mutable_attributes())["company_id"] = "NOPE";
  auto reply = client.Submit(request);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(reply.status().message(), HasSubstr("Company[company_id=NOPE]"));
}

TEST_F(MasterTest, MalformedFramesGetAnErrorAndTheNodeKeepsServing) {
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(master_->submit_endpoint());
  const std::vector<std::vector<std::string>> bad = {
      {"garbage"},     {"FERRY/1", std::string("\xff\xff\xff\xff\x0f", 5)},
      {"FERRY/9", ""}, {"HTTP/1.1", "GET /"},
      {"FERRY/1", ""},  // an envelope with no message
  };
  for (const auto& frames : bad) {
    std::vector<zmq::message_t> message;
    for (const auto& f : frames) message.emplace_back(f.data(), f.size());
    ASSERT_TRUE(zmq::send_multipart(raw, message));
    auto reply = ReceiveWithin(raw, 2000);
    ASSERT_OK(reply.status());
    ASSERT_TRUE(reply->has_error()) << BodyName(*reply);
    EXPECT_EQ(reply->error().code(), wire::MALFORMED);
    EXPECT_FALSE(reply->error().message().empty());
  }
  // A valid message of the wrong kind for this port.
  wire::Envelope wrong;
  wrong.mutable_ack()->set_site("SITE-A");
  ASSERT_OK(Send(raw, wrong));
  auto reply = ReceiveWithin(raw, 2000);
  ASSERT_OK(reply.status());
  ASSERT_TRUE(reply->has_error());
  EXPECT_EQ(reply->error().code(), wire::UNEXPECTED);
  EXPECT_THAT(reply->error().message(), HasSubstr("Ack"));
  // Still serving.
  NodeClient client(context_, master_->submit_endpoint());
  EXPECT_OK(client.GetStatus().status());
}

TEST_F(MasterTest, ReplicaGetsItsOwnStreamInOrderAndOnlyItsOwn) {
  SubmitWorkload(50);
  zmq::socket_t a = ConnectReplica();
  Hello(a, "SITE-A", 1);
  auto first = NextMessage(a);
  ASSERT_OK(first.status());
  EXPECT_EQ(first->sequence(), 1u);
  EXPECT_EQ(first->message_class(), wire::RECEIVE_CONFIGURATION);
  // With a window of 10, the master sends 10 and waits for an ack before sending more.
  for (uint64_t expected = 2; expected <= 10; ++expected) {
    auto message = NextMessage(a);
    ASSERT_OK(message.status());
    EXPECT_EQ(message->sequence(), expected);
    EXPECT_EQ(message->site(), "SITE-A");
    for (const auto& change : message->changes()) {
      for (const auto& [k, v] : change.attributes()) {
        EXPECT_NE(v, "C2") << "a C2 row reached SITE-A";
      }
    }
  }
  EXPECT_FALSE(NextMessage(a, 300).ok()) << "the window of 10 was not respected";
  Ack(a, "SITE-A", 10);
  auto next = NextMessage(a);
  ASSERT_OK(next.status());
  EXPECT_EQ(next->sequence(), 11u);
}

TEST_F(MasterTest, HelloFromASequenceResendsFromThere) {
  SubmitWorkload(20);
  zmq::socket_t a = ConnectReplica();
  Hello(a, "SITE-A", 5);
  auto message = NextMessage(a);
  ASSERT_OK(message.status());
  EXPECT_EQ(message->sequence(), 5u);
  // A new connection (the replica restarted) asks again from 3.
  zmq::socket_t again = ConnectReplica();
  Hello(again, "SITE-A", 3);
  message = NextMessage(again);
  ASSERT_OK(message.status());
  EXPECT_EQ(message->sequence(), 3u);
  // The master treats "from 3" as "2 are stored".
  NodeClient client(context_, master_->submit_endpoint());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto status = client.GetStatus();
        return status.ok() && status->master().streams(0).acknowledged_sequence() >= 2;
      },
      std::chrono::seconds(2)));
}

// A heartbeat says what the master sent before it, not how far the stream goes: a replica
// that holds all of it while its window is closed has nothing to ask for again.
TEST_F(MasterTest, HeartbeatsCarryTheLastSequenceSent) {
  SubmitWorkload(60);
  NodeClient client(context_, master_->submit_endpoint());
  auto status = client.GetStatus();
  ASSERT_OK(status.status());
  uint64_t latest = 0;
  for (const auto& stream : status->master().streams()) {
    if (stream.site() == "SITE-B") latest = stream.latest_sequence();
  }
  ASSERT_GT(latest, 20u) << "the stream must go past two windows of 10";

  zmq::socket_t b = ConnectReplica();
  Hello(b, "SITE-B", 1);
  // Reads until a heartbeat says `wanted`; every heartbeat must say what came before it.
  uint64_t received = 0;
  int heartbeats = 0;
  auto until_heartbeat_of = [&](uint64_t wanted) {
    for (int i = 0; i < 200; ++i) {
      auto envelope = ReceiveWithin(b, 1000);
      ASSERT_OK(envelope.status());
      if (envelope->has_replication_message()) {
        received = envelope->replication_message().sequence();
      } else if (envelope->has_heartbeat()) {
        ++heartbeats;
        const uint64_t said = envelope->heartbeat().last_sent_sequence();
        ASSERT_EQ(said, received) << "a heartbeat told of messages not sent before it";
        if (said == wanted) return;
      }
    }
    FAIL() << "no heartbeat of " << wanted;
  };
  until_heartbeat_of(10);  // one window, unacknowledged, though the stream goes further
  EXPECT_EQ(received, 10u);
  // An ack opens the window; the heartbeats after the next ten say so.
  Ack(b, "SITE-B", 10);
  until_heartbeat_of(20);
  EXPECT_EQ(received, 20u);
  EXPECT_GE(heartbeats, 2);
}

// Clients that always have a submit waiting must not keep the master from its stream port: a
// replica's acks are read, and its stream moves past the window, while they submit.
TEST_F(MasterTest, StreamMovesOnWhileClientsKeepTheSubmitPortBusy) {
  SubmitWorkload(0);  // the set-up
  zmq::socket_t a = ConnectReplica();
  Hello(a, "SITE-A", 1);
  // Busy clients: each submits, over and over, a customer of a company that does not exist;
  // the master reads and rejects each in SQLite, like any other transaction.
  std::atomic<bool> busy{true};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      NodeClient client(context_, master_->submit_endpoint());
      const wire::SubmitRequest rejected = testing::Transaction(
          {Change("Customer", wire::NEW, {{"customer_id", "BUSY-" + std::to_string(c)}},
                  {{"company_id", "NOPE"}})});
      while (busy) (void)client.Submit(rejected);
    });
  }
  // Meanwhile one client commits workload transactions; SITE-A acks every message it gets.
  std::atomic<uint64_t> last_for_a{0};
  std::thread committer([&] {
    NodeClient client(context_, master_->submit_endpoint());
    OrdersWorkload workload;
    for (int i = 1; i <= 300; ++i) {
      auto reply = client.Submit(workload.Transaction(i));
      ASSERT_OK(reply.status());
      for (const auto& published : reply->published()) {
        if (published.site() == "SITE-A") last_for_a = published.sequence();
      }
    }
  });
  committer.join();
  const uint64_t wanted = last_for_a.load();
  uint64_t received = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (received < wanted && std::chrono::steady_clock::now() < deadline) {
    auto message = NextMessage(a, 500);
    if (!message.ok()) continue;  // the window is full until the master reads an ack
    received = message->sequence();
    Ack(a, "SITE-A", received);
  }
  busy = false;  // before any assertion can return: the clients' threads must be joined
  for (auto& t : clients) t.join();
  ASSERT_GT(wanted, 100u);  // far past the window of 10
  EXPECT_EQ(received, wanted) << "SITE-A's stream stood still while the submit port was busy";
}

// Submits that wait together are committed as one group that shares the commit log's fsyncs,
// and each is answered as if it had been alone: a rejected one stops no other in its group.
TEST_F(MasterTest, ConcurrentSubmitsShareAnFsyncAndAreAnsweredEachAlone) {
  SubmitWorkload(0);  // the set-up: companies C1 and C2
  constexpr int kClients = 8;
  constexpr int kEach = 40;
  std::vector<std::string> failures[kClients];
  std::vector<uint64_t> ids[kClients];
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      NodeClient client(context_, master_->submit_endpoint());
      for (int k = 0; k < kEach; ++k) {
        // Every fifth names a company that does not exist and must be rejected.
        const bool bad = k % 5 == 4;
        const std::string key = "GROUP-" + std::to_string(c) + "-" + std::to_string(k);
        auto reply = client.Submit(
            testing::Transaction({Change("Customer", wire::NEW, {{"customer_id", key}},
                                         {{"company_id", bad ? "NOPE" : "C1"}, {"name", key}})}));
        if (bad == reply.ok()) {
          failures[c].push_back(key + ": " + (reply.ok() ? "committed" : reply.status().message()));
        }
        if (reply.ok()) ids[c].push_back(reply->transaction_id());
      }
    });
  }
  for (auto& t : clients) t.join();
  std::set<uint64_t> distinct;
  for (int c = 0; c < kClients; ++c) {
    EXPECT_TRUE(failures[c].empty()) << failures[c].front();
    EXPECT_EQ(ids[c].size(), size_t{kEach - kEach / 5});
    distinct.insert(ids[c].begin(), ids[c].end());
  }
  EXPECT_EQ(distinct.size(), size_t{kClients * (kEach - kEach / 5)}) << "a transaction id twice";

  NodeClient client(context_, master_->submit_endpoint());
  auto status = client.GetStatus();
  ASSERT_OK(status.status());
  const wire::MasterStatus& master = status->master();
  const uint64_t setup = OrdersWorkload().SetUp().size();
  EXPECT_EQ(master.submits_since_start(), setup + kClients * kEach);
  EXPECT_LT(master.durable_syncs(), master.submits_since_start())
      << "eight clients at once and never two submits sharing an fsync";
  EXPECT_GE(master.durable_syncs(), setup) << "the set-up came from one client, one at a time";
  EXPECT_GT(master.sync_poll_cpu_us(), 0u) << "the master polls for its fsyncs before it sleeps";
}

TEST_F(MasterTest, UnknownSiteIsRefused) {
  zmq::socket_t stranger = ConnectReplica();
  Hello(stranger, "SITE-X", 1);
  auto reply = ReceiveWithin(stranger, 2000);
  ASSERT_OK(reply.status());
  ASSERT_TRUE(reply->has_error());
  EXPECT_THAT(reply->error().message(), HasSubstr("SITE-X"));
}

}  // namespace
}  // namespace ferry
