// The codec: envelopes to frames and back, every way a message can be malformed rejected with
// a message naming the problem, and the socket helpers on real loopback ZeroMQ sockets.
#include "common/codec.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>

#include <chrono>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "test_util.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Frames holding exactly `parts`.
std::vector<zmq::message_t> Frames(std::initializer_list<std::string> parts) {
  std::vector<zmq::message_t> frames;
  for (const std::string& part : parts) frames.emplace_back(part.data(), part.size());
  return frames;
}

// The envelope decoded from Encode(envelope); fails the test if it does not decode.
wire::Envelope RoundTrip(const wire::Envelope& envelope) {
  std::vector<zmq::message_t> frames = Encode(envelope);
  EXPECT_EQ(frames.size(), 2u);
  if (!frames.empty()) {
    EXPECT_EQ(frames[0].to_string(), kProtocolHeader);
  }
  StatusOr<wire::Envelope> decoded = Decode(frames);
  EXPECT_OK(decoded.status());
  return decoded.ok() ? *decoded : wire::Envelope();
}

bool Equal(const wire::Envelope& a, const wire::Envelope& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

wire::LuChange* AddChange(google::protobuf::RepeatedPtrField<wire::LuChange>* changes,
                          const std::string& lu, wire::ChangeAction action) {
  wire::LuChange* change = changes->Add();
  change->set_lu(lu);
  change->set_action(action);
  return change;
}

TEST(CodecTest, SubmitRequestRoundTripsWithKeysAttributesAndRequestId) {
  wire::Envelope envelope;
  envelope.set_request_id(42);
  auto* changes = envelope.mutable_submit_request()->mutable_changes();
  wire::LuChange* line = AddChange(changes, "CustomerOrderLine", wire::NEW);
  (*line->mutable_keys())["order_no"] = "O-1";
  (*line->mutable_keys())["line_no"] = "2";
  (*line->mutable_attributes())["part_no"] = "P-017";
  (*line->mutable_attributes())["price"] = "27.00";
  wire::LuChange* removal = AddChange(changes, "Customer", wire::REMOVE);
  (*removal->mutable_keys())["customer_id"] = "CU-5";

  wire::Envelope decoded = RoundTrip(envelope);

  EXPECT_TRUE(Equal(decoded, envelope)) << decoded.ShortDebugString();
  EXPECT_EQ(decoded.request_id(), 42u);
  ASSERT_EQ(decoded.submit_request().changes_size(), 2);
  EXPECT_EQ(decoded.submit_request().changes(0).keys().at("line_no"), "2");
  EXPECT_EQ(decoded.submit_request().changes(0).attributes().at("price"), "27.00");
  EXPECT_EQ(decoded.submit_request().changes(1).action(), wire::REMOVE);
}

// Sequence 12 of SITE-A's stream: one MODIFY of a Company.
wire::ReplicationMessage RenameCompany() {
  wire::ReplicationMessage message;
  message.set_site("SITE-A");
  message.set_sequence(12);
  message.set_message_class(wire::RECEIVE_MESSAGE);
  message.set_origin_site("MASTER");
  message.set_transaction_id(99);
  message.set_commit_time_us(1'700'000'000'000'000);
  wire::LuChange* company = AddChange(message.mutable_changes(), "Company", wire::MODIFY);
  (*company->mutable_keys())["company_id"] = "C1";
  (*company->mutable_attributes())["name"] = "Renamed";
  return message;
}

TEST(CodecTest, ReplicationMessageRoundTrips) {
  wire::Envelope envelope;
  envelope.set_request_id(7);
  *envelope.mutable_replication_message() = RenameCompany();

  wire::Envelope decoded = RoundTrip(envelope);

  EXPECT_TRUE(Equal(decoded, envelope)) << decoded.ShortDebugString();
  EXPECT_EQ(decoded.request_id(), 7u);
  EXPECT_EQ(decoded.replication_message().sequence(), 12u);
  EXPECT_EQ(decoded.replication_message().changes(0).attributes().at("name"), "Renamed");
}

TEST(CodecTest, ReplicationMessageSentAsBytesDecodesAsTheMessage) {
  const wire::ReplicationMessage message = RenameCompany();

  StatusOr<wire::Envelope> decoded = Decode(EncodeReplicationMessage(message.SerializeAsString()));

  ASSERT_OK(decoded.status());
  ASSERT_TRUE(decoded->has_replication_message());
  EXPECT_EQ(DeterministicBytes(decoded->replication_message()), DeterministicBytes(message));
}

TEST(CodecTest, DecodeStreamKeepsAReplicationMessageAsItsBytesWithItsHeader) {
  wire::Envelope envelope;
  *envelope.mutable_replication_message() = RenameCompany();
  const std::vector<zmq::message_t> frames = Encode(envelope);

  StatusOr<StreamItem> item = DecodeStream(frames);

  ASSERT_OK(item.status());
  ASSERT_TRUE(item->replication_message.has_value());
  const wire::ReplicationMessageHeader& header = item->replication_message->header;
  EXPECT_EQ(header.site(), "SITE-A");
  EXPECT_EQ(header.sequence(), 12u);
  EXPECT_EQ(header.message_class(), wire::RECEIVE_MESSAGE);
  EXPECT_EQ(header.transaction_id(), 99u);
  EXPECT_EQ(header.commit_time_us(), 1'700'000'000'000'000);
  wire::ReplicationMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(item->replication_message->bytes));
  EXPECT_EQ(DeterministicBytes(parsed), DeterministicBytes(envelope.replication_message()));
  // AsReceived gives what the stream gives.
  EXPECT_EQ(AsReceived(parsed).bytes, item->replication_message->bytes);
  EXPECT_EQ(AsReceived(parsed).header.sequence(), 12u);
}

// The stream's two views must keep the field numbers, names and wire types of what they view:
// a sub-message is read as bytes, the same length-delimited wire type.
TEST(CodecTest, StreamViewsMirrorEnvelopeAndReplicationMessage) {
  using google::protobuf::FieldDescriptor;
  auto expect_mirror = [](const google::protobuf::Descriptor* view,
                          const google::protobuf::Descriptor* viewed) {
    for (int i = 0; i < view->field_count(); ++i) {
      const FieldDescriptor* v = view->field(i);
      const FieldDescriptor* m = viewed->FindFieldByNumber(v->number());
      ASSERT_NE(m, nullptr) << view->name() << "." << v->name();
      EXPECT_EQ(v->name(), m->name());
      EXPECT_EQ(v->is_repeated(), m->is_repeated()) << v->name();
      EXPECT_EQ(v->type(), m->type() == FieldDescriptor::TYPE_MESSAGE ? FieldDescriptor::TYPE_BYTES
                                                                      : m->type())
          << v->name();
    }
  };
  expect_mirror(wire::ReplicationMessageEnvelope::descriptor(), wire::Envelope::descriptor());
  expect_mirror(wire::ReplicationMessageHeader::descriptor(),
                wire::ReplicationMessage::descriptor());
  // Every field of a replication message has its place in the header.
  EXPECT_EQ(wire::ReplicationMessageHeader::descriptor()->field_count(),
            wire::ReplicationMessage::descriptor()->field_count());
}

TEST(CodecTest, DecodeStreamDecodesAnyOtherEnvelope) {
  wire::Envelope heartbeat;
  heartbeat.mutable_heartbeat()->set_last_sent_sequence(9);

  StatusOr<StreamItem> item = DecodeStream(Encode(heartbeat));

  ASSERT_OK(item.status());
  EXPECT_FALSE(item->replication_message.has_value());
  EXPECT_EQ(item->envelope.heartbeat().last_sent_sequence(), 9u);
}

TEST(CodecTest, DecodeStreamRejectsAReplicationMessageThatDoesNotDecode) {
  StatusOr<StreamItem> item = DecodeStream(EncodeReplicationMessage("\x0a\xff\xff"));

  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(item.status().message(), HasSubstr("replication message of 3 bytes"));
}

TEST(CodecTest, DecodeStreamRejectsWhatDecodeRejects) {
  EXPECT_THAT(DecodeStream(Frames({"HTTP/1.1", "x"})).status().message(),
              HasSubstr("not the Ferry protocol header"));
  EXPECT_THAT(DecodeStream(Frames({std::string(kProtocolHeader), "\xff\xff"})).status().message(),
              HasSubstr("does not decode as a Ferry envelope"));
}

TEST(CodecTest, AckRoundTrips) {
  wire::Envelope envelope;
  envelope.set_request_id(3);
  envelope.mutable_ack()->set_site("SITE-B");
  envelope.mutable_ack()->set_sequence(1000);

  wire::Envelope decoded = RoundTrip(envelope);

  EXPECT_TRUE(Equal(decoded, envelope)) << decoded.ShortDebugString();
  EXPECT_EQ(decoded.body_case(), wire::Envelope::kAck);
  EXPECT_EQ(decoded.ack().sequence(), 1000u);
}

TEST(CodecTest, StatusReplyRoundTrips) {
  wire::Envelope envelope;
  envelope.set_request_id(1ull << 40);
  wire::ReplicaStatus* replica = envelope.mutable_status_reply()->mutable_replica();
  replica->set_site("SITE-A");
  replica->set_running(true);
  replica->set_last_received_sequence(17);
  wire::QueueStatus* queue = replica->add_queues();
  queue->set_name("apply");
  queue->set_processes(2);
  wire::StateCount* ready = queue->add_jobs();
  ready->set_state("Ready");
  ready->set_count(15);

  wire::Envelope decoded = RoundTrip(envelope);

  EXPECT_TRUE(Equal(decoded, envelope)) << decoded.ShortDebugString();
  EXPECT_EQ(decoded.request_id(), 1ull << 40);
  EXPECT_EQ(decoded.status_reply().replica().queues(0).jobs(0).count(), 15u);
}

TEST(CodecTest, BodyNameNamesTheMessage) {
  wire::Envelope envelope;
  envelope.mutable_submit_request();
  EXPECT_EQ(BodyName(envelope), "SubmitRequest");
  envelope.mutable_ack();
  EXPECT_EQ(BodyName(envelope), "Ack");
}

// Equal messages whose maps were filled in different orders give the same bytes, and a
// different value gives different ones.
TEST(CodecTest, DeterministicBytesOfEqualMessagesAreEqual) {
  wire::LuChange forward, backward;
  for (int i = 0; i < 50; ++i) {
    (*forward.mutable_attributes())["a" + std::to_string(i)] = std::to_string(i);
    (*backward.mutable_attributes())["a" + std::to_string(49 - i)] = std::to_string(49 - i);
  }
  EXPECT_EQ(DeterministicBytes(forward), DeterministicBytes(backward));
  wire::LuChange parsed;
  ASSERT_TRUE(parsed.ParseFromString(DeterministicBytes(forward)));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, forward));
  (*backward.mutable_attributes())["a7"] = "changed";
  EXPECT_NE(DeterministicBytes(forward), DeterministicBytes(backward));
}

