#include "backend/base/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace cairn {

absl::Status RunInParallel(size_t count, int parallel,
                           const std::function<absl::Status(size_t)>& work,
                           const std::function<void(size_t)>& done, size_t* failed_index) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status first_error;
  auto worker = [&] {
    for (size_t i; !failed && (i = next++) < count;) {
      absl::Status s = work(i);
      if (s.ok()) {
        if (done) done(i);
        continue;
      }
      absl::MutexLock lock(&mu);
      if (first_error.ok()) {
        first_error = s;
        if (failed_index != nullptr) *failed_index = i;
      }
      failed = true;
    }
  };
  std::vector<std::thread> workers;
  const size_t threads = std::min<size_t>(std::max(parallel, 1), count);
  for (size_t t = 1; t < threads; ++t) workers.emplace_back(worker);
  worker();
  for (std::thread& t : workers) t.join();
  return first_error;
}

}  // namespace cairn
