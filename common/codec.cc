#include "common/codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <zmq_addon.hpp>

namespace ferry {

namespace {

// [kProtocolHeader][`body`, serialized]
std::vector<zmq::message_t> FramesOf(const google::protobuf::MessageLite& body) {
  std::vector<zmq::message_t> frames;
  frames.emplace_back(kProtocolHeader.data(), kProtocolHeader.size());
  zmq::message_t bytes(body.ByteSizeLong());
  body.SerializeWithCachedSizesToArray(static_cast<uint8_t*>(bytes.data()));
  frames.push_back(std::move(bytes));
  return frames;
}

// The body frame of a Ferry message, once the frame count, the header and the size are right.
StatusOr<std::string_view> Body(const std::vector<zmq::message_t>& frames) {
  if (frames.size() != 2) {
    return Status::Malformed("expected 2 frames (protocol header, envelope), got " +
                             std::to_string(frames.size()));
  }
  std::string_view header(static_cast<const char*>(frames[0].data()), frames[0].size());
  if (header != kProtocolHeader) {
    if (header.substr(0, 6) == "FERRY/") {
      return Status::Malformed("unsupported protocol version '" +
                               std::string(header.substr(0, 32)) + "' (this node speaks " +
                               std::string(kProtocolHeader) + ")");
    }
    return Status::Malformed("first frame is not the Ferry protocol header " +
                             std::string(kProtocolHeader));
  }
  std::string_view body(static_cast<const char*>(frames[1].data()), frames[1].size());
  if (body.size() > kMaxBodyBytes) {
    return Status::Malformed("envelope of " + std::to_string(body.size()) +
                             " bytes exceeds the limit of " + std::to_string(kMaxBodyBytes));
  }
  return body;
}

StatusOr<wire::Envelope> DecodeBody(std::string_view body) {
  wire::Envelope envelope;
  if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Status::Malformed("envelope of " + std::to_string(body.size()) +
                             " bytes does not decode as a Ferry envelope");
  }
  if (envelope.body_case() == wire::Envelope::BODY_NOT_SET) {
    return Status::Malformed("envelope carries no message this protocol version knows");
  }
  return envelope;
}

// `envelope` names what was sent in an error (null: a replication message sent as bytes).
Status SendFrames(zmq::socket_t& socket, std::vector<zmq::message_t> body,
                  const std::string& identity, const wire::Envelope* envelope) {
  std::vector<zmq::message_t> frames;
  if (!identity.empty()) frames.emplace_back(identity.data(), identity.size());
  for (auto& frame : body) frames.push_back(std::move(frame));
  try {
    if (!zmq::send_multipart(socket, frames, zmq::send_flags::dontwait)) {
      const std::string what = envelope ? BodyName(*envelope) : "ReplicationMessage";
      // A ROUTER with a known peer would block only at the high-water mark; a DEALER also
      // when it has no connection at all (sockets here set ZMQ_IMMEDIATE).
      if (socket.get(zmq::sockopt::type) == ZMQ_ROUTER) {
        return Status::Unavailable("send queue full (high-water mark reached) for " + what);
      }
      return Status::Unavailable("no connected peer takes " + what +
                                 " (not connected, or its send queue is full)");
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Status::NotFound("peer is no longer connected");
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
  return Status::Ok();
}

// Takes one multipart message off `socket` without blocking; false when none is waiting or
// the context is shutting down (ETERM: the caller's loop ends on its own check).
bool ReceiveFrames(zmq::socket_t& socket, std::vector<zmq::message_t>* frames) {
  try {
    return zmq::recv_multipart(socket, std::back_inserter(*frames), zmq::recv_flags::dontwait)
        .has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

}  // namespace

std::vector<zmq::message_t> Encode(const wire::Envelope& envelope) { return FramesOf(envelope); }

StatusOr<wire::Envelope> Decode(const std::vector<zmq::message_t>& frames) {
  auto body = Body(frames);
  if (!body.ok()) return body.status();
  return DecodeBody(*body);
}

ReceivedMessage AsReceived(const wire::ReplicationMessage& message) {
  ReceivedMessage received;
  received.bytes = message.SerializeAsString();
  received.header.ParseFromString(received.bytes);
  return received;
}

std::vector<zmq::message_t> EncodeReplicationMessage(std::string_view message) {
  wire::ReplicationMessageEnvelope envelope;
  envelope.set_replication_message(std::string(message));
  return FramesOf(envelope);
}

StatusOr<StreamItem> DecodeStream(const std::vector<zmq::message_t>& frames) {
  auto body = Body(frames);
  if (!body.ok()) return body.status();
  StreamItem item;
  wire::ReplicationMessageEnvelope outer;
  if (outer.ParseFromArray(body->data(), static_cast<int>(body->size())) &&
      outer.has_replication_message()) {
    ReceivedMessage& message = item.replication_message.emplace();
    message.bytes = std::move(*outer.mutable_replication_message());
    if (!message.header.ParseFromString(message.bytes)) {
      return Status::Malformed("replication message of " + std::to_string(message.bytes.size()) +
                               " bytes does not decode");
    }
    return item;
  }
  auto envelope = DecodeBody(*body);
  if (!envelope.ok()) return envelope.status();
  item.envelope = std::move(envelope).value();
  return item;
}

std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string BodyName(const wire::Envelope& envelope) {
  const auto* field = wire::Envelope::descriptor()->FindFieldByNumber(envelope.body_case());
  return field ? field->message_type()->name() : "nothing";
}

std::optional<Received> TryReceive(zmq::socket_t& socket, bool router) {
  std::vector<zmq::message_t> frames;
  if (!ReceiveFrames(socket, &frames)) return std::nullopt;
  Received received{{}, Status::Malformed("empty message")};
  if (router) {
    received.identity = frames.front().to_string();
    frames.erase(frames.begin());
  }
  received.envelope = Decode(frames);
  return received;
}

std::optional<StatusOr<StreamItem>> TryReceiveStream(zmq::socket_t& socket) {
  std::vector<zmq::message_t> frames;
  if (!ReceiveFrames(socket, &frames)) return std::nullopt;
  return DecodeStream(frames);
}

StatusOr<wire::Envelope> ReceiveWithin(zmq::socket_t& socket, int timeout_ms) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  FERRY_RETURN_IF_ERROR(Poll(&item, 1, std::chrono::milliseconds(timeout_ms)));
  if (!(item.revents & ZMQ_POLLIN)) {
    return Status::Unavailable("no reply within " + std::to_string(timeout_ms) + " ms");
  }
  std::optional<Received> received = TryReceive(socket, /*router=*/false);
  if (!received) return Status::Unavailable("socket closed while waiting for a reply");
  return std::move(received->envelope);
}

Status Send(zmq::socket_t& socket, const wire::Envelope& envelope, const std::string& identity) {
  return SendFrames(socket, Encode(envelope), identity, &envelope);
}

Status SendReplicationMessage(zmq::socket_t& socket, std::string_view message,
                              const std::string& identity) {
  return SendFrames(socket, EncodeReplicationMessage(message), identity, nullptr);
}

Status Poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  for (size_t i = 0; i < count; ++i) items[i].revents = 0;
  try {
    zmq::poll(items, count, std::max(timeout, std::chrono::milliseconds(0)));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return Status::Ok();
    if (e.num() == ETERM) return Status::Unavailable("the ZeroMQ context is shutting down");
    return Status::Internal(std::string("poll failed: ") + e.what());
  }
  return Status::Ok();
}

StatusOr<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint) {
  try {
    socket.bind(endpoint);
    return socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + endpoint + ": " + e.what());
  }
}

