// libFuzzer target: Decode and DecodeStream of arbitrary frames. Whatever the bytes, each
// returns a value or an error naming the problem, never crashes; an envelope Decode accepts
// encodes and decodes to the same envelope; a replication message DecodeStream keeps as bytes
// is sent on as exactly those bytes.
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <zmq.hpp>

#include "common/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input is split into frames at each byte 0xFE, so the fuzzer controls how many there
  // are and what each holds (a header, a body, or neither).
  std::vector<zmq::message_t> frames;
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i == size || data[i] == 0xFE) {
      frames.emplace_back(data + start, i - start);
      start = i + 1;
    }
  }
  auto streamed = ferry::DecodeStream(frames);
  if (!streamed.ok() && streamed.status().message().empty()) std::abort();
  if (streamed.ok() && streamed->replication_message) {
    const std::string& bytes = streamed->replication_message->bytes;
    auto resent = ferry::DecodeStream(ferry::EncodeReplicationMessage(bytes));
    if (!resent.ok() || !resent->replication_message || resent->replication_message->bytes != bytes)
      std::abort();
  }
  auto decoded = ferry::Decode(frames);
  if (!decoded.ok()) {
    if (decoded.status().message().empty()) std::abort();  // a rejection always says why
    return 0;
  }
  (void)ferry::BodyName(*decoded);
  auto again = ferry::Decode(ferry::Encode(*decoded));
  if (!again.ok() || ferry::DeterministicBytes(*again) != ferry::DeterministicBytes(*decoded))
    std::abort();
  return 0;
}
