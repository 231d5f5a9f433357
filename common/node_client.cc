#include "common/node_client.h"

#include <chrono>

#include "common/codec.h"

namespace ferry {

NodeClient::NodeClient(zmq::context_t& context, const std::string& endpoint, int timeout_ms)
    : socket_(context, zmq::socket_type::dealer), endpoint_(endpoint), timeout_ms_(timeout_ms) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
}

StatusOr<wire::Envelope> NodeClient::Call(wire::Envelope request) {
  const uint64_t id = next_request_id_++;
  request.set_request_id(id);
  // A fresh peer may not be connected yet; the DEALER queues the message until it is.
  FERRY_RETURN_IF_ERROR(Send(socket_, request).Annotate(endpoint_));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Status::Unavailable("no reply from " + endpoint_ + " within " +
                                 std::to_string(timeout_ms_) + " ms");
    }
    auto reply = ReceiveWithin(socket_, static_cast<int>(left.count()));
    if (!reply.ok()) {
      if (reply.status().code() == Status::Code::kUnavailable) continue;  // recheck the deadline
      return reply.status().Annotate("reply from " + endpoint_);
    }
    if (reply->request_id() != id) continue;  // a late reply to an earlier request
    if (reply->has_error()) return StatusFromError(reply->error());
    return std::move(reply).value();
  }
}

StatusOr<wire::SubmitReply> NodeClient::Submit(const wire::SubmitRequest& request) {
  wire::Envelope envelope;
  *envelope.mutable_submit_request() = request;
  auto reply = Call(std::move(envelope));
  if (!reply.ok()) return reply.status();
  if (!reply->has_submit_reply()) {
    return Status::Internal(endpoint_ + " answered a submit with " + BodyName(*reply));
  }
  return std::move(*reply->mutable_submit_reply());
}

StatusOr<wire::StatusReply> NodeClient::GetStatus() {
  wire::Envelope envelope;
  envelope.mutable_status_request();
  auto reply = Call(std::move(envelope));
  if (!reply.ok()) return reply.status();
  if (!reply->has_status_reply()) {
    return Status::Internal(endpoint_ + " answered a status request with " + BodyName(*reply));
  }
  return std::move(*reply->mutable_status_reply());
}

}  // namespace ferry
