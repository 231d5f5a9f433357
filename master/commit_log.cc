#include "master/commit_log.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace ferry {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The CPU time the calling thread has used.
int64_t ThreadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

uint32_t RecordCrc(uint64_t number, std::string_view payload) {
  char bytes[sizeof number];
  std::memcpy(bytes, &number, sizeof number);
  return Crc32(payload, Crc32(std::string_view(bytes, sizeof bytes)));
}

}  // namespace

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

StatusOr<std::unique_ptr<CommitLog>> CommitLog::Open(const std::string& path,
                                                     std::vector<Record>* records,
                                                     std::chrono::microseconds poll_before_sleep) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError(Errno("cannot open commit log " + path));
  std::unique_ptr<CommitLog> log(new CommitLog(fd, path, poll_before_sleep));
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::IoError(Errno("commit log " + path));
  std::string file(static_cast<size_t>(st.st_size), '\0');
  if (!file.empty() && pread(fd, file.data(), file.size(), 0) != st.st_size) {
    return Status::IoError(Errno("cannot read commit log " + path));
  }
  if (file.size() < kFileBytes) {
    // Written out in full once: an fsync after rewriting blocks that exist is cheaper than one
    // after growing the file (here 105-118 us against 182-187 us for a page).
    const std::string zeros(1 << 20, '\0');
    for (size_t at = file.size(); at < kFileBytes; at += zeros.size()) {
      const size_t n = std::min(zeros.size(), kFileBytes - at);
      if (pwrite(fd, zeros.data(), n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) {
        return Status::IoError(Errno("cannot preallocate commit log " + path));
      }
    }
    if (fsync(fd) != 0) return Status::IoError(Errno("commit log " + path));
  }
  records->clear();
  size_t at = 0;
  while (at + kHeaderBytes <= file.size()) {
    const uint32_t length = Load32(&file[at]);
    const uint32_t crc = Load32(&file[at + 4]);
    const uint64_t number = Load64(&file[at + 8]);
    if (length == 0 || at + kHeaderBytes + length > file.size()) break;
    const std::string_view payload(&file[at + kHeaderBytes], length);
    if (RecordCrc(number, payload) != crc) break;
    if (!records->empty() && number != records->back().number + 1) break;
    records->push_back({number, std::string(payload)});
    at += kHeaderBytes + length;
  }
  log->end_ = at;
  return log;
}

CommitLog::CommitLog(int fd, std::string path, std::chrono::microseconds poll_before_sleep)
    : fd_(fd),
      path_(std::move(path)),
      poll_before_sleep_(poll_before_sleep),
      syncer_([this] { SyncLoop(); }) {}

CommitLog::~CommitLog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  syncer_.join();
  close(fd_);
}

Status CommitLog::Append(uint64_t first_number, const std::vector<std::string>& payloads) {
  if (payloads.empty()) return Status::Ok();
  size_t bytes = 0;
  for (const std::string& payload : payloads) bytes += RecordBytes(payload.size());
  if (!HasRoomFor(bytes)) return Status::Internal("commit log " + path_ + " is full");
  std::string records;
  records.reserve(bytes);
  uint64_t number = first_number;
  for (const std::string& payload : payloads) {
    char header[kHeaderBytes];
    const uint32_t length = static_cast<uint32_t>(payload.size());
    const uint32_t crc = RecordCrc(number, payload);
    std::memcpy(&header[0], &length, sizeof length);
    std::memcpy(&header[4], &crc, sizeof crc);
    std::memcpy(&header[8], &number, sizeof number);
    records.append(header, sizeof header);
    records.append(payload);
    ++number;
  }
  if (pwrite(fd_, records.data(), records.size(), static_cast<off_t>(end_)) !=
      static_cast<ssize_t>(records.size())) {
    return Status::IoError(Errno("cannot write commit log " + path_));
  }
  // Starts writing the records to the disk now, from this thread: the fsync thread begins only
  // once it has woken (30-70 us here when both CPUs are busy), and its fdatasync then finds the
  // write under way or done and mostly waits for the disk's cache flush. Only a head start:
  // durability is still the fdatasync's, which also reports any error of this write.
  (void)sync_file_range(fd_, static_cast<off_t>(end_), static_cast<off_t>(records.size()),
                        SYNC_FILE_RANGE_WRITE);
  end_ += records.size();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    appended_ += payloads.size();
  }
  changed_.notify_all();
  return Status::Ok();
}

Status CommitLog::WaitSynced() {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t wanted = appended_;
  if (synced_ < wanted) {
    lock.unlock();
    const int64_t cpu_start = ThreadCpuMicros();
    // A failed fsync also moves synced_, so polling ends on an error too.
    const auto until = std::chrono::steady_clock::now() + poll_before_sleep_;
    while (synced_.load(std::memory_order_acquire) < wanted &&
           std::chrono::steady_clock::now() < until) {
      sched_yield();
    }
    const int64_t polled_us = ThreadCpuMicros() - cpu_start;
    lock.lock();
    poll_cpu_us_ += static_cast<uint64_t>(std::max<int64_t>(polled_us, 0));
    if (synced_ < wanted) ++sleeping_waits_;
  }
  changed_.wait(lock, [&] { return synced_ >= wanted || !error_.ok(); });
  return error_;
}

void CommitLog::SyncLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stop_ || synced_ < appended_; });
    if (stop_) return;
    const uint64_t target = appended_;  // everything written before this fsync starts
    lock.unlock();
    const bool ok = fdatasync(fd_) == 0;
    const std::string error = ok ? "" : Errno("cannot fsync commit log " + path_);
    lock.lock();
    if (!ok && error_.ok()) error_ = Status::IoError(error);
    synced_ = target;
    ++syncs_;
    changed_.notify_all();
  }
}

}  // namespace ferry