TEST(CodecTest, DecodeRejectsOneFrame) {
  StatusOr<wire::Envelope> decoded = Decode(Frames({std::string(kProtocolHeader)}));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("got 1"));
}

TEST(CodecTest, DecodeRejectsThreeFrames) {
  wire::Envelope envelope;
  envelope.mutable_ack()->set_sequence(1);
  std::vector<zmq::message_t> frames = Encode(envelope);
  frames.emplace_back(std::string("extra"));

  StatusOr<wire::Envelope> decoded = Decode(frames);

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("got 3"));
}

TEST(CodecTest, DecodeRejectsAFirstFrameThatIsNotTheHeader) {
  wire::Envelope envelope;
  envelope.mutable_ack()->set_sequence(1);
  std::vector<zmq::message_t> frames = Encode(envelope);
  frames[0] = zmq::message_t(std::string("HTTP/1.1"));

  StatusOr<wire::Envelope> decoded = Decode(frames);

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("protocol header"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("FERRY/1"));
}

TEST(CodecTest, DecodeRejectsAnotherProtocolVersion) {
  wire::Envelope envelope;
  envelope.mutable_ack()->set_sequence(1);
  std::vector<zmq::message_t> frames = Encode(envelope);
  frames[0] = zmq::message_t(std::string("FERRY/2"));

  StatusOr<wire::Envelope> decoded = Decode(frames);

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("unsupported protocol version"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("FERRY/2"));
}

