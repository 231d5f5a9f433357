#ifndef FERRY_COMMON_CODEC_H_
#define FERRY_COMMON_CODEC_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "common/status.h"
#include "proto/ferry.pb.h"

namespace ferry {

// The one place that turns envelopes into frames and back. A Ferry message is
// [ROUTER identity] [kProtocolHeader] [serialized wire::Envelope]; see proto/ferry.proto.
inline constexpr std::string_view kProtocolHeader = "FERRY/1";
// Larger bodies are refused before parsing; server sockets also set ZMQ_MAXMSGSIZE to it.
inline constexpr size_t kMaxBodyBytes = 64 << 20;

// The frames after any identity: header and body.
std::vector<zmq::message_t> Encode(const wire::Envelope& envelope);

// Decodes header and body frames. Fails, naming what is wrong, on a wrong or missing header,
// bytes that are not an envelope, an envelope with no message, or too many frames.
StatusOr<wire::Envelope> Decode(const std::vector<zmq::message_t>& frames);

// A replication message as the stream carries it: its bytes, which the inbox stores as they
// are, and its header, which the replica reads (the changes stay bytes there).
struct ReceivedMessage {
  wire::ReplicationMessageHeader header;
  std::string bytes;
  int64_t received_at_us = 0;  // when the replica took it off the stream; 0 if it did not say
};
// `message` as the stream would bring it.
ReceivedMessage AsReceived(const wire::ReplicationMessage& message);

// The frames of an envelope carrying the replication message whose bytes are `message`,
// which are not parsed (the master sends what its outbox holds).
std::vector<zmq::message_t> EncodeReplicationMessage(std::string_view message);

// What a replica's stream socket takes: a replication message, kept as its bytes, or any
// other envelope, decoded.
struct StreamItem {
  std::optional<ReceivedMessage> replication_message;
  wire::Envelope envelope;  // when it is not a replication message
};
// Decode's checks, then: a replication message whose header does not decode fails, naming it.
StatusOr<StreamItem> DecodeStream(const std::vector<zmq::message_t>& frames);

// The bytes of `message` with map entries in key order: equal messages give equal bytes,
// which a plain serialization (maps in hash order) does not promise. For comparing messages.
std::string DeterministicBytes(const google::protobuf::Message& message);

// The name of the message an envelope carries ("SubmitRequest"), for logs and errors.
std::string BodyName(const wire::Envelope& envelope);

// One message taken off a socket: for a ROUTER socket the peer's identity, and the decoded
// envelope or the reason it did not decode.
struct Received {
  std::string identity;  // empty on non-ROUTER sockets
  StatusOr<wire::Envelope> envelope;
};

// Takes one message off `socket` without blocking; nullopt when none is waiting or the
// context is shutting down. `router` says whether the first frame is a peer identity.
std::optional<Received> TryReceive(zmq::socket_t& socket, bool router);

// TryReceive for a replica's stream socket (a DEALER): replication messages stay bytes.
std::optional<StatusOr<StreamItem>> TryReceiveStream(zmq::socket_t& socket);

// Waits up to `timeout_ms` for one message on a non-ROUTER socket.
StatusOr<wire::Envelope> ReceiveWithin(zmq::socket_t& socket, int timeout_ms);

// Sends without blocking; `identity` is the peer for a ROUTER socket, empty otherwise.
// A full queue (Unavailable) or a peer that is gone (NotFound) is an error, never a silent
// drop.
Status Send(zmq::socket_t& socket, const wire::Envelope& envelope,
            const std::string& identity = {});
// Send of the replication message whose bytes are `message` (EncodeReplicationMessage).
Status SendReplicationMessage(zmq::socket_t& socket, std::string_view message,
                              const std::string& identity);

// Polls `items` for up to `timeout`. A signal (EINTR) is a normal return with no events, so
// the caller's loop rechecks its stop flag; a context that is shutting down is Unavailable.
Status Poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

// Binds `socket` to `endpoint` ("tcp://127.0.0.1:*" picks a free port) and returns the
// endpoint it is bound to, or why binding failed.
StatusOr<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint);

// The Status an Error envelope stands for.
Status StatusFromError(const wire::Error& error);
// The wire code for a Status, for nodes answering with an Error envelope.
wire::ErrorCode ErrorCodeFor(const Status& status);

// An Error envelope answering request `request_id`.
wire::Envelope ErrorEnvelope(uint64_t request_id, wire::ErrorCode code, const std::string& message);

}  // namespace ferry

#endif  // FERRY_COMMON_CODEC_H_
