// A KvStore over another one, for tests of what the namespace does above
// the seam:
//   - run_twice: every body runs twice, the first run's writes discarded
//     as an abort would discard them, so a body with an effect outside its
//     transaction (kv_store.h forbids them) shows up as a wrong answer;
//   - session: the session_id() it reports, and LiveSessions() as the
//     test sets them, so that two namespaces over one store act as two
//     hosts of a shared volume (a RocksDB store serializes their
//     transactions: Run takes one writer at a time);
//   - a change feed the test delivers (Deliver), and a hook run after the
//     next transaction ends and before its Run returns (AfterNextRun).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

// What LiveSessions() answers; shared by the hosts of one test.
class FakeSessions {
 public:
  void Set(std::vector<uint64_t> live) {
    absl::MutexLock lock(&mu_);
    live_ = std::move(live);
  }
  std::vector<uint64_t> Get() {
    absl::MutexLock lock(&mu_);
    return live_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> live_;
};

class TestKvStore : public KvStore {
 public:
  struct Options {
    bool run_twice = false;
    uint64_t session = 0;
    FakeSessions* sessions = nullptr;  // LiveSessions() lists none without it
  };
  TestKvStore(std::shared_ptr<KvStore> inner, Options options)
      : inner_(std::move(inner)), options_(options) {}

  KvReader& Reader() override { return inner_->Reader(); }

  absl::Status Run(const std::function<absl::Status(KvTxn&)>& body) override {
    if (options_.run_twice) {
      bool ran = false;
      absl::Status first = inner_->Run([&](KvTxn& txn) -> absl::Status {
        if (absl::Status s = body(txn); !s.ok()) return s;
        ran = true;
        return absl::AbortedError("TestKvStore: the first run is thrown away");
      });
      // A body that failed fails the same way the second time: one run
      // is enough to say so.
      if (!ran) return first;
      std::function<void()> between;
      {
        absl::MutexLock lock(&mu_);
        between = std::move(between_runs_);
        between_runs_ = nullptr;
      }
      if (between) between();
    }
    absl::Status committed = inner_->Run(body);
    std::function<void()> after;
    {
      absl::MutexLock lock(&mu_);
      after = std::move(after_commit_);
      after_commit_ = nullptr;
    }
    if (after) after();
    return committed;
  }

  // `fn` runs once, when the next Run's transaction has ended (committed
  // or not) and before Run returns: a test holds a finished operation
  // there while others run, as a slow thread would be held.
  void AfterNextRun(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    after_commit_ = std::move(fn);
  }

  // A change feed the test writes (Deliver), as a shared engine's watcher
  // calls with another host's changes.
  absl::StatusOr<std::unique_ptr<Watch>> WatchChanges(ChangeFn fn) override {
    struct TestWatch : Watch {
      explicit TestWatch(TestKvStore& store) : store(store) {}
      ~TestWatch() override {
        absl::MutexLock lock(&store.mu_);
        store.watch_fn_ = nullptr;
      }
      TestKvStore& store;
    };
    absl::MutexLock lock(&mu_);
    watch_fn_ = std::move(fn);
    return std::unique_ptr<Watch>(std::make_unique<TestWatch>(*this));
  }
  void Deliver(uint64_t session, const std::vector<Change>& changes) {
    ChangeFn fn;
    {
      absl::MutexLock lock(&mu_);
      fn = watch_fn_;
    }
    if (fn) fn(session, changes);
  }

  // With run_twice: `fn` runs once, between the two runs of the next body,
  // outside any transaction: another host's commit that the second run
  // then sees, as a conflict's retry would.
  void BetweenRunsOfNextBody(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    between_runs_ = std::move(fn);
  }

  absl::Status Sync() override { return inner_->Sync(); }
  absl::StatusOr<int64_t> ReadCounter(std::string_view counter) override {
    return inner_->ReadCounter(counter);
  }
  absl::StatusOr<uint64_t> Allocate(std::string_view sequence, uint64_t first_ever,
                                    uint64_t count) override {
    return inner_->Allocate(sequence, first_ever, count);
  }
  absl::Status CreateCheckpoint(const std::string& dir) override {
    return inner_->CreateCheckpoint(dir);
  }
  absl::StatusOr<EngineStats> GetEngineStats() override { return inner_->GetEngineStats(); }

  uint64_t session_id() const override { return options_.session; }
  // Leads until told otherwise, as a store only one host opens does.
  bool IsLeader() override { return leader_.load(); }
  void SetLeader(bool leader) { leader_ = leader; }
  absl::StatusOr<std::vector<uint64_t>> LiveSessions() override {
    if (options_.sessions == nullptr) return std::vector<uint64_t>{};
    return options_.sessions->Get();
  }

 private:
  std::shared_ptr<KvStore> inner_;
  const Options options_;
  absl::Mutex mu_;
  std::function<void()> between_runs_ ABSL_GUARDED_BY(mu_);
  std::function<void()> after_commit_ ABSL_GUARDED_BY(mu_);
  ChangeFn watch_fn_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> leader_{true};
};

}  // namespace cairn
