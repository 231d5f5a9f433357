#include "master/master.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/codec.h"
#include "common/log.h"

namespace ferry {

StatusOr<std::unique_ptr<Master>> Master::Create(zmq::context_t& context, MasterOptions options,
                                                 std::shared_ptr<const Catalog> catalog,
                                                 const Clock* clock) {
  auto store = OpenSqliteMasterStore(options.db_path, catalog);
  if (!store.ok()) return store.status();
  auto published = (*store)->PublishConfiguration(clock->NowMicros());
  if (!published.ok()) return published.status().Annotate("publishing the configuration");
  for (const auto& site : *published) LogInfo("configuration queued on the stream of " + site);

  std::unique_ptr<Master> master(
      new Master(context, std::move(options), std::move(catalog), clock, std::move(store).value()));
  auto submit = Bind(master->submit_socket_, master->options_.submit_endpoint);
  if (!submit.ok()) return submit.status().Annotate("submit endpoint");
  master->submit_endpoint_ = *submit;
  auto stream = Bind(master->stream_socket_, master->options_.stream_endpoint);
  if (!stream.ok()) return stream.status().Annotate("stream endpoint");
  master->stream_endpoint_ = *stream;
  return master;
}

Master::Master(zmq::context_t& context, MasterOptions options,
               std::shared_ptr<const Catalog> catalog, const Clock* clock,
               std::unique_ptr<MasterStore> store)
    : options_(std::move(options)),
      catalog_(std::move(catalog)),
      clock_(clock),
      store_(std::move(store)),
      submit_socket_(context, zmq::socket_type::router),
      stream_socket_(context, zmq::socket_type::router) {
  for (auto* socket : {&submit_socket_, &stream_socket_}) {
    socket->set(zmq::sockopt::linger, 0);
    // An unroutable reply is an error we see, not a silent drop.
    socket->set(zmq::sockopt::router_mandatory, 1);
    socket->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxBodyBytes + 1024));
  }
  // Room for a full window of every replica plus heartbeats: the window, not the high-water
  // mark, is what limits a stream.
  stream_socket_.set(zmq::sockopt::sndhwm, static_cast<int>(options_.stream_window * 2 + 100));
  for (const auto& position : store_->Streams()) {
    Peer& peer = peers_[position.site];
    peer.next_to_send = position.acknowledged_sequence + 1;
  }
}

Status Master::Run(const std::atomic<bool>& stop) {
  LogInfo("master " + catalog_->proto().master_site() + " serving submit on " + submit_endpoint_ +
          ", streams on " + stream_endpoint_);
  auto next_heartbeat = clock_->Steady();
  while (!stop.load()) {
    if (!store_failed_.ok()) return store_failed_;  // a restart recovers from the commit log
    auto now = clock_->Steady();
    if (now >= next_heartbeat) {
      Maintain();
      SendHeartbeats();
      next_heartbeat = now + options_.heartbeat_interval;
    }
    auto wait = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next_heartbeat - now),
        std::chrono::milliseconds(100));  // also how quickly `stop` is noticed
    if (flush_due_) {
      wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*flush_due_ - now),
                        std::chrono::milliseconds(0), wait);
    }
    zmq::pollitem_t items[] = {{submit_socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {stream_socket_.handle(), 0, ZMQ_POLLIN, 0}};
    Status polled = Poll(items, 2, wait);
    if (polled.code() == Status::Code::kUnavailable) break;
    FERRY_RETURN_IF_ERROR(polled);
    if (items[0].revents & ZMQ_POLLIN) HandleSubmitPort();
    if (items[1].revents & ZMQ_POLLIN) HandleStreamPort();
    // Commits are durable by the commit log at once; SQLite gets them in groups.
    if (store_->HasUnflushed() && !flush_due_) flush_due_ = clock_->Steady() + kFlushDelay;
    const bool idle = !(items[0].revents & ZMQ_POLLIN) && !(items[1].revents & ZMQ_POLLIN);
    if (flush_due_ && (idle || clock_->Steady() >= *flush_due_)) {
      FERRY_RETURN_IF_ERROR(Flush());
    }
  }
  FERRY_RETURN_IF_ERROR(Flush());
  LogInfo("master stopped");
  return Status::Ok();
}