wire::Envelope ErrorEnvelope(uint64_t request_id, wire::ErrorCode code,
                             const std::string& message) {
  wire::Envelope envelope;
  envelope.set_request_id(request_id);
  envelope.mutable_error()->set_code(code);
  envelope.mutable_error()->set_message(message);
  return envelope;
}

Status StatusFromError(const wire::Error& error) {
  switch (error.code()) {
    case wire::INVALID_ARGUMENT:
      return Status::InvalidArgument(error.message());
    case wire::NOT_FOUND:
      return Status::NotFound(error.message());
    case wire::ALREADY_EXISTS:
      return Status::AlreadyExists(error.message());
    case wire::MALFORMED:
    case wire::UNEXPECTED:
      return Status::Malformed(error.message());
    case wire::UNAVAILABLE:
      return Status::Unavailable(error.message());
    default:
      return Status::Internal(error.message());
  }
}

wire::ErrorCode ErrorCodeFor(const Status& status) {
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
      return wire::INVALID_ARGUMENT;
    case Status::Code::kNotFound:
      return wire::NOT_FOUND;
    case Status::Code::kAlreadyExists:
      return wire::ALREADY_EXISTS;
    case Status::Code::kMalformed:
      return wire::MALFORMED;
    case Status::Code::kUnavailable:
      return wire::UNAVAILABLE;
    default:
      return wire::INTERNAL;
  }
}

}  // namespace ferry
