// Single-core throughput of the data-path codecs: Reed-Solomon encode and
// reconstruct (ISA-L, ec:4+2 and ec:2+1 on a 4 MiB blob), CRC32C (ISA-L) and
// LZ4 compress/decompress of compressible text and of random bytes, whose
// "ratio" counter is uncompressed / compressed size.
//
//   bash packaging/build.sh        # builds it as build/bench/cairn-codec-bench
//   taskset -c 1 build/bench/cairn-codec-bench --benchmark_min_time=0.5
#include <lz4.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/base/crc32c.h"
#include "backend/blob/erasure_code.h"
#include "benchmark/benchmark.h"

namespace {

constexpr size_t kBlobBytes = 4 << 20;

std::string RandomBytes(size_t size) {
  std::mt19937_64 rng(42);
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  return data;
}

// Log-like lines of words and numbers: compressible, but not trivially so.
std::string TextBytes(size_t size) {
  static const char* const kWords[] = {
      "the",    "block",  "write",   "read",  "inode",   "shard",   "volume", "disk",
      "commit", "flush",  "journal", "cache", "extent",  "offset",  "length", "status",
      "ok",     "failed", "retry",   "after", "timeout", "replica", "parity", "rebuild",
      "client", "server", "request", "reply", "queue",   "latency", "bytes",  "of"};
  std::mt19937 rng(42);
  std::string text;
  text.reserve(size + 200);
  while (text.size() < size) {
    const int words = 5 + rng() % 8;
    for (int i = 0; i < words; ++i) {
      text += kWords[rng() % std::size(kWords)];
      text += ' ';
    }
    text += std::to_string(rng() % 100000);
    text += '\n';
  }
  text.resize(size);
  return text;
}

const std::string& RandomBlob() {
  static const std::string blob = RandomBytes(kBlobBytes);
  return blob;
}

const std::string& TextBlob() {
  static const std::string blob = TextBytes(kBlobBytes);
  return blob;
}

cairn::ShardCodec Codec(const char* scheme) {
  auto redundancy = cairn::ParseRedundancy(scheme);
  if (!redundancy.ok()) {
    fprintf(stderr, "codec_bench: %s\n", std::string(redundancy.status().message()).c_str());
    std::exit(1);
  }
  return cairn::ShardCodec(*redundancy);
}

void BM_Encode(benchmark::State& state, const char* scheme) {
  const cairn::ShardCodec codec = Codec(scheme);
  const std::string& payload = RandomBlob();
  for (auto _ : state) {
    benchmark::DoNotOptimize(codec.Encode(payload));
  }
  state.SetBytesProcessed(state.iterations() * payload.size());
}

// Loses data shards 0..lost-1. Reconstruct only reads the present shards and
// overwrites the missing ones, so one shard vector serves every iteration.
void BM_Reconstruct(benchmark::State& state, const char* scheme, int lost) {
  const cairn::ShardCodec codec = Codec(scheme);
  const std::string& payload = RandomBlob();
  const std::vector<std::string> encoded = codec.Encode(payload);
  std::vector<std::string> shards = encoded;
  std::vector<bool> present(shards.size(), true);
  for (int i = 0; i < lost; ++i) {
    present[i] = false;
    shards[i].clear();
  }
  for (auto _ : state) {
    if (!codec.Reconstruct(shards, present).ok()) {
      state.SkipWithError("Reconstruct failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  if (shards != encoded) state.SkipWithError("Reconstruct rebuilt the wrong bytes");
  state.SetBytesProcessed(state.iterations() * payload.size());
}

void BM_Crc32c(benchmark::State& state) {
  const std::string data = RandomBytes(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(cairn::Crc32c(data));
  }
  state.SetBytesProcessed(state.iterations() * data.size());
}

void BM_Lz4Compress(benchmark::State& state, const std::string& input) {
  std::string output(LZ4_compressBound(input.size()), '\0');
  int compressed = 0;
  for (auto _ : state) {
    compressed = LZ4_compress_default(input.data(), output.data(), input.size(), output.size());
    benchmark::DoNotOptimize(compressed);
  }
  state.SetBytesProcessed(state.iterations() * input.size());
  state.counters["ratio"] = static_cast<double>(input.size()) / compressed;
}

void BM_Lz4Decompress(benchmark::State& state, const std::string& input) {
  std::string compressed(LZ4_compressBound(input.size()), '\0');
  compressed.resize(
      LZ4_compress_default(input.data(), compressed.data(), input.size(), compressed.size()));
  std::string output(input.size(), '\0');
  for (auto _ : state) {
    const int size = LZ4_decompress_safe(compressed.data(), output.data(), compressed.size(),
                                         output.size());
    if (size != static_cast<int>(input.size())) {
      state.SkipWithError("LZ4_decompress_safe failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * input.size());
  state.counters["ratio"] = static_cast<double>(input.size()) / compressed.size();
}

BENCHMARK_CAPTURE(BM_Encode, ec4_2, "ec:4+2");
BENCHMARK_CAPTURE(BM_Encode, ec2_1, "ec:2+1");
BENCHMARK_CAPTURE(BM_Reconstruct, ec4_2_lost1, "ec:4+2", 1);
BENCHMARK_CAPTURE(BM_Reconstruct, ec4_2_lost2, "ec:4+2", 2);
BENCHMARK_CAPTURE(BM_Reconstruct, ec2_1_lost1, "ec:2+1", 1);
BENCHMARK(BM_Crc32c)->Arg(4 << 10)->Arg(64 << 10)->Arg(4 << 20);
BENCHMARK_CAPTURE(BM_Lz4Compress, text, TextBlob());
BENCHMARK_CAPTURE(BM_Lz4Compress, random, RandomBlob());
BENCHMARK_CAPTURE(BM_Lz4Decompress, text, TextBlob());
BENCHMARK_CAPTURE(BM_Lz4Decompress, random, RandomBlob());

}  // namespace

BENCHMARK_MAIN();