TEST(CodecTest, DecodeRejectsBytesThatAreNotAnEnvelope) {
  // Random bytes from a fixed seed, ending in a varint that never terminates so that they
  // cannot parse whatever the random part holds.
  std::mt19937 random(20240601);
  std::string body(256, '\0');
  for (char& c : body) c = static_cast<char>(random() & 0xFF);
  body += std::string(16, '\xFF');

  StatusOr<wire::Envelope> decoded = Decode(Frames({std::string(kProtocolHeader), body}));

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("does not decode"));
  EXPECT_THAT(decoded.status().message(), HasSubstr(std::to_string(body.size()) + " bytes"));
}

TEST(CodecTest, DecodeRejectsAnEmptyBody) {
  // No bytes parse as an envelope with no message set.
  StatusOr<wire::Envelope> decoded = Decode(Frames({std::string(kProtocolHeader), ""}));

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("no message"));
}

TEST(CodecTest, DecodeRejectsABodyOverTheLimit) {
  std::vector<zmq::message_t> frames = Frames({std::string(kProtocolHeader)});
  frames.emplace_back(kMaxBodyBytes + 1);
  std::memset(frames.back().data(), 0, frames.back().size());

  StatusOr<wire::Envelope> decoded = Decode(frames);

  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kMalformed);
  EXPECT_THAT(decoded.status().message(), HasSubstr("exceeds the limit"));
  EXPECT_THAT(decoded.status().message(), HasSubstr(std::to_string(kMaxBodyBytes + 1)));
}

