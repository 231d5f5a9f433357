#ifndef FERRY_COMMON_NODE_CLIENT_H_
#define FERRY_COMMON_NODE_CLIENT_H_

#include <string>
#include <zmq.hpp>

#include "common/status.h"
#include "proto/ferry.pb.h"

namespace ferry {

// A client of a node's request port (the master's submit port, any node's admin port):
// one DEALER socket, one request at a time, replies matched by request id so that a reply
// that arrives after its timeout is never taken for the next one's. Not thread-safe.
class NodeClient {
 public:
  // REQUIRES: `context` outlives the client. Connecting never fails here; an unreachable
  // node shows as a timeout on the first call.
  NodeClient(zmq::context_t& context, const std::string& endpoint, int timeout_ms = 10000);

  // Sends `request` and waits for its reply. An Error reply is returned as a Status whose
  // message is the node's.
  StatusOr<wire::Envelope> Call(wire::Envelope request);

  StatusOr<wire::SubmitReply> Submit(const wire::SubmitRequest& request);
  StatusOr<wire::StatusReply> GetStatus();

  const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
  int timeout_ms_;
  uint64_t next_request_id_ = 1;
};

}  // namespace ferry

#endif  // FERRY_COMMON_NODE_CLIENT_H_
