// Metadata throughput in one directory: creates, stats, renames and unlinks
// N files, timing each phase. Prints "create OPS stat OPS rename OPS unlink
// OPS" (operations per second) for bench/run.sh. With BYTES, each file is
// created holding that many bytes (bench/memory.sh: small files, not empty).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace {

double OpsPerSecond(int count, const std::function<bool(int)>& op) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    if (!op(i)) {
      fprintf(stderr, "meta_bench: operation %d failed: %s\n", i, strerror(errno));
      exit(1);
    }
  }
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return count / took.count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: cairn-meta-bench DIR COUNT [BYTES]\n");
    return 2;
  }
  std::string dir = argv[1];
  int count = atoi(argv[2]);
  const std::string content(argc == 4 ? atoi(argv[3]) : 0, 'm');
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "meta_bench: mkdir %s: %s\n", dir.c_str(), strerror(errno));
    return 1;
  }
  auto name = [&](const char* prefix, int i) { return dir + "/" + prefix + std::to_string(i); };
  double create = OpsPerSecond(count, [&](int i) {
    int fd = open(name("f", i).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return false;
    bool written = content.empty() ||
                   write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    return close(fd) == 0 && written;
  });
  double stat_rate = OpsPerSecond(count, [&](int i) {
    struct stat st;
    return stat(name("f", i).c_str(), &st) == 0;
  });
  double rename_rate = OpsPerSecond(count, [&](int i) {
    return rename(name("f", i).c_str(), name("g", i).c_str()) == 0;
  });
  double unlink_rate = OpsPerSecond(count, [&](int i) { return unlink(name("g", i).c_str()) == 0; });
  rmdir(dir.c_str());
  printf("create %.0f stat %.0f rename %.0f unlink %.0f\n", create, stat_rate, rename_rate,
         unlink_rate);
  return 0;
}