Status Master::Flush() {
  flush_due_.reset();
  Status flushed = store_->Flush();
  // The transactions stay in the commit log: a restart applies them again.
  if (!flushed.ok()) {
    LogError(flushed.message());
    store_failed_ = flushed;
  }
  return flushed;
}

void Master::HandleSubmitPort() {
  // The submits waiting together commit as a group, which shares the commit log's fsyncs.
  std::vector<Received> submits;
  for (int served = 0; served < kRequestsPerTurn; ++served) {
    auto received = TryReceive(submit_socket_, /*router=*/true);
    if (!received) break;
    if (!received->envelope.ok()) {
      LogWarning("submit port: rejected message: " + received->envelope.status().message());
      (void)Send(submit_socket_,
                 ErrorEnvelope(0, wire::MALFORMED, received->envelope.status().message()),
                 received->identity);
      continue;
    }
    if (received->envelope->has_submit_request()) {
      submits.push_back(std::move(*received));
      continue;
    }
    // Anything else is answered after the submits that came before it.
    CommitAndReply(submits);
    submits.clear();
    const wire::Envelope& request = *received->envelope;
    wire::Envelope reply;
    reply.set_request_id(request.request_id());
    if (request.has_status_request()) {
      // Whoever asks may read the database next: what the status counts is in it.
      (void)Flush();
      *reply.mutable_status_reply()->mutable_master() = CurrentStatus();
    } else {
      const std::string reason =
          "the submit port takes SubmitRequest or StatusRequest, not " + BodyName(request);
      LogWarning("submit port: " + reason);
      reply = ErrorEnvelope(request.request_id(), wire::UNEXPECTED, reason);
    }
    Status sent = Send(submit_socket_, reply, received->identity);
    if (!sent.ok()) LogWarning("submit port: reply not sent: " + sent.message());
  }
  CommitAndReply(submits);
}

void Master::CommitAndReply(const std::vector<Received>& submits) {
  if (submits.empty()) return;
  std::vector<const wire::SubmitRequest*> requests;
  requests.reserve(submits.size());
  for (const Received& submit : submits) requests.push_back(&submit.envelope->submit_request());
  auto committed = store_->CommitGroup(requests, clock_->NowMicros());
  submits_since_start_ += submits.size();
  std::set<std::string> published;
  for (size_t i = 0; i < submits.size(); ++i) {
    const uint64_t request_id = submits[i].envelope->request_id();
    wire::Envelope reply;
    if (committed[i].ok()) {
      reply.set_request_id(request_id);
      *reply.mutable_submit_reply() = std::move(committed[i]).value();
      for (const auto& position : reply.submit_reply().published()) {
        published.insert(position.site());
      }
    } else {
      reply = ErrorEnvelope(request_id, ErrorCodeFor(committed[i].status()),
                            committed[i].status().message());
    }
    Status sent = Send(submit_socket_, reply, submits[i].identity);
    if (!sent.ok()) LogWarning("submit port: reply not sent: " + sent.message());
  }
  for (const std::string& site : published) Pump(site);
}

void Master::HandleStreamPort() {
  for (int served = 0; served < kRequestsPerTurn; ++served) {
    auto received = TryReceive(stream_socket_, /*router=*/true);
    if (!received) return;
    if (!received->envelope.ok()) {
      LogWarning("stream port: rejected message: " + received->envelope.status().message());
      (void)Send(stream_socket_,
                 ErrorEnvelope(0, wire::MALFORMED, received->envelope.status().message()),
                 received->identity);
      continue;
    }
    const wire::Envelope& envelope = *received->envelope;
    if (envelope.has_stream_hello()) {
      OnHello(received->identity, envelope.stream_hello());
    } else if (envelope.has_ack()) {
      OnAck(received->identity, envelope.ack());
    } else {
      const std::string reason =
          "the stream port takes StreamHello or Ack, not " + BodyName(envelope);
      LogWarning("stream port: " + reason);
      (void)Send(stream_socket_, ErrorEnvelope(envelope.request_id(), wire::UNEXPECTED, reason),
                 received->identity);
    }
  }
}

