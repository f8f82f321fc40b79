// A bounded parallel-for for work that waits on I/O (remote requests, disk
// reads): blob moves, replica copies, restore fetches.
#pragma once

#include <cstddef>
#include <functional>

#include "absl/status/status.h"

namespace cairn {

// Runs work(i) for every i in [0, count), up to `parallel` at a time, in
// order of start (the calling thread is one of the workers). After the first
// failure starts no more and returns it, with its index in `*failed_index`.
// `done(i)` follows each success of work(i), from the thread that ran it.
absl::Status RunInParallel(size_t count, int parallel,
                           const std::function<absl::Status(size_t)>& work,
                           const std::function<void(size_t)>& done = nullptr,
                           size_t* failed_index = nullptr);

}  // namespace cairn