// A ROUTER bound to a loopback port and a DEALER connected to it.
class CodecSocketTest : public ::testing::Test {
 protected:
  static constexpr int kReceiveTimeoutMs = 2000;

  void SetUp() override {
    for (zmq::socket_t* socket : {&router_, &dealer_}) {
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::rcvtimeo, kReceiveTimeoutMs);
    }
    StatusOr<std::string> endpoint = Bind(router_, "tcp://127.0.0.1:*");
    ASSERT_OK(endpoint.status());
    endpoint_ = *endpoint;
    dealer_.connect(endpoint_);
  }

  zmq::context_t context_;
  zmq::socket_t router_{context_, zmq::socket_type::router};
  zmq::socket_t dealer_{context_, zmq::socket_type::dealer};
  std::string endpoint_;
};

TEST_F(CodecSocketTest, BindReturnsTheChosenPort) {
  EXPECT_THAT(endpoint_, HasSubstr("tcp://127.0.0.1:"));
  EXPECT_THAT(endpoint_, Not(HasSubstr("*")));
}

TEST_F(CodecSocketTest, DealerAndRouterExchangeEnvelopes) {
  wire::Envelope hello;
  hello.set_request_id(5);
  hello.mutable_stream_hello()->set_site("SITE-A");
  hello.mutable_stream_hello()->set_next_sequence(3);
  ASSERT_OK(Send(dealer_, hello));

  std::optional<Received> received;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        received = TryReceive(router_, /*router=*/true);
        return received.has_value();
      },
      std::chrono::milliseconds(kReceiveTimeoutMs)));
  EXPECT_FALSE(received->identity.empty());
  ASSERT_OK(received->envelope.status());
  EXPECT_TRUE(Equal(*received->envelope, hello)) << received->envelope->ShortDebugString();

  wire::Envelope heartbeat;
  heartbeat.set_request_id(5);
  heartbeat.mutable_heartbeat()->set_last_sent_sequence(9);
  ASSERT_OK(Send(router_, heartbeat, received->identity));

  StatusOr<wire::Envelope> reply = ReceiveWithin(dealer_, kReceiveTimeoutMs);
  ASSERT_OK(reply.status());
  EXPECT_EQ(reply->request_id(), 5u);
  EXPECT_EQ(reply->heartbeat().last_sent_sequence(), 9u);
}

TEST_F(CodecSocketTest, ReplicationMessageSentAsBytesArrivesAsThoseBytes) {
  // The ROUTER learns the DEALER's identity from a first message.
  wire::Envelope hello;
  hello.mutable_stream_hello()->set_site("SITE-A");
  ASSERT_OK(Send(dealer_, hello));
  std::optional<Received> received;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return (received = TryReceive(router_, /*router=*/true)).has_value(); },
      std::chrono::milliseconds(kReceiveTimeoutMs)));
  const std::string bytes = RenameCompany().SerializeAsString();

  ASSERT_OK(SendReplicationMessage(router_, bytes, received->identity));

  std::optional<StatusOr<StreamItem>> item;
  ASSERT_TRUE(testing::WaitFor([&] { return (item = TryReceiveStream(dealer_)).has_value(); },
                               std::chrono::milliseconds(kReceiveTimeoutMs)));
  ASSERT_OK(item->status());
  ASSERT_TRUE((*item)->replication_message.has_value());
  EXPECT_EQ((*item)->replication_message->bytes, bytes);
  EXPECT_EQ((*item)->replication_message->header.sequence(), 12u);
}

TEST_F(CodecSocketTest, TryReceiveReturnsNothingWhenNothingIsWaiting) {
  EXPECT_FALSE(TryReceive(router_, /*router=*/true).has_value());
}

TEST_F(CodecSocketTest, ReceiveWithinTimesOutWhenNothingArrives) {
  constexpr int kTimeoutMs = 200;
  const auto start = std::chrono::steady_clock::now();

  StatusOr<wire::Envelope> reply = ReceiveWithin(dealer_, kTimeoutMs);

  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), Status::Code::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("200 ms"));
  EXPECT_GE(elapsed, std::chrono::milliseconds(kTimeoutMs - 20));
  EXPECT_LT(elapsed, std::chrono::milliseconds(kTimeoutMs + 5000));  // a loaded machine's slack
}

}  // namespace
}  // namespace ferry