void Master::OnHello(const std::string& identity, const wire::StreamHello& hello) {
  auto it = peers_.find(hello.site());
  if (it == peers_.end()) {
    const std::string reason =
        "site '" + hello.site() + "' is not a replica site in the master configuration";
    LogWarning("stream port: refused hello: " + reason);
    (void)Send(stream_socket_, ErrorEnvelope(0, wire::NOT_FOUND, reason), identity);
    return;
  }
  Peer& peer = it->second;
  const StreamPosition position = store_->Position(hello.site());
  const uint64_t latest = position.latest_sequence;
  uint64_t next = std::max<uint64_t>(hello.next_sequence(), 1);
  if (next < position.first_available) {
    peer.identity = identity;
    peer.last_heard = clock_->Steady();
    RestartWithSnapshot(
        hello.site(), next <= position.acknowledged_sequence
                          ? "it asked for sequence " + std::to_string(next) +
                                " but had acknowledged up to " +
                                std::to_string(position.acknowledged_sequence) +
                                ": its database was lost or replaced"
                          : "the outbox no longer holds sequence " + std::to_string(next) +
                                " (it keeps at most " + std::to_string(options_.outbox_quota) +
                                " unacknowledged messages per site): the site fell past the quota");
    return;
  }
  if (next > latest + 1) {
    LogError("site " + hello.site() + " asks for sequence " + std::to_string(next) +
             " but its stream ends at " + std::to_string(latest) +
             ": the replica holds messages this master does not; sending from " +
             std::to_string(latest + 1));
    next = latest + 1;
  }
  if (peer.identity != identity) {
    LogInfo("site " + hello.site() + " connected, streaming from sequence " + std::to_string(next));
  }
  peer.identity = identity;
  peer.next_to_send = next;
  peer.last_heard = clock_->Steady();
  // Asking for `next` means everything before it is stored.
  wire::Ack implied;
  implied.set_site(hello.site());
  implied.set_sequence(next - 1);
  OnAck(identity, implied);
}

void Master::OnAck(const std::string& identity, const wire::Ack& ack) {
  auto it = peers_.find(ack.site());
  if (it == peers_.end() || it->second.identity != identity) {
    LogWarning("stream port: ack for site '" + ack.site() + "' from a connection that is not its");
    return;
  }
  Peer& peer = it->second;
  peer.last_heard = clock_->Steady();
  Status recorded = store_->RecordAcknowledged(ack.site(), ack.sequence());
  if (!recorded.ok()) LogError("recording ack of " + ack.site() + ": " + recorded.message());
  Pump(ack.site());
}

void Master::Pump(const std::string& site) {
  auto it = peers_.find(site);
  if (it == peers_.end() || it->second.identity.empty()) return;
  Peer& peer = it->second;
  const StreamPosition position = store_->Position(site);
  if (peer.next_to_send < position.first_available) {
    RestartWithSnapshot(site, "its unacknowledged messages went past the outbox quota of " +
                                  std::to_string(options_.outbox_quota));
    return;
  }
  constexpr size_t kBatch = 256;
  const uint64_t acknowledged = position.acknowledged_sequence;
  while (peer.next_to_send <= acknowledged + options_.stream_window) {
    size_t room = acknowledged + options_.stream_window - peer.next_to_send + 1;
    auto entries = store_->ReadOutbox(site, peer.next_to_send, std::min(room, kBatch));
    if (!entries.ok()) {
      LogError("reading the outbox of " + site + ": " + entries.status().message());
      return;
    }
    if (entries->empty()) return;
    for (const auto& entry : *entries) {
      Status sent = SendReplicationMessage(stream_socket_, entry.message, peer.identity);
      if (!sent.ok()) {
        // Gone: it says hello again when it is back. Full: the next ack or heartbeat resumes.
        LogWarning("stream to " + site + " paused at sequence " + std::to_string(entry.sequence) +
                   ": " + sent.message());
        if (sent.code() == Status::Code::kNotFound) peer.identity.clear();
        return;
      }
      peer.next_to_send = entry.sequence + 1;
    }
  }
}

