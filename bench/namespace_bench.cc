// The namespace's own cost, without FUSE: creates, lookups, renames and
// unlinks (each unlink freeing its inode in its commit, as the daemon's
// do) of COUNT files in one directory of a new namespace in DIR. Prints,
// per phase, the process's CPU microseconds per operation (steadier than
// wall time on a shared machine) and operations per second. Compares key-
// value engines and changes to the namespace logic (docs/ARCHITECTURE.md,
// "The key-value seam").
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "backend/namespace/namespace_store.h"

namespace {

double Seconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn;
  if (argc != 3) {
    fprintf(stderr, "usage: cairn-namespace-bench DIR COUNT\n");
    return 2;
  }
  const int count = atoi(argv[2]);
  NamespaceOptions options;
  options.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> store = NamespaceStore::Open(argv[1], options);
  if (!store.ok()) {
    fprintf(stderr, "namespace_bench: %s\n", store.status().ToString().c_str());
    return 1;
  }
  NamespaceStore& ns = **store;
  const Caller caller;
  NewNode directory, file;
  directory.mode = S_IFDIR | 0755;
  file.mode = S_IFREG | 0644;
  absl::StatusOr<InodeAttr> dir = ns.MakeNode(kRootInode, "d", directory, caller);
  if (!dir.ok()) return 1;
  auto phase = [&](const char* name, const std::function<absl::Status(int)>& op) {
    const double cpu = Seconds(CLOCK_PROCESS_CPUTIME_ID), wall = Seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < count; ++i) {
      if (absl::Status s = op(i); !s.ok()) {
        fprintf(stderr, "namespace_bench: %s %d: %s\n", name, i, s.ToString().c_str());
        exit(1);
      }
    }
    printf("%s cpu_us %.2f ops %.0f ", name,
           (Seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu) * 1e6 / count,
           count / (Seconds(CLOCK_MONOTONIC) - wall));
  };
  auto name = [](const char* prefix, int i) { return prefix + std::to_string(i); };
  phase("create", [&](int i) {
    return ns.MakeNode(dir->ino, name("f", i), file, caller).status();
  });
  phase("lookup", [&](int i) { return ns.Lookup(dir->ino, name("f", i)).status(); });
  phase("rename", [&](int i) {
    return ns.Rename(dir->ino, name("f", i), dir->ino, name("g", i), RenameMode::kReplace)
        .status();
  });
  phase("unlink", [&](int i) {
    return ns.Unlink(dir->ino, name("g", i), [](InodeId) { return true; }).status();
  });
  printf("\n");
  return 0;
}
