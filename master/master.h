#ifndef FERRY_MASTER_MASTER_H_
#define FERRY_MASTER_MASTER_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/catalog.h"
#include "common/clock.h"
#include "common/status.h"
#include "master/master_store.h"

namespace ferry {

struct Received;  // common/codec.h

struct MasterOptions {
  std::string submit_endpoint = "tcp://127.0.0.1:7400";  // submit and status requests
  std::string stream_endpoint = "tcp://127.0.0.1:7401";  // replica sites connect here
  std::string db_path = "master.db";                     // the SQLite master database
  std::chrono::milliseconds heartbeat_interval{1000};    // to every connected replica
  uint32_t stream_window = 1000;  // messages sent to a replica and not yet acknowledged
  // Unacknowledged messages kept per site; past it the oldest go and the site gets a snapshot.
  uint64_t outbox_quota = 1000000;
};

// ferry-master: owns the master database, takes transactions on its submit port, and streams
// each replica site its own messages on the stream port (ROUTER): a replica says hello with
// the sequence it wants next and is sent its stream from there, at most `stream_window`
// messages ahead of its acknowledgements, with heartbeats carrying the last sequence sent.
// Single-threaded: Run() is its poll loop.
class Master {
 public:
  // Opens the store and binds both ports. REQUIRES: `context` and `clock` outlive it.
  static StatusOr<std::unique_ptr<Master>> Create(zmq::context_t& context, MasterOptions options,
                                                  std::shared_ptr<const Catalog> catalog,
                                                  const Clock* clock);

  // Serves until `stop` is set or the context shuts down.
  Status Run(const std::atomic<bool>& stop);

  // The endpoints actually bound (a "*" port resolved).
  const std::string& submit_endpoint() const { return submit_endpoint_; }
  const std::string& stream_endpoint() const { return stream_endpoint_; }

 private:
  // A replica site's connection to its stream.
  struct Peer {
    std::string identity;       // ROUTER identity of its current connection; empty if none
    uint64_t next_to_send = 1;  // the next sequence to send it
    std::chrono::steady_clock::time_point last_heard{};
    bool warned = false;      // of its backlog nearing the quota
    bool past_quota = false;  // its oldest unacknowledged messages were dropped
  };

  Master(zmq::context_t& context, MasterOptions options, std::shared_ptr<const Catalog> catalog,
         const Clock* clock, std::unique_ptr<MasterStore> store);

  void HandleSubmitPort();
  // Commits `submits` as one group (one fsync) and answers each.
  void CommitAndReply(const std::vector<Received>& submits);
  void HandleStreamPort();
  // Puts the committed transactions the store groups where other readers see them.
  Status Flush();
  void OnHello(const std::string& identity, const wire::StreamHello& hello);
  void OnAck(const std::string& identity, const wire::Ack& ack);
  // Sends `site` what its window allows.
  void Pump(const std::string& site);
  // Streams `site` a snapshot: it asked for what the outbox no longer holds, for `reason`.
  void RestartWithSnapshot(const std::string& site, const std::string& reason);
  void SendHeartbeats();
  // Prunes the outbox and warns of sites heading for the quota.
  void Maintain();
  wire::MasterStatus CurrentStatus() const;

  MasterOptions options_;
  std::shared_ptr<const Catalog> catalog_;
  const Clock* clock_;
  std::unique_ptr<MasterStore> store_;
  zmq::socket_t submit_socket_;
  zmq::socket_t stream_socket_;
  std::string submit_endpoint_;
  std::string stream_endpoint_;
  std::map<std::string, Peer> peers_;  // by replica site
  // When the store's group of committed transactions is flushed, if one is open.
  std::optional<std::chrono::steady_clock::time_point> flush_due_;
  Status store_failed_;  // a flush that failed: Run stops with it
  uint64_t submits_since_start_ = 0;
};

// How long committed transactions may wait, durable, for SQLite's group commit (at most;
// sooner when the master has nothing else to do, is asked its status or maintains its store).
// 50 ms, not 5: a group then writes about a third of the WAL pages a transaction (pages that
// the transactions of a group share are written once), and one client end to end went 20%
// faster (docs/benchmarks.md, the tenth session).
inline constexpr std::chrono::milliseconds kFlushDelay{50};
// Requests a port is served per turn of the poll loop, and so the most submits one group
// commits. Without a bound, clients that always have a submit waiting kept the loop on the
// submit port: the replicas' acks went unread, the streams stood at their windows and
// heartbeats stopped until the load ended.
inline constexpr int kRequestsPerTurn = 64;

}  // namespace ferry

#endif  // FERRY_MASTER_MASTER_H_