void Master::RestartWithSnapshot(const std::string& site, const std::string& reason) {
  auto first = store_->AppendSnapshot(site, clock_->NowMicros());
  if (!first.ok()) {
    LogError("snapshot for " + site + ": " + first.status().message());
    return;
  }
  LogWarning("site " + site + " gets a snapshot from sequence " + std::to_string(*first) + ": " +
             reason);
  Peer& peer = peers_.at(site);
  peer.past_quota = false;
  // What came before the snapshot is superseded: the site will never need it.
  Status recorded = store_->RecordAcknowledged(site, *first - 1);
  if (!recorded.ok()) LogError("recording " + site + "'s position: " + recorded.message());
  peer.next_to_send = *first;
  wire::Envelope reset;
  reset.mutable_stream_reset()->set_next_sequence(*first);
  reset.mutable_stream_reset()->set_reason(reason);
  if (!peer.identity.empty()) {
    Status sent = Send(stream_socket_, reset, peer.identity);
    if (!sent.ok()) LogWarning("stream reset to " + site + " not sent: " + sent.message());
  }
  Pump(site);
}

void Master::Maintain() {
  auto pruned = store_->Prune(options_.outbox_quota, clock_->NowMicros());
  if (!pruned.ok()) {
    LogError("pruning the outbox: " + pruned.status().message());
    return;
  }
  for (const auto& site : pruned->past_quota) {
    auto peer = peers_.find(site);
    if (peer == peers_.end() || peer->second.past_quota) continue;  // said once per crossing
    peer->second.past_quota = true;
    LogError("site " + site + " fell past the outbox quota of " +
             std::to_string(options_.outbox_quota) +
             " messages: its oldest unacknowledged messages were dropped from the outbox; it "
             "will get a snapshot");
  }
  for (const auto& position : store_->Streams()) {
    auto it = peers_.find(position.site);
    if (it == peers_.end()) continue;
    const uint64_t backlog = position.latest_sequence - position.acknowledged_sequence;
    const bool near = backlog * 10 >= options_.outbox_quota * 8;
    if (near && !it->second.warned) {
      LogWarning("site " + position.site + " is " + std::to_string(backlog) +
                 " messages behind, 80% of the outbox quota of " +
                 std::to_string(options_.outbox_quota) + ": past it, it will need a snapshot");
    }
    it->second.warned = near;
  }
}

void Master::SendHeartbeats() {
  for (const auto& position : store_->Streams()) {
    auto it = peers_.find(position.site);
    if (it == peers_.end() || it->second.identity.empty()) continue;
    wire::Envelope envelope;
    // Not the stream's newest: a replica told of messages not yet sent would ask for them
    // again, and the window would be sent twice.
    envelope.mutable_heartbeat()->set_last_sent_sequence(it->second.next_to_send - 1);
    Status sent = Send(stream_socket_, envelope, it->second.identity);
    if (sent.code() == Status::Code::kNotFound) it->second.identity.clear();
    Pump(position.site);  // resumes a stream that a full queue paused
  }
}

wire::MasterStatus Master::CurrentStatus() const {
  wire::MasterStatus status;
  status.set_site(catalog_->proto().master_site());
  status.set_last_transaction_id(store_->LastTransactionId());
  status.set_pid(getpid());
  status.set_submits_since_start(submits_since_start_);
  status.set_durable_syncs(store_->DurableSyncs());
  status.set_sync_poll_cpu_us(store_->SyncPollCpuMicros());
  const auto now = clock_->Steady();
  for (const auto& position : store_->Streams()) {
    wire::StreamStatus* stream = status.add_streams();
    stream->set_site(position.site);
    stream->set_latest_sequence(position.latest_sequence);
    stream->set_acknowledged_sequence(position.acknowledged_sequence);
    stream->set_outbox_entries(position.latest_sequence >= position.first_available
                                   ? position.latest_sequence - position.first_available + 1
                                   : 0);
    stream->set_outbox_quota(options_.outbox_quota);
    auto it = peers_.find(position.site);
    stream->set_connected(it != peers_.end() && !it->second.identity.empty() &&
                          now - it->second.last_heard < 3 * options_.heartbeat_interval);
  }
  return status;
}

}  // namespace ferry
