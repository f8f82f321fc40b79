// S3Handler over a whole volume in memory (MemEnv): what S3 clients see,
// what the tree then holds, and what survives a power cut.
#include "frontend/s3_handler.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "backend/base/fs_error.h"
#include "backend/services/blob_gc.h"
#include "backend/volume/volume.h"
#include "frontend/s3_error.h"
#include "fs/mounted_volume.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/mem_env.h"

namespace cairn::frontend {
namespace {

constexpr char kVolumeDir[] = "/vol";

class StringBody final : public BodyReader {
 public:
  // After `fail_after` bytes the connection is lost, once `before_failing`
  // has run.
  explicit StringBody(std::string data, size_t fail_after = SIZE_MAX,
                      std::function<void()> before_failing = nullptr)
      : data_(std::move(data)), fail_after_(fail_after),
        before_failing_(std::move(before_failing)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    if (at_ >= fail_after_) {
      if (before_failing_) before_failing_();
      return S3Error(S3ErrorCode::kIncompleteBody, "connection lost");
    }
    size_t n = std::min({size, data_.size() - at_, fail_after_ - at_});
    std::copy_n(data_.data() + at_, n, buffer);
    at_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t at_ = 0;
  size_t fail_after_;
  std::function<void()> before_failing_;
};

std::string Md5Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_md5(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), size));
}

class S3HandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    io_ = Io{&env_, &clock_, &buckets_};
    env_.SetCapacity(256 << 20);
    absl::StatusOr<VolumeConfig> config = FormatVolume(kVolumeDir, FormatOptions{}, io_);
    ASSERT_TRUE(config.ok()) << config.status();
    ASSERT_NO_FATAL_FAILURE(Mount());
    // The buckets: one for root's keys and one owned by uid 1000. Only
    // root may make buckets: the volume's top directory is root's, 0755.
    ASSERT_EQ(Call("PUT", "media", "").status, 200);
    EXPECT_EQ(Call("PUT", "alice-files", "", "", {}, Alice()).code, "AccessDenied");
    ASSERT_EQ(Call("PUT", "alice-files", "").status, 200);
    SetAttrRequest chown;
    chown.uid = 1000;
    chown.gid = 1000;
    ASSERT_TRUE(fs().SetAttr(Path("alice-files")->ino, chown).ok());
  }

  void TearDown() override {
    if (mounted_) {
      handler_.reset();
      absl::Status closed = mounted_->Close();
      EXPECT_TRUE(closed.ok()) << closed;
    }
    handler_.reset();
    mounted_.reset();
    volume_.reset();
  }

  void Mount() {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(kVolumeDir, "", &env_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(kVolumeDir, *config, io_);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    MountedVolume::Options options;
    options.background_flush = false;
    absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
        MountedVolume::Open(*volume_, options);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    mounted_ = std::move(*mounted);
    S3Handler::Options handler_options;
    handler_options.forget_name = [this](InodeId parent, const std::string& name) {
      forgotten_.emplace_back(parent, name);
    };
    handler_ = std::make_unique<S3Handler>(mounted_->fs(), handler_options);
  }

  // The power goes while nothing runs; then the volume is mounted again.
  void CutThePowerAndMount() {
    handler_.reset();
    env_.SetFilesystemActive(false);
    mounted_.reset();
    volume_.reset();
    env_.SetFilesystemActive(true);
    env_.DropUnsyncedData();
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  static S3Key Root() { return S3Key{"AKROOT", "secret", 0, 0, false, {}}; }
  static S3Key Alice() { return S3Key{"AKALICE", "secret", 1000, 1000, false, {}}; }

  struct Answer {
    int status = 0;
    std::string code;  // the S3 error's name, if an error
    std::map<std::string, std::string> headers;
    std::string body;
  };

  Answer Call(const std::string& method, const std::string& bucket, const std::string& key,
              const std::string& data = "", std::map<std::string, std::string> headers = {},
              const S3Key& who = Root(), std::map<std::string, std::string> query = {},
              BodyReader* body = nullptr) {
    StringBody string_body(data);
    S3Request request;
    request.method = method;
    request.bucket = bucket;
    request.key = key;
    request.headers = std::move(headers);
    request.query = std::move(query);
    request.key_owner = who;
    request.body = body != nullptr ? body : &string_body;
    absl::StatusOr<S3Response> response = handler_->Handle(request);
    Answer answer;
    if (!response.ok()) {
      S3ErrorCode code = S3ErrorCodeOf(response.status());
      answer.status = S3ErrorHttpStatus(code);
      answer.code = std::string(S3ErrorName(code));
      answer.body = std::string(response.status().message());
      return answer;
    }
    answer.status = response->status;
    for (const auto& [name, value] : response->headers) answer.headers[name] = value;
    answer.body = response->body;
    if (response->stream && method != "HEAD") {
      for (;;) {
        absl::StatusOr<std::string> chunk = response->stream();
        EXPECT_TRUE(chunk.ok()) << chunk.status();
        if (!chunk.ok() || chunk->empty()) break;
        answer.body += *chunk;
      }
      EXPECT_EQ(answer.body.size(), response->stream_length);
    }
    if (response->stream) answer.headers["content-length"] = std::to_string(response->stream_length);
    return answer;
  }

  // Every key of a listing, following continuation tokens.
  std::vector<std::string> ListAll(const std::string& bucket, std::map<std::string, std::string> query,
                                   std::vector<std::string>* prefixes = nullptr, int* pages = nullptr) {
    std::vector<std::string> keys;
    query["list-type"] = "2";
    for (int page = 0; page < 1000; ++page) {
      Answer answer = Call("GET", bucket, "", "", {}, Root(), query);
      EXPECT_EQ(answer.status, 200) << answer.body;
      if (pages) ++*pages;
      for (const std::string& key : Between(answer.body, "<Key>", "</Key>")) keys.push_back(key);
      if (prefixes) {
        for (const std::string& p : Between(answer.body, "<CommonPrefixes><Prefix>", "</Prefix>")) {
          prefixes->push_back(p);
        }
      }
      std::vector<std::string> next =
          Between(answer.body, "<NextContinuationToken>", "</NextContinuationToken>");
      if (next.empty()) {
        EXPECT_NE(answer.body.find("<IsTruncated>false</IsTruncated>"), std::string::npos);
        break;
      }
      query["continuation-token"] = next[0];
    }
    return keys;
  }

  // Every item of a listing (keys and common prefixes, merged in S3's
  // order), following the markers of `api`: "v2" (continuation tokens),
  // "v1" (NextMarker) or "versions" (NextKeyMarker). `pages`: how many
  // pages it took.
  std::vector<std::string> ListItems(const std::string& bucket,
                                     std::map<std::string, std::string> query,
                                     const std::string& api = "v2", int* pages = nullptr) {
    std::vector<std::string> items;
    if (api == "v2") query["list-type"] = "2";
    if (api == "versions") query["versions"] = "";
    for (int page = 0; page < 2000; ++page) {
      Answer answer = Call("GET", bucket, "", "", {}, Root(), query);
      EXPECT_EQ(answer.status, 200) << answer.body;
      if (answer.status != 200) break;
      if (pages) ++*pages;
      std::vector<std::string> found = Between(answer.body, "<Key>", "</Key>");
      for (const std::string& p : Between(answer.body, "<CommonPrefixes><Prefix>", "</Prefix>")) {
        found.push_back(p);
      }
      // A page is a run of the whole listing: in order once merged.
      std::sort(found.begin(), found.end());
      items.insert(items.end(), found.begin(), found.end());
      const char* next_tag = api == "v2"   ? "NextContinuationToken"
                             : api == "v1" ? "NextMarker"
                                           : "NextKeyMarker";
      std::vector<std::string> next =
          Between(answer.body, absl::StrCat("<", next_tag, ">"), absl::StrCat("</", next_tag, ">"));
      if (next.empty()) {
        EXPECT_NE(answer.body.find("<IsTruncated>false</IsTruncated>"), std::string::npos);
        break;
      }
      EXPECT_NE(answer.body.find("<IsTruncated>true</IsTruncated>"), std::string::npos);
      query[api == "v2" ? "continuation-token" : api == "v1" ? "marker" : "key-marker"] =
          absl::StrReplaceAll(next[0], {{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}});
    }
    return items;
  }

  // What S3 lists for `keys`: those with the prefix after the marker, those
  // holding the delimiter past the prefix rolled up into common prefixes
  // (each once, and only when after the marker), merged in bytewise order.
  static std::vector<std::string> Model(const std::set<std::string>& keys,
                                        const std::string& prefix, const std::string& delimiter,
                                        const std::string& after) {
    std::set<std::string> items;
    for (const std::string& key : keys) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      size_t at = delimiter.empty() ? std::string::npos : key.find(delimiter, prefix.size());
      std::string item = at == std::string::npos ? key : key.substr(0, at + delimiter.size());
      if (item > after) items.insert(item);
    }
    return std::vector<std::string>(items.begin(), items.end());
  }

  static std::vector<std::string> Between(const std::string& text, const std::string& open,
                                          const std::string& close) {
    std::vector<std::string> found;
    for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at)) {
      size_t end = text.find(close, at + open.size());
      if (end == std::string::npos) break;
      found.push_back(text.substr(at + open.size(), end - at - open.size()));
      at = end;
    }
    return found;
  }

  FileSystem& fs() { return mounted_->fs(); }

  // The inode at "bucket/a/b", through the tree (as the mount sees it).
  absl::StatusOr<InodeAttr> Path(const std::string& path) {
    InodeId dir = kRootInode;
    absl::StatusOr<InodeAttr> attr = fs().GetAttr(kRootInode);
    for (absl::string_view part : absl::StrSplit(path, '/')) {
      attr = fs().Find(dir, std::string(part));
      if (!attr.ok()) return attr;
      dir = attr->ino;
    }
    return attr;
  }

  std::string ReadFile(InodeId ino) {
    absl::StatusOr<InodeAttr> attr = fs().GetAttr(ino);
    EXPECT_TRUE(attr.ok());
    absl::StatusOr<std::string> data = fs().Read(ino, 0, attr.ok() ? attr->size : 0);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.value_or("");
  }

  uint64_t Inodes() {
    absl::StatusOr<NamespaceStats> stats = volume_->ns().Stats();
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? stats->inode_count : 0;
  }

  // The blobs in the store, and those the namespace has records of.
  std::set<BlobId> StoredBlobs() {
    absl::StatusOr<std::vector<BlobId>> ids = volume_->blobs().ListIds(0);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? std::set<BlobId>(ids->begin(), ids->end()) : std::set<BlobId>();
  }
  size_t BlobRecords() {
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> records =
        volume_->ns().ListBlobs(0, 100000);
    EXPECT_TRUE(records.ok()) << records.status();
    return records.ok() ? records->size() : 0;
  }
  // Garbage collection once the grace period of every unreferenced blob
  // has passed.
  void CollectGarbage() {
    clock_.Advance(absl::Seconds(volume_->config().gc_grace_seconds + 1));
    BlobCollector::Options options;
    options.background = false;
    options.clock = &clock_;
    BlobCollector collector(volume_->ns(), volume_->blobs(), options);
    absl::Status collected = collector.CollectNow();
    EXPECT_TRUE(collected.ok()) << collected;
  }

  FakeClock clock_;
  MemEnv env_{&clock_};
  FakeObjectStoreFactory buckets_;
  Io io_;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<MountedVolume> mounted_;
  std::unique_ptr<S3Handler> handler_;
  std::vector<std::pair<InodeId, std::string>> forgotten_;
};

TEST_F(S3HandlerTest, APutObjectIsAFileOfTheTreeWithItsMd5AsETag) {
  std::string data(3 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4093) data[i] = static_cast<char>(i);
  Answer put = Call("PUT", "media", "photos/2026/beach.jpg", data,
                    {{"content-type", "image/jpeg"}, {"x-amz-meta-camera", "x100"},
                     {"cache-control", "max-age=3600"}, {"content-disposition", "inline"}});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.headers["ETag"], absl::StrCat("\"", Md5Hex(data), "\""));

  absl::StatusOr<InodeAttr> file = Path("media/photos/2026/beach.jpg");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(S_ISREG(file->mode));
  EXPECT_EQ(file->size, data.size());
  EXPECT_EQ(ReadFile(file->ino), data);
  EXPECT_TRUE(S_ISDIR(Path("media/photos")->mode));
  // The kernel is told to forget the names S3 made or replaced.
  EXPECT_THAT(forgotten_, ::testing::Contains(std::make_pair(Path("media/photos/2026")->ino,
                                                             std::string("beach.jpg"))));

  Answer get = Call("GET", "media", "photos/2026/beach.jpg");
  ASSERT_EQ(get.status, 200) << get.body;
  EXPECT_EQ(get.body, data);
  EXPECT_EQ(get.headers["ETag"], put.headers["ETag"]);
  EXPECT_EQ(get.headers["Content-Type"], "image/jpeg");
  EXPECT_EQ(get.headers["x-amz-meta-camera"], "x100");
  EXPECT_EQ(get.headers["cache-control"], "max-age=3600");
  EXPECT_EQ(get.headers["content-disposition"], "inline");
  Answer head = Call("HEAD", "media", "photos/2026/beach.jpg");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-length"], std::to_string(data.size()));
  EXPECT_TRUE(head.body.empty());

  Answer range = Call("GET", "media", "photos/2026/beach.jpg", "", {{"range", "bytes=100-199"}});
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.body, data.substr(100, 100));
  EXPECT_EQ(range.headers["Content-Range"], absl::StrCat("bytes 100-199/", data.size()));
  // An object of one PUT is its own part 1.
  EXPECT_EQ(Call("GET", "media", "photos/2026/beach.jpg", "", {}, Root(), {{"partNumber", "1"}})
                .body.size(),
            data.size());
  EXPECT_EQ(Call("GET", "media", "photos/2026/beach.jpg", "", {}, Root(), {{"partNumber", "2"}})
                .code,
            "InvalidPart");
  Answer tail = Call("GET", "media", "photos/2026/beach.jpg", "", {{"range", "bytes=-10"}});
  EXPECT_EQ(tail.body, data.substr(data.size() - 10));
  EXPECT_EQ(Call("GET", "media", "photos/2026/beach.jpg", "",
                 {{"range", absl::StrCat("bytes=", data.size(), "-")}}).code,
            "InvalidRange");
}

TEST_F(S3HandlerTest, AnAcknowledgedPutSurvivesAPowerCut) {
  std::string data(5 << 20, 'q');
  data[12345] = 'z';
  ASSERT_EQ(Call("PUT", "media", "big.bin", data).status, 200);
  ASSERT_EQ(Call("PUT", "media", "small.txt", "hello").status, 200);
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  Answer big = Call("GET", "media", "big.bin");
  ASSERT_EQ(big.status, 200) << big.body;
  EXPECT_TRUE(big.body == data) << "the acknowledged object came back different";
  EXPECT_EQ(big.headers["ETag"], absl::StrCat("\"", Md5Hex(data), "\""));
  EXPECT_EQ(Call("GET", "media", "small.txt").body, "hello");
}

TEST_F(S3HandlerTest, AnInterruptedPutLeavesTheOldObjectAndNoFile) {
  ASSERT_EQ(Call("PUT", "media", "doc.txt", "version one").status, 200);
  const uint64_t inodes = Inodes();
  StringBody cut(std::string(2 << 20, 'n'), 1 << 20);
  Answer put = Call("PUT", "media", "doc.txt", "", {}, Root(), {}, &cut);
  EXPECT_EQ(put.code, "IncompleteBody");
  EXPECT_EQ(Call("GET", "media", "doc.txt").body, "version one");
  EXPECT_EQ(Inodes(), inodes) << "the unfinished upload's file was not freed";

  // A body shorter than announced is refused too.
  Answer short_body = Call("PUT", "media", "doc.txt", "abc", {{"content-length", "10"}});
  EXPECT_EQ(short_body.code, "IncompleteBody");
  Answer bad_md5 = Call("PUT", "media", "doc.txt", "version two",
                        {{"content-md5", absl::Base64Escape(std::string(16, 'x'))}});
  EXPECT_EQ(bad_md5.code, "BadDigest");
  EXPECT_EQ(Call("GET", "media", "doc.txt").body, "version one");
  EXPECT_EQ(Inodes(), inodes);
}

TEST_F(S3HandlerTest, APutCutByAPowerLossBeforeItsCommitLeavesNothing) {
  ASSERT_EQ(Call("PUT", "media", "doc.txt", "version one").status, 200);
  const uint64_t inodes = Inodes();
  const std::set<BlobId> blobs = StoredBlobs();
  // What a PUT does before its commit: a nameless file holding the body in
  // blobs, here with the namespace synced too (the worst case).
  absl::StatusOr<InodeAttr> parent = Path("media");
  ASSERT_TRUE(parent.ok());
  absl::StatusOr<InodeAttr> file = fs().CreateUnnamed(parent->ino, 0644, Caller{0, 0});
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::unique_ptr<BlobStreamWriter>> writer = fs().StreamInto(file->ino);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append(std::string(9 << 20, 'v')).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  ASSERT_TRUE(fs().FsyncDir(parent->ino).ok());
  EXPECT_EQ(StoredBlobs().size(), blobs.size() + 3);
  writer->reset();
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_EQ(Call("GET", "media", "doc.txt").body, "version one");
  EXPECT_EQ(Inodes(), inodes) << "the nameless file outlived the crash";
  // Its blobs went to the collector with it.
  CollectGarbage();
  EXPECT_EQ(StoredBlobs(), blobs);
}

TEST_F(S3HandlerTest, APutWritesItsBodyToTheDisksOnceAndNothingToTheJournal) {
  std::string data((10 << 20) + 12345, '\0');
  std::mt19937 random(7);
  for (char& c : data) c = static_cast<char>(random());
  const uint64_t written_before = env_.bytes_written();
  const FileDataCache::Stats before = mounted_->cache().GetStats();
  Answer put = Call("PUT", "media", "big.bin", data);
  ASSERT_EQ(put.status, 200) << put.body;
  const FileDataCache::Stats after = mounted_->cache().GetStats();
  // Every byte went into blobs as it came (3 of them), none into the
  // journal or the dirty memory; through the write cache the body was
  // written twice, to the journal and then to blobs.
  EXPECT_EQ(after.streamed_bytes - before.streamed_bytes, data.size());
  EXPECT_EQ(after.blobs_written - before.blobs_written, 3u);
  EXPECT_EQ(after.journal_bytes, before.journal_bytes);
  EXPECT_EQ(after.dirty_bytes, 0u);
  const uint64_t written = env_.bytes_written() - written_before;
  EXPECT_GE(written, data.size());
  EXPECT_LT(written, data.size() + (1 << 20)) << "the body was written more than once";
  EXPECT_EQ(put.headers["ETag"], absl::StrCat("\"", Md5Hex(data), "\""));
  EXPECT_TRUE(Call("GET", "media", "big.bin").body == data);
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_TRUE(Call("GET", "media", "big.bin").body == data);
}

TEST_F(S3HandlerTest, AnInterruptedPutFreesTheBlobsItStoredOnTheWay) {
  ASSERT_EQ(Call("PUT", "media", "doc.txt", "version one").status, 200);
  const uint64_t inodes = Inodes();
  const std::set<BlobId> blobs = StoredBlobs();
  const size_t records = BlobRecords();
  // The connection drops after 9 MiB: by then the first two blobs are
  // stored and committed to the nameless file (waited for here, as a slow
  // client gives them time to be).
  StringBody body(std::string(12 << 20, 'n'), 9 << 20, [&] {
    for (int i = 0; i < 5000 && BlobRecords() < records + 2; ++i) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_EQ(BlobRecords(), records + 2);
  });
  Answer put = Call("PUT", "media", "doc.txt", "", {}, Root(), {}, &body);
  EXPECT_EQ(put.code, "IncompleteBody");
  EXPECT_EQ(Call("GET", "media", "doc.txt").body, "version one");
  EXPECT_EQ(Inodes(), inodes) << "the unfinished upload's file was not freed";
  EXPECT_EQ(StoredBlobs().size(), blobs.size() + 2);
  CollectGarbage();
  EXPECT_EQ(StoredBlobs(), blobs) << "the unfinished upload's blobs were not collected";
  EXPECT_EQ(BlobRecords(), records);
}

TEST_F(S3HandlerTest, APowerCutDuringAPutLeavesTheOldObjectOrTheWholeNewOne) {
  ASSERT_EQ(Call("PUT", "media", "doc.txt", "version one").status, 200);
  const uint64_t inodes = Inodes();
  std::string data((9 << 20) + 5, 'w');
  data[5 << 20] = 'W';
  // The power goes after each number of changes to the disks in turn,
  // until the PUT gets through.
  for (uint64_t changes = 0;; ++changes) {
    ASSERT_LT(changes, 500u) << "the PUT never got through";
    env_.DeactivateAfterMutations(changes);
    Answer put = Call("PUT", "media", "doc.txt", data);
    ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
    Answer got = Call("GET", "media", "doc.txt");
    ASSERT_EQ(got.status, 200) << "after " << changes << " changes: " << got.body;
    EXPECT_EQ(Inodes(), inodes) << "after " << changes << " changes";
    CollectGarbage();  // the blobs of the PUTs cut short, lest the disk fill
    if (put.status == 200) {
      EXPECT_TRUE(got.body == data) << "the acknowledged object is gone, after " << changes;
      break;
    }
    EXPECT_TRUE(got.body == "version one" || got.body == data)
        << "after " << changes << " changes the key holds " << got.body.size() << " bytes";
  }
}

TEST_F(S3HandlerTest, ListingsGoInKeyOrderAcrossDirectoriesAndPages) {
  // Names whose order differs between "directory first" and S3's bytewise
  // order of whole keys: '-' and '.' sort before '/', '0' after.
  std::vector<std::string> keys = {"a-b", "a.b", "a/b", "a/c/d", "a0", "b", "a/c.txt",
                                   "z/y/x/w", "a/b-c", "m n", "caf\xc3\xa9"};
  for (const std::string& key : keys) {
    ASSERT_EQ(Call("PUT", "media", key, key).status, 200) << key;
  }
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  int pages = 0;
  EXPECT_EQ(ListAll("media", {{"max-keys", "3"}}, nullptr, &pages), sorted);
  EXPECT_EQ(pages, 4);

  std::vector<std::string> prefixes;
  std::vector<std::string> top = ListAll("media", {{"delimiter", "/"}}, &prefixes);
  EXPECT_EQ(top, (std::vector<std::string>{"a-b", "a.b", "a0", "b", "caf\xc3\xa9", "m n"}));
  EXPECT_EQ(prefixes, (std::vector<std::string>{"a/", "z/"}));

  prefixes.clear();
  std::vector<std::string> under_a = ListAll("media", {{"prefix", "a/"}, {"delimiter", "/"}},
                                             &prefixes);
  EXPECT_EQ(under_a, (std::vector<std::string>{"a/b", "a/b-c", "a/c.txt"}));
  EXPECT_EQ(prefixes, std::vector<std::string>{"a/c/"});
  // A prefix that ends inside a name.
  EXPECT_EQ(ListAll("media", {{"prefix", "a/b"}}), (std::vector<std::string>{"a/b", "a/b-c"}));
  EXPECT_EQ(ListAll("media", {{"start-after", "a/c.txt"}}),
            (std::vector<std::string>{"a/c/d", "a0", "b", "caf\xc3\xa9", "m n", "z/y/x/w"}));
  EXPECT_TRUE(ListAll("media", {{"prefix", "nothing/"}}).empty());

  // A file made through the mount is an object too; symlinks are not.
  absl::StatusOr<InodeAttr> bucket = Path("media");
  ASSERT_TRUE(fs().Create(bucket->ino, "from-mount", 0644, Caller{0, 0}).ok());
  NewNode link;
  link.mode = S_IFLNK | 0777;
  link.symlink_target = "a-b";
  ASSERT_TRUE(fs().MakeNode(bucket->ino, "link", link, Caller{0, 0}).ok());
  std::vector<std::string> all = ListAll("media", {});
  EXPECT_THAT(all, ::testing::Contains("from-mount"));
  EXPECT_THAT(all, ::testing::Not(::testing::Contains("link")));
}

TEST_F(S3HandlerTest, ARandomTreeListsLikeASortedModel) {
  std::mt19937 rng(20261205);
  std::set<std::string> model;
  const char* parts[] = {"a", "a-", "a.", "b", "a0", "x", "x_", "y"};
  for (int i = 0; i < 120; ++i) {
    std::string key;
    int depth = 1 + rng() % 3;
    for (int d = 0; d < depth; ++d) {
      if (d) key += '/';
      key += parts[rng() % 8];
    }
    Answer put = Call("PUT", "media", key, "x");
    if (put.status == 200) {
      model.insert(key);
    } else {
      // Only clashes of a file and a directory may refuse a key.
      EXPECT_TRUE(put.code == "ObjectParentIsFile" || put.code == "ExistingObjectIsDirectory")
          << key << ": " << put.code;
    }
  }
  std::vector<std::string> expected(model.begin(), model.end());
  for (const char* max : {"1", "7", "1000"}) {
    EXPECT_EQ(ListAll("media", {{"max-keys", max}}), expected) << "max-keys " << max;
  }
  // With a delimiter: each key's first component, files as keys and
  // directories as prefixes, paged one at a time.
  std::vector<std::string> prefixes;
  std::vector<std::string> top = ListAll("media", {{"delimiter", "/"}, {"max-keys", "1"}},
                                         &prefixes);
  std::set<std::string> want_keys, want_prefixes;
  for (const std::string& key : model) {
    size_t slash = key.find('/');
    if (slash == std::string::npos) want_keys.insert(key);
    else want_prefixes.insert(key.substr(0, slash + 1));
  }
  EXPECT_EQ(top, std::vector<std::string>(want_keys.begin(), want_keys.end()));
  EXPECT_EQ(prefixes, std::vector<std::string>(want_prefixes.begin(), want_prefixes.end()));
}

TEST_F(S3HandlerTest, PagesResumeAcrossDirectoriesThatSortAmongTheirSiblings) {
  // Directories "a", "a-", "a/y" and "b0" list as "a/", "a-/", "a/y/" and
  // "b0/": among names that share their start, a directory's keys come
  // after those with '!', '-' or '.' next and before those with '0' next,
  // so a walk in name order must hold them back. "b/" is a directory
  // object.
  std::set<std::string> keys = {"a!",  "a--", "a-/q",  "a-b", "a.b", "a/x",  "a/y-",
                                "a/y/z", "a0", "b-",   "b/",  "b/c", "b0/d", "b0/d-e"};
  for (const std::string& key : keys) {
    ASSERT_EQ(Call("PUT", "media", key, key == "b/" ? "" : key).status, 200) << key;
  }
  const std::vector<std::string> all(keys.begin(), keys.end());
  for (const char* max : {"1", "2", "3", "5", "1000"}) {
    for (const char* api : {"v2", "v1", "versions"}) {
      int pages = 0;
      EXPECT_EQ(ListItems("media", {{"max-keys", max}}, api, &pages), all)
          << "max-keys " << max << " " << api;
      const int per_page = std::stoi(max);
      EXPECT_EQ(pages, (static_cast<int>(all.size()) + per_page - 1) / per_page)
          << max << " " << api;
    }
  }
  // Resumed after every key, and after strings between them (a marker need
  // not be a key): each lands inside or beside one of those directories.
  std::vector<std::string> markers = all;
  for (const char* between : {"", "a", "a-", "a-/", "a-/q0", "a.", "a/", "a/y", "a/y/", "a/y/zz",
                              "a/z", "a0/", "b", "b/", "b0", "b0/", "b0/d-", "c", "\xff"}) {
    markers.push_back(between);
  }
  for (const std::string& after : markers) {
    EXPECT_EQ(ListItems("media", {{"start-after", after}, {"max-keys", "2"}}),
              Model(keys, "", "", after))
        << "start-after " << after;
    EXPECT_EQ(ListItems("media", {{"start-after", after}, {"delimiter", "/"}, {"max-keys", "1"}}),
              Model(keys, "", "/", after))
        << "start-after " << after << " with delimiter /";
  }
  // With a delimiter, one item a page: directories become prefixes in
  // their places ("a-/" between "a--" and "a-b"), keys of "a/y/" roll up.
  EXPECT_EQ(ListItems("media", {{"delimiter", "/"}, {"max-keys", "1"}}),
            (std::vector<std::string>{"a!", "a--", "a-/", "a-b", "a.b", "a/", "a0", "b-", "b/",
                                      "b0/"}));
  EXPECT_EQ(ListItems("media", {{"prefix", "a/"}, {"delimiter", "/"}, {"max-keys", "1"}}),
            (std::vector<std::string>{"a/x", "a/y-", "a/y/"}));
  // A prefix that ends inside a name, and one that is a directory's name.
  EXPECT_EQ(ListItems("media", {{"prefix", "a-"}, {"max-keys", "1"}}),
            (std::vector<std::string>{"a--", "a-/q", "a-b"}));
  EXPECT_EQ(ListItems("media", {{"prefix", "b0"}, {"delimiter", "-"}}),
            (std::vector<std::string>{"b0/d", "b0/d-"}));
  // A delimiter other than '/': the names it rolls up are skipped, the
  // directories among them too.
  EXPECT_EQ(ListItems("media", {{"delimiter", "-"}, {"max-keys", "1"}}),
            Model(keys, "", "-", ""));
  EXPECT_EQ(ListItems("media", {{"delimiter", "-"}, {"start-after", "a-"}}),
            Model(keys, "", "-", "a-"));
}

TEST_F(S3HandlerTest, RandomListingsPageLikeAModel) {
  // Names built from characters on both sides of '/', paged with every
  // kind of marker, prefix and delimiter against what S3 would list; a
  // tree per seed, each in its own bucket.
  for (uint32_t seed : {20261206u, 7u, 1999u}) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const std::string bucket_name = absl::StrCat("random-", seed);
    ASSERT_EQ(Call("PUT", bucket_name, "").status, 200);
    std::mt19937 rng(seed);
    std::set<std::string> model;
    const char* parts[] = {"a", "a-", "a.", "a-b", "a!", "a0", "ab", "b", "b.c", "-"};
    for (int i = 0; i < 150; ++i) {
      std::string key;
      int depth = 1 + rng() % 3;
      for (int d = 0; d < depth; ++d) {
        if (d) key += '/';
        key += parts[rng() % 10];
      }
      if (rng() % 8 == 0) key += '/';  // a directory object
      Answer put = Call("PUT", bucket_name, key, key.back() == '/' ? "" : "x");
      if (put.status == 200) {
        model.insert(key);
      } else {
        EXPECT_TRUE(put.code == "ObjectParentIsFile" || put.code == "ExistingObjectIsDirectory")
            << key << ": " << put.code;
      }
    }
    // Empty directories made through the mount hold no key and make no
    // common prefix.
    absl::StatusOr<InodeAttr> bucket = Path(bucket_name);
    ASSERT_TRUE(bucket.ok());
    NewNode dir;
    dir.mode = S_IFDIR | 0755;
    for (const char* name : {"a-c", "a.0", "b-"}) {
      absl::StatusOr<InodeAttr> made = fs().MakeNode(bucket->ino, name, dir, Caller{0, 0});
      ASSERT_TRUE(made.ok()) << made.status();
      ASSERT_TRUE(fs().MakeNode(made->ino, "empty", dir, Caller{0, 0}).ok());
    }
    std::vector<std::string> pool(model.begin(), model.end());
    auto pick = [&](std::vector<std::string> fixed) {
      // A fixed choice, a key, or the start of a key.
      size_t n = rng() % (fixed.size() + 2);
      if (n < fixed.size()) return fixed[n];
      const std::string& key = pool[rng() % pool.size()];
      return n == fixed.size() ? key : key.substr(0, rng() % (key.size() + 1));
    };
    for (int i = 0; i < 200; ++i) {
      std::string prefix = pick({"", "", "a", "a-", "a/", "a-/", "b."});
      std::string delimiter = pick({"", "", "/", "/", "-", ".", "a/", "/a"});
      std::string after = pick({"", "", "a-", "a/", "a-/", "b"});
      std::string max = std::to_string(1 + rng() % 4);
      static const char* const kApis[] = {"v2", "v1", "versions"};
      std::string api = kApis[rng() % 3];
      std::map<std::string, std::string> query = {{"max-keys", max}};
      if (!prefix.empty()) query["prefix"] = prefix;
      if (!delimiter.empty()) query["delimiter"] = delimiter;
      const char* marker = api == "v2" ? "start-after" : api == "v1" ? "marker" : "key-marker";
      if (!after.empty()) query[marker] = after;
      std::vector<std::string> want = Model(model, prefix, delimiter, after);
      int pages = 0;
      EXPECT_EQ(ListItems(bucket_name, query, api, &pages), want)
          << api << " prefix '" << prefix << "' delimiter '" << delimiter << "' after '" << after
          << "' max-keys " << max;
      const int per_page = std::stoi(max);
      EXPECT_EQ(pages, std::max(1, (static_cast<int>(want.size()) + per_page - 1) / per_page));
    }
  }
}

TEST_F(S3HandlerTest, ConditionalRequestsCompareTheCurrentETag) {
  Answer put = Call("PUT", "media", "c.txt", "one");
  const std::string etag = put.headers["ETag"];
  EXPECT_EQ(Call("PUT", "media", "c.txt", "two", {{"if-none-match", "*"}}).code,
            "PreconditionFailed");
  EXPECT_EQ(Call("PUT", "media", "new.txt", "two", {{"if-none-match", "*"}}).status, 200);
  EXPECT_EQ(Call("PUT", "media", "c.txt", "two", {{"if-match", "\"0123\""}}).code,
            "PreconditionFailed");
  EXPECT_EQ(Call("PUT", "media", "gone.txt", "two", {{"if-match", etag}}).code, "NoSuchKey");
  EXPECT_EQ(Call("GET", "media", "c.txt").body, "one");
  EXPECT_EQ(Call("PUT", "media", "c.txt", "two", {{"if-match", etag}}).status, 200);
  EXPECT_EQ(Call("GET", "media", "c.txt").body, "two");

  Answer current = Call("HEAD", "media", "c.txt");
  EXPECT_EQ(Call("GET", "media", "c.txt", "", {{"if-none-match", current.headers["ETag"]}}).status,
            304);
  EXPECT_EQ(Call("GET", "media", "c.txt", "", {{"if-match", etag}}).code, "PreconditionFailed");
  EXPECT_EQ(Call("GET", "media", "c.txt", "",
                 {{"if-modified-since", "Sun, 01 Jan 2090 00:00:00 GMT"}}).status,
            304);
}

TEST_F(S3HandlerTest, AWriteThroughTheMountGivesANewETagThatIsNoMd5) {
  ASSERT_EQ(Call("PUT", "media", "m.txt", "from s3").status, 200);
  const std::string etag = Call("HEAD", "media", "m.txt").headers["ETag"];
  absl::StatusOr<InodeAttr> file = Path("media/m.txt");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(fs().Open(file->ino, O_RDWR).ok());
  ASSERT_TRUE(fs().Write(file->ino, 0, "FROM").ok());
  // The kernel sets mtime for writes through the mount.
  SetAttrRequest times;
  times.mtime = Timespec{file->mtime.sec + 1, 0};
  ASSERT_TRUE(fs().SetAttr(file->ino, times).ok());
  ASSERT_TRUE(fs().Fsync(file->ino).ok());
  fs().Release(file->ino, O_RDWR);
  Answer after = Call("GET", "media", "m.txt");
  EXPECT_EQ(after.body, "FROM s3");
  EXPECT_NE(after.headers["ETag"], etag);
  EXPECT_NE(after.headers["ETag"], absl::StrCat("\"", Md5Hex("FROM s3"), "\""));
  EXPECT_TRUE(absl::EndsWith(after.headers["ETag"], "-1\"")) << after.headers["ETag"];
}

TEST_F(S3HandlerTest, KeysThatClashWithTheTreeAreRefusedWithTheirReason) {
  ASSERT_EQ(Call("PUT", "media", "file", "x").status, 200);
  ASSERT_EQ(Call("PUT", "media", "dir/inner", "x").status, 200);
  EXPECT_EQ(Call("PUT", "media", "file/below", "x").status, 409);
  EXPECT_EQ(Call("PUT", "media", "file/below", "x").code, "ObjectParentIsFile");
  EXPECT_EQ(Call("PUT", "media", "dir", "x").code, "ExistingObjectIsDirectory");
  EXPECT_EQ(Call("PUT", "media", "a//b", "x").status, 400);
  EXPECT_EQ(Call("PUT", "media", "a/../b", "x").code, "InvalidArgument");
  EXPECT_EQ(Call("PUT", "media", std::string(256, 'k'), "x").code, "KeyTooLongError");
  EXPECT_EQ(Call("GET", "media", "dir").code, "NoSuchKey");
  EXPECT_EQ(Call("GET", "media", "missing").code, "NoSuchKey");
  EXPECT_EQ(Call("GET", "no-such-bucket", "x").code, "NoSuchBucket");
  EXPECT_EQ(Call("PUT", "Bad_Name", "").code, "InvalidBucketName");
  EXPECT_EQ(Call("PUT", "dash-.dot", "").code, "InvalidBucketName");
  EXPECT_EQ(Call("PUT", "192.168.5.4", "").code, "InvalidBucketName");

  // "dir/" keys are directories that hold no bytes.
  EXPECT_EQ(Call("PUT", "media", "empty/", "").status, 200);
  EXPECT_TRUE(S_ISDIR(Path("media/empty")->mode));
  EXPECT_EQ(Call("PUT", "media", "full/", "data").code, "InvalidRequest");
  EXPECT_THAT(ListAll("media", {}), ::testing::Contains("empty/"));
}

TEST_F(S3HandlerTest, AKeyGetsNoMoreThanItsUidMay) {
  ASSERT_EQ(Call("PUT", "media", "secret.txt", "root only").status, 200);
  absl::StatusOr<InodeAttr> file = Path("media/secret.txt");
  SetAttrRequest private_mode;
  private_mode.mode = 0600;
  ASSERT_TRUE(fs().SetAttr(file->ino, private_mode).ok());
  EXPECT_EQ(Call("GET", "media", "secret.txt", "", {}, Alice()).code, "AccessDenied");
  // media is root's, mode 0755: alice may not write in it.
  EXPECT_EQ(Call("PUT", "media", "alice.txt", "x", {}, Alice()).code, "AccessDenied");
  EXPECT_EQ(Call("DELETE", "media", "secret.txt", "", {}, Alice()).code, "AccessDenied");
  EXPECT_EQ(Call("GET", "media", "secret.txt").body, "root only");
  // In her own bucket she may, and what she writes is hers.
  ASSERT_EQ(Call("PUT", "alice-files", "notes/a.txt", "mine", {}, Alice()).status, 200);
  EXPECT_EQ(Path("alice-files/notes/a.txt")->uid, 1000u);
  EXPECT_EQ(Path("alice-files/notes")->uid, 1000u);

  S3Key read_only = Alice();
  read_only.read_only = true;
  EXPECT_EQ(Call("PUT", "alice-files", "b.txt", "x", {}, read_only).code, "AccessDenied");
  EXPECT_EQ(Call("GET", "alice-files", "notes/a.txt", "", {}, read_only).body, "mine");
  S3Key one_bucket = Alice();
  one_bucket.buckets = {"elsewhere"};
  EXPECT_EQ(Call("GET", "alice-files", "notes/a.txt", "", {}, one_bucket).code, "AccessDenied");
}

TEST_F(S3HandlerTest, AConditionalDeleteComparesTheObjectNow) {
  Answer put = Call("PUT", "media", "c.txt", "12345");
  const std::string etag = put.headers["ETag"];
  EXPECT_EQ(Call("DELETE", "media", "c.txt", "", {{"if-match", "\"bad\""}}).code,
            "PreconditionFailed");
  EXPECT_EQ(Call("DELETE", "media", "c.txt", "", {{"x-amz-if-match-size", "4"}}).code,
            "PreconditionFailed");
  EXPECT_EQ(Call("DELETE", "media", "c.txt", "",
                 {{"x-amz-if-match-last-modified-time", "Sun, 01 Jan 2090 00:00:00 GMT"}})
                .code,
            "PreconditionFailed");
  EXPECT_TRUE(Path("media/c.txt").ok());
  EXPECT_EQ(Call("DELETE", "media", "c.txt", "", {{"if-match", etag}, {"x-amz-if-match-size", "5"}})
                .status,
            204);
  EXPECT_FALSE(Path("media/c.txt").ok());
  // Nothing there: nothing to compare, and nothing to refuse.
  EXPECT_EQ(Call("DELETE", "media", "c.txt", "", {{"if-match", "\"bad\""}}).status, 204);

  ASSERT_EQ(Call("PUT", "media", "d.txt", "x").status, 200);
  std::string batch =
      "<Delete><Object><Key>d.txt</Key><ETag>\"bad\"</ETag></Object></Delete>";
  Answer refused = Call("POST", "media", "", batch, {}, Root(), {{"delete", ""}});
  EXPECT_EQ(Between(refused.body, "<Code>", "</Code>"),
            std::vector<std::string>{"PreconditionFailed"});
  EXPECT_TRUE(Path("media/d.txt").ok());
}

TEST_F(S3HandlerTest, DeleteRemovesTheFileAndMissingKeysAreNoError) {
  ASSERT_EQ(Call("PUT", "media", "d/x.txt", "x").status, 200);
  ASSERT_EQ(Call("PUT", "media", "d/y.txt", "y").status, 200);
  EXPECT_EQ(Call("DELETE", "media", "d/x.txt").status, 204);
  EXPECT_FALSE(Path("media/d/x.txt").ok());
  EXPECT_EQ(Call("DELETE", "media", "d/x.txt").status, 204);
  EXPECT_EQ(Call("DELETE", "media", "never/was").status, 204);
  EXPECT_EQ(Call("DELETE", "media", "").code, "BucketNotEmpty");

  std::string batch =
      "<Delete><Object><Key>d/y.txt</Key></Object><Object><Key>nope</Key></Object></Delete>";
  Answer many = Call("POST", "media", "", batch, {}, Root(), {{"delete", ""}});
  ASSERT_EQ(many.status, 200) << many.body;
  EXPECT_EQ(Between(many.body, "<Deleted><Key>", "</Key>"),
            (std::vector<std::string>{"d/y.txt", "nope"}));
  EXPECT_FALSE(Path("media/d/y.txt").ok());
}

TEST_F(S3HandlerTest, DirectoriesLeftEmptyByDeletesGoAndHoldNoKeys) {
  ASSERT_EQ(Call("PUT", "media", "a/b/c/file", "x").status, 200);
  ASSERT_EQ(Call("PUT", "media", "a/kept/", "").status, 200);  // a directory object
  ASSERT_EQ(Call("DELETE", "media", "a/b/c/file").status, 204);
  // a/b/c and a/b held nothing else: they went; a holds the object kept/.
  EXPECT_FALSE(Path("media/a/b").ok());
  EXPECT_TRUE(Path("media/a/kept").ok());
  ASSERT_EQ(Call("DELETE", "media", "a/kept/").status, 204);
  EXPECT_FALSE(Path("media/a").ok());

  // A directory made through the mount and left empty is no key and no
  // common prefix.
  absl::StatusOr<InodeAttr> bucket = Path("media");
  NewNode dir;
  dir.mode = S_IFDIR | 0755;
  ASSERT_TRUE(fs().MakeNode(bucket->ino, "empty-dir", dir, Caller{0, 0}).ok());
  ASSERT_EQ(Call("PUT", "media", "full-dir/f", "x").status, 200);
  std::vector<std::string> prefixes;
  EXPECT_TRUE(ListAll("media", {{"delimiter", "/"}}, &prefixes).empty());
  EXPECT_EQ(prefixes, std::vector<std::string>{"full-dir/"});
  // A bucket of empty directories is empty to S3, and goes with them.
  ASSERT_EQ(Call("DELETE", "media", "full-dir/f").status, 204);
  EXPECT_EQ(Call("DELETE", "media", "").status, 204);
  EXPECT_FALSE(Path("media").ok());
}

TEST_F(S3HandlerTest, CopyObjectCopiesBytesAndMetadata) {
  ASSERT_EQ(Call("PUT", "media", "src.txt", "copy me", {{"x-amz-meta-color", "blue"}}).status,
            200);
  Answer copy = Call("PUT", "alice-files", "dst.txt", "",
                     {{"x-amz-copy-source", "/media/src.txt"}});
  ASSERT_EQ(copy.status, 200) << copy.body;
  EXPECT_NE(copy.body.find(Md5Hex("copy me")), std::string::npos);
  Answer got = Call("GET", "alice-files", "dst.txt");
  EXPECT_EQ(got.body, "copy me");
  EXPECT_EQ(got.headers["x-amz-meta-color"], "blue");
  EXPECT_EQ(Call("PUT", "media", "x", "", {{"x-amz-copy-source", "media/none"}}).code,
            "NoSuchKey");
  // Onto itself only to change its metadata.
  EXPECT_EQ(Call("PUT", "media", "src.txt", "", {{"x-amz-copy-source", "media/src.txt"}}).code,
            "InvalidRequest");
  EXPECT_EQ(Call("PUT", "media", "src.txt", "",
                 {{"x-amz-copy-source", "media/src.txt"},
                  {"x-amz-metadata-directive", "REPLACE"},
                  {"x-amz-meta-color", "red"}}).status,
            200);
  EXPECT_EQ(Call("HEAD", "media", "src.txt").headers["x-amz-meta-color"], "red");
  EXPECT_EQ(Call("GET", "media", "src.txt").body, "copy me");
}

// s3fs changes a file's or a directory's mode, owner or times by copying
// the object onto itself with new x-amz-meta-*: the bytes, the inode, its
// mode bits and its ETag stay; only the stored headers change.
TEST_F(S3HandlerTest, ACopyOntoItselfChangesOnlyTheMetadata) {
  ASSERT_EQ(Call("PUT", "alice-files", "notes.txt", "my notes", {{"x-amz-meta-mode", "33188"}},
                 Alice()).status,
            200);
  const InodeId ino = Path("alice-files/notes.txt")->ino;
  SetAttrRequest chmod;
  chmod.mode = 0600;
  ASSERT_TRUE(fs().SetAttr(ino, chmod).ok());
  Answer copied = Call("PUT", "alice-files", "notes.txt", "",
                       {{"x-amz-copy-source", "alice-files/notes.txt"},
                        {"x-amz-metadata-directive", "REPLACE"},
                        {"x-amz-meta-mtime", "1700000000"}},
                       Alice());
  ASSERT_EQ(copied.status, 200) << copied.body;
  EXPECT_NE(copied.body.find(Md5Hex("my notes")), std::string::npos) << copied.body;
  EXPECT_EQ(Path("alice-files/notes.txt")->ino, ino) << "the bytes were copied to a new file";
  EXPECT_EQ(Path("alice-files/notes.txt")->mode & 07777, 0600u);
  Answer head = Call("HEAD", "alice-files", "notes.txt", "", {}, Alice());
  EXPECT_EQ(head.headers["x-amz-meta-mtime"], "1700000000");
  EXPECT_EQ(head.headers.count("x-amz-meta-mode"), 0u) << "REPLACE keeps only what it sends";
  EXPECT_EQ(head.headers["ETag"], "\"" + Md5Hex("my notes") + "\"");
  // Only its writers may: another key that can read it may not.
  ASSERT_EQ(Call("PUT", "media", "shared.txt", "root's").status, 200);
  EXPECT_EQ(Call("PUT", "media", "shared.txt", "",
                 {{"x-amz-copy-source", "media/shared.txt"},
                  {"x-amz-metadata-directive", "REPLACE"}},
                 Alice()).code,
            "AccessDenied");

  // A directory object the same way; it holds its metadata.
  ASSERT_EQ(Call("PUT", "alice-files", "photos/", "", {{"x-amz-meta-mode", "16877"}}, Alice())
                .status,
            200);
  EXPECT_EQ(Call("HEAD", "alice-files", "photos/", "", {}, Alice()).headers["x-amz-meta-mode"],
            "16877");
  Answer dir = Call("PUT", "alice-files", "photos/", "",
                    {{"x-amz-copy-source", "alice-files/photos/"},
                     {"x-amz-metadata-directive", "REPLACE"},
                     {"x-amz-meta-mode", "16832"}},
                    Alice());
  ASSERT_EQ(dir.status, 200) << dir.body;
  EXPECT_EQ(Call("HEAD", "alice-files", "photos/", "", {}, Alice()).headers["x-amz-meta-mode"],
            "16832");
  // A directory is copied nowhere else, and is no source for a file.
  EXPECT_EQ(Call("PUT", "alice-files", "other/", "",
                 {{"x-amz-copy-source", "alice-files/photos/"},
                  {"x-amz-metadata-directive", "REPLACE"}},
                 Alice()).code,
            "InvalidRequest");
  EXPECT_EQ(Call("PUT", "alice-files", "photos", "",
                 {{"x-amz-copy-source", "alice-files/photos/"}}, Alice()).code,
            "InvalidRequest");
}

std::string CompletionXml(const std::vector<std::pair<int, std::string>>& parts) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& [number, etag] : parts) {
    absl::StrAppend(&xml, "<Part><PartNumber>", number, "</PartNumber><ETag>", etag,
                    "</ETag></Part>");
  }
  return xml + "</CompleteMultipartUpload>";
}

TEST_F(S3HandlerTest, AMultipartUploadBecomesOneObjectWithoutCopyingItsParts) {
  const uint64_t inodes = Inodes();
  Answer begun = Call("POST", "media", "video/long.mp4", "", {{"content-type", "video/mp4"}},
                      Root(), {{"uploads", ""}});
  ASSERT_EQ(begun.status, 200) << begun.body;
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  std::string one(6 << 20, '1'), two(6 << 20, '2'), three = "the short last part";
  one[777] = 'x';
  auto put_part = [&](int number, const std::string& data) {
    Answer put = Call("PUT", "media", "video/long.mp4", data, {}, Root(),
                      {{"partNumber", std::to_string(number)}, {"uploadId", id}});
    EXPECT_EQ(put.status, 200) << put.body;
    return put.headers["ETag"];
  };
  // Out of order, and part 2 sent twice: the second one counts.
  std::string e3 = put_part(3, three);
  put_part(2, std::string(6 << 20, 'z'));
  std::string e2 = put_part(2, two);
  std::string e1 = put_part(1, one);
  EXPECT_EQ(e1, absl::StrCat("\"", Md5Hex(one), "\""));

  Answer parts = Call("GET", "media", "video/long.mp4", "", {}, Root(), {{"uploadId", id}});
  EXPECT_EQ(Between(parts.body, "<PartNumber>", "</PartNumber>"),
            (std::vector<std::string>{"1", "2", "3"}));
  Answer uploads = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}});
  EXPECT_EQ(Between(uploads.body, "<UploadId>", "</UploadId>"), std::vector<std::string>{id});
  // Not yet an object.
  EXPECT_EQ(Call("GET", "media", "video/long.mp4").code, "NoSuchKey");

  const uint64_t written_before = env_.bytes_written();
  Answer done = Call("POST", "media", "video/long.mp4", CompletionXml({{1, e1}, {2, e2}, {3, e3}}),
                     {}, Root(), {{"uploadId", id}});
  ASSERT_EQ(done.status, 200) << done.body;
  const std::string etag = Between(done.body, "<ETag>", "</ETag>").at(0);
  std::string md5s = absl::HexStringToBytes(Md5Hex(one)) + absl::HexStringToBytes(Md5Hex(two)) +
                     absl::HexStringToBytes(Md5Hex(three));
  EXPECT_EQ(etag, absl::StrCat("&quot;", Md5Hex(md5s), "-3&quot;"));

  Answer got = Call("GET", "media", "video/long.mp4");
  ASSERT_EQ(got.status, 200);
  EXPECT_TRUE(got.body == one + two + three) << "the object is not its parts in order";
  EXPECT_EQ(got.headers["Content-Type"], "video/mp4");
  EXPECT_EQ(got.headers["ETag"], absl::StrCat("\"", Md5Hex(md5s), "-3\""));
  // Each part can be read on its own.
  Answer second = Call("GET", "media", "video/long.mp4", "", {}, Root(), {{"partNumber", "2"}});
  EXPECT_EQ(second.status, 206);
  EXPECT_TRUE(second.body == two);
  EXPECT_EQ(second.headers["x-amz-mp-parts-count"], "3");
  EXPECT_EQ(Call("GET", "media", "video/long.mp4", "", {}, Root(), {{"partNumber", "4"}}).code,
            "InvalidPart");
  // The parts' blobs are the object's now: completing stored no data
  // again (only namespace records), and the parts' files are gone (the
  // replaced part 2 with them).
  EXPECT_LT(env_.bytes_written() - written_before, 1u << 20);
  EXPECT_EQ(Inodes(), inodes + 2);  // the object and its directory
  EXPECT_EQ(Call("GET", "media", "video/long.mp4", "", {}, Root(), {{"uploadId", id}}).code,
            "NoSuchUpload");
  // Completing again (a client that lost the answer) answers the same.
  Answer again = Call("POST", "media", "video/long.mp4", CompletionXml({{1, e1}, {2, e2}, {3, e3}}),
                      {}, Root(), {{"uploadId", id}});
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Between(again.body, "<ETag>", "</ETag>").at(0), etag);
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_TRUE(Call("GET", "media", "video/long.mp4").body == one + two + three);
}

TEST_F(S3HandlerTest, AMultipartUploadChecksItsPartsAndCanBeAborted) {
  const uint64_t inodes = Inodes();
  Answer begun = Call("POST", "media", "k", "", {}, Root(), {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  auto put_part = [&](int number, const std::string& data) {
    return Call("PUT", "media", "k", data, {}, Root(),
                {{"partNumber", std::to_string(number)}, {"uploadId", id}})
        .headers["ETag"];
  };
  std::string small = put_part(1, "tiny");
  std::string big = put_part(2, std::string(5 << 20, 'b'));
  EXPECT_EQ(Call("POST", "media", "k", CompletionXml({{2, big}, {1, small}}), {}, Root(),
                 {{"uploadId", id}}).code,
            "InvalidPartOrder");
  EXPECT_EQ(Call("POST", "media", "k", CompletionXml({{1, "\"0000\""}, {2, big}}), {}, Root(),
                 {{"uploadId", id}}).code,
            "InvalidPart");
  Answer too_small = Call("POST", "media", "k", CompletionXml({{1, small}, {2, big}}), {}, Root(),
                          {{"uploadId", id}});
  EXPECT_EQ(too_small.code, "EntityTooSmall") << too_small.body;
  EXPECT_EQ(Call("PUT", "media", "k", "x", {}, Root(), {{"partNumber", "0"}, {"uploadId", id}}).code,
            "InvalidArgument");
  EXPECT_EQ(Call("PUT", "media", "k", "x", {}, Alice(), {{"partNumber", "3"}, {"uploadId", id}}).code,
            "AccessDenied");
  EXPECT_EQ(Call("PUT", "media", "other", "x", {}, Root(), {{"partNumber", "3"}, {"uploadId", id}}).code,
            "NoSuchUpload");
  EXPECT_EQ(Call("DELETE", "media", "k", "", {}, Root(), {{"uploadId", id}}).status, 204);
  EXPECT_EQ(Call("POST", "media", "k", CompletionXml({{2, big}}), {}, Root(), {{"uploadId", id}}).code,
            "NoSuchUpload");
  EXPECT_EQ(Inodes(), inodes) << "an aborted upload's parts were not freed";
  EXPECT_EQ(Call("GET", "media", "k").code, "NoSuchKey");
}

TEST_F(S3HandlerTest, AMultipartUploadSurvivesAPowerCutAndCompletesAfterIt) {
  const uint64_t inodes = Inodes();
  Answer begun = Call("POST", "media", "k", "", {{"content-type", "text/plain"}}, Root(),
                      {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  std::string one(5 << 20, 'p'), two = "the last part";
  one[12345] = 'q';
  auto put_part = [&](int number, const std::string& data) {
    Answer put = Call("PUT", "media", "k", data, {}, Root(),
                      {{"partNumber", std::to_string(number)}, {"uploadId", id}});
    EXPECT_EQ(put.status, 200) << put.body;
    return put.headers["ETag"];
  };
  std::string e1 = put_part(1, one), e2 = put_part(2, two);
  // A part whose body broke off is no part, and its file goes.
  StringBody broken(std::string(1 << 20, 'x'), 4096);
  EXPECT_EQ(Call("PUT", "media", "k", "", {}, Root(), {{"partNumber", "3"}, {"uploadId", id}},
                 &broken).code,
            "IncompleteBody");
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_EQ(Inodes(), inodes + 2) << "the parts' files should have stayed, nothing else";
  Answer uploads = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}});
  EXPECT_EQ(Between(uploads.body, "<UploadId>", "</UploadId>"), std::vector<std::string>{id});
  Answer parts = Call("GET", "media", "k", "", {}, Root(), {{"uploadId", id}});
  EXPECT_EQ(Between(parts.body, "<PartNumber>", "</PartNumber>"),
            (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(Between(parts.body, "<Size>", "</Size>"),
            (std::vector<std::string>{std::to_string(one.size()), std::to_string(two.size())}));
  Answer done = Call("POST", "media", "k", CompletionXml({{1, e1}, {2, e2}}), {}, Root(),
                     {{"uploadId", id}});
  ASSERT_EQ(done.status, 200) << done.body;
  Answer got = Call("GET", "media", "k");
  EXPECT_TRUE(got.body == one + two);
  EXPECT_EQ(got.headers["Content-Type"], "text/plain");
  EXPECT_EQ(Inodes(), inodes + 1);  // the object; the parts went in its commit
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_TRUE(Call("GET", "media", "k").body == one + two);
  EXPECT_EQ(Call("GET", "media", "k", "", {}, Root(), {{"uploadId", id}}).code, "NoSuchUpload");
  EXPECT_EQ(Inodes(), inodes + 1);
}

TEST_F(S3HandlerTest, ACompleteRepeatedAfterARestartAnswersAsTheFirst) {
  // Uploads of three keys, completed; then the power goes, and the
  // daemon forgets the answers it gave.
  std::map<std::string, std::pair<std::string, std::string>> xml_and_id;
  std::map<std::string, std::string> etags;
  for (const std::string key : {"docs/kept", "docs/overwritten", "docs/deleted", "docs/written"}) {
    Answer begun = Call("POST", "media", key, "", {}, Root(), {{"uploads", ""}});
    ASSERT_EQ(begun.status, 200) << begun.body;
    const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
    std::string e1 = Call("PUT", "media", key, std::string(5 << 20, 'a'), {}, Root(),
                          {{"partNumber", "1"}, {"uploadId", id}}).headers["ETag"];
    std::string e2 = Call("PUT", "media", key, "the end", {}, Root(),
                          {{"partNumber", "2"}, {"uploadId", id}}).headers["ETag"];
    xml_and_id[key] = {CompletionXml({{1, e1}, {2, e2}}), id};
    Answer done = Call("POST", "media", key, xml_and_id[key].first, {}, Root(), {{"uploadId", id}});
    ASSERT_EQ(done.status, 200) << done.body;
    etags[key] = Between(done.body, "<ETag>", "</ETag>").at(0);
  }
  auto complete_again = [&](const std::string& key, const S3Key& who = Root()) {
    return Call("POST", "media", key, xml_and_id[key].first, {}, who,
                {{"uploadId", xml_and_id[key].second}});
  };
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());

  Answer again = complete_again("docs/kept");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Between(again.body, "<ETag>", "</ETag>").at(0), etags["docs/kept"]);
  EXPECT_EQ(Between(again.body, "<Key>", "</Key>").at(0), "docs/kept");
  // Another key's upload id is no upload of this key.
  EXPECT_EQ(Call("POST", "media", "docs/kept", xml_and_id["docs/kept"].first, {}, Root(),
                 {{"uploadId", xml_and_id["docs/deleted"].second}}).code,
            "NoSuchUpload");
  EXPECT_EQ(complete_again("docs/kept", Alice()).code, "AccessDenied");

  // Overwritten, deleted or written through the mount since: the object
  // is no longer what the upload made.
  ASSERT_EQ(Call("PUT", "media", "docs/overwritten", "new bytes").status, 200);
  EXPECT_EQ(complete_again("docs/overwritten").code, "NoSuchUpload");
  ASSERT_EQ(Call("DELETE", "media", "docs/deleted").status, 204);
  EXPECT_EQ(complete_again("docs/deleted").code, "NoSuchUpload");
  absl::StatusOr<InodeAttr> file = Path("media/docs/written");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(fs().Open(file->ino, O_RDWR).ok());
  ASSERT_TRUE(fs().Write(file->ino, 0, "B").ok());
  SetAttrRequest times;
  times.mtime = Timespec{file->mtime.sec + 1, 0};
  ASSERT_TRUE(fs().SetAttr(file->ino, times).ok());
  fs().Release(file->ino, O_RDWR);
  EXPECT_EQ(complete_again("docs/written").code, "NoSuchUpload");

  // A restart of the handler alone (the daemon's S3 service) as well.
  handler_.reset();
  handler_ = std::make_unique<S3Handler>(fs(), S3Handler::Options{});
  again = complete_again("docs/kept");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Between(again.body, "<ETag>", "</ETag>").at(0), etags["docs/kept"]);
  EXPECT_TRUE(Call("GET", "media", "docs/kept").body == std::string(5 << 20, 'a') + "the end");
}

TEST_F(S3HandlerTest, AnUploadAbortedAfterAPowerCutFreesItsParts) {
  const uint64_t inodes = Inodes();
  Answer begun = Call("POST", "media", "k", "", {}, Root(), {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  ASSERT_EQ(Call("PUT", "media", "k", std::string(3 << 20, 'p'), {}, Root(),
                 {{"partNumber", "1"}, {"uploadId", id}}).status,
            200);
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_EQ(Inodes(), inodes + 1);
  EXPECT_EQ(Call("DELETE", "media", "k", "", {}, Alice(), {{"uploadId", id}}).code,
            "AccessDenied");
  EXPECT_EQ(Call("DELETE", "media", "k", "", {}, Root(), {{"uploadId", id}}).status, 204);
  EXPECT_EQ(Inodes(), inodes);
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  EXPECT_EQ(Inodes(), inodes);
  EXPECT_EQ(Call("GET", "media", "k", "", {}, Root(), {{"uploadId", id}}).code, "NoSuchUpload");
}

TEST_F(S3HandlerTest, AnUploadPastItsExpiryIsAbortedWhenTheHandlerStarts) {
  const uint64_t inodes = Inodes();
  Answer begun = Call("POST", "media", "k", "", {}, Root(), {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  ASSERT_EQ(Call("PUT", "media", "k", "data", {}, Root(), {{"partNumber", "1"}, {"uploadId", id}})
                .status,
            200);
  S3Handler::Options options;
  options.multipart_expiry = absl::ZeroDuration();
  handler_.reset();
  handler_ = std::make_unique<S3Handler>(fs(), options);
  EXPECT_EQ(Call("GET", "media", "k", "", {}, Root(), {{"uploadId", id}}).code, "NoSuchUpload");
  EXPECT_EQ(Inodes(), inodes);
}

TEST_F(S3HandlerTest, ListMultipartUploadsPagesThroughEveryUploadOnce) {
  // Two uploads of one key, so that a page can end between them.
  std::set<std::pair<std::string, std::string>> begun;
  for (const std::string key : {"a", "b", "b", "c", "d/e", "f", "f"}) {
    Answer answer = Call("POST", "media", key, "", {}, Root(), {{"uploads", ""}});
    ASSERT_EQ(answer.status, 200) << answer.body;
    begun.emplace(key, Between(answer.body, "<UploadId>", "</UploadId>").at(0));
  }
  std::vector<std::pair<std::string, std::string>> listed;
  std::map<std::string, std::string> query = {{"uploads", ""}, {"max-uploads", "2"}};
  int pages = 0;
  for (; pages < 20; ++pages) {
    Answer page = Call("GET", "media", "", "", {}, Root(), query);
    ASSERT_EQ(page.status, 200) << page.body;
    EXPECT_EQ(Between(page.body, "<MaxUploads>", "</MaxUploads>").at(0), "2");
    std::vector<std::string> keys = Between(page.body, "<Key>", "</Key>");
    std::vector<std::string> ids = Between(page.body, "<UploadId>", "</UploadId>");
    ASSERT_EQ(keys.size(), ids.size());
    EXPECT_LE(keys.size(), 2u);
    for (size_t i = 0; i < keys.size(); ++i) listed.emplace_back(keys[i], ids[i]);
    if (Between(page.body, "<IsTruncated>", "</IsTruncated>").at(0) == "false") break;
    query["key-marker"] = Between(page.body, "<NextKeyMarker>", "</NextKeyMarker>").at(0);
    query["upload-id-marker"] =
        Between(page.body, "<NextUploadIdMarker>", "</NextUploadIdMarker>").at(0);
    EXPECT_EQ(query["key-marker"], keys.back());
    EXPECT_EQ(query["upload-id-marker"], ids.back());
  }
  EXPECT_EQ(pages + 1, 4);  // 2 + 2 + 2 + 1
  const std::vector<std::pair<std::string, std::string>> all_begun(begun.begin(), begun.end());
  EXPECT_EQ(listed, all_begun) << "each upload once, in key then upload id order";

  // The markers: after (b, its first id) comes its second; after b alone,
  // c; an upload id marker without a key marker means nothing.
  auto b = begun.lower_bound({"b", ""});
  const std::string b_first = b->second, b_second = std::next(b)->second;
  Answer after_pair = Call("GET", "media", "", "", {}, Root(),
                           {{"uploads", ""}, {"key-marker", "b"}, {"upload-id-marker", b_first}});
  EXPECT_EQ(Between(after_pair.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"b", "c", "d/e", "f", "f"}));
  EXPECT_EQ(Between(after_pair.body, "<UploadId>", "</UploadId>").at(0), b_second);
  EXPECT_EQ(Between(after_pair.body, "<UploadIdMarker>", "</UploadIdMarker>").at(0), b_first);
  Answer after_key =
      Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"key-marker", "b"}});
  EXPECT_EQ(Between(after_key.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"c", "d/e", "f", "f"}));
  Answer id_alone =
      Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"upload-id-marker", b_second}});
  EXPECT_EQ(Between(id_alone.body, "<Key>", "</Key>").size(), 7u);
  EXPECT_EQ(Between(id_alone.body, "<UploadIdMarker>", "</UploadIdMarker>").at(0), "");
  // The whole listing fits the default page: not truncated.
  Answer all = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}});
  EXPECT_EQ(Between(all.body, "<IsTruncated>", "</IsTruncated>").at(0), "false");
  EXPECT_EQ(Between(all.body, "<MaxUploads>", "</MaxUploads>").at(0), "1000");
  // An upload completed or aborted is no longer listed.
  ASSERT_EQ(Call("DELETE", "media", "c", "", {}, Root(),
                 {{"uploadId", begun.lower_bound({"c", ""})->second}}).status,
            204);
  Answer after_abort =
      Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"key-marker", "b"}});
  EXPECT_EQ(Between(after_abort.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"d/e", "f", "f"}));
}

TEST_F(S3HandlerTest, ListMultipartUploadsRollsKeysUpIntoCommonPrefixes) {
  for (const std::string key : {"logs/1", "logs/2", "pics/a/1", "readme", "tmp/x"}) {
    ASSERT_EQ(Call("POST", "media", key, "", {}, Root(), {{"uploads", ""}}).status, 200);
  }
  // Each common prefix counts once toward max-uploads, and a page that
  // ends on one resumes after it.
  std::vector<std::string> items;
  std::map<std::string, std::string> query = {
      {"uploads", ""}, {"delimiter", "/"}, {"max-uploads", "2"}};
  int pages = 0;
  for (; pages < 10; ++pages) {
    Answer page = Call("GET", "media", "", "", {}, Root(), query);
    ASSERT_EQ(page.status, 200) << page.body;
    EXPECT_EQ(Between(page.body, "<Delimiter>", "</Delimiter>").at(0), "/");
    std::vector<std::string> found = Between(page.body, "<Key>", "</Key>");
    for (const std::string& p : Between(page.body, "<CommonPrefixes><Prefix>", "</Prefix>")) {
      found.push_back(p);
    }
    EXPECT_LE(found.size(), 2u);
    std::sort(found.begin(), found.end());
    items.insert(items.end(), found.begin(), found.end());
    if (Between(page.body, "<IsTruncated>", "</IsTruncated>").at(0) == "false") break;
    query["key-marker"] = Between(page.body, "<NextKeyMarker>", "</NextKeyMarker>").at(0);
    query["upload-id-marker"] =
        Between(page.body, "<NextUploadIdMarker>", "</NextUploadIdMarker>").at(0);
  }
  EXPECT_EQ(pages + 1, 2);  // logs/ pics/ | readme tmp/
  EXPECT_EQ(items, (std::vector<std::string>{"logs/", "pics/", "readme", "tmp/"}));
  // Below a prefix.
  Answer pics = Call("GET", "media", "", "", {}, Root(),
                     {{"uploads", ""}, {"delimiter", "/"}, {"prefix", "pics/"}});
  EXPECT_EQ(Between(pics.body, "<CommonPrefixes><Prefix>", "</Prefix>"),
            std::vector<std::string>{"pics/a/"});
  EXPECT_TRUE(Between(pics.body, "<Key>", "</Key>").empty());
  Answer logs = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"prefix", "logs/"}});
  EXPECT_EQ(Between(logs.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"logs/1", "logs/2"}));
  EXPECT_EQ(Between(logs.body, "<Prefix>", "</Prefix>").at(0), "logs/");
  EXPECT_EQ(logs.body.find("<Delimiter>"), std::string::npos);
}

TEST_F(S3HandlerTest, ListMultipartUploadsUrlEncodesKeysWhenAsked) {
  ASSERT_EQ(Call("POST", "media", "my docs/r\xc3\xa9sum\xc3\xa9 & co", "", {}, Root(),
                 {{"uploads", ""}}).status,
            200);
  ASSERT_EQ(Call("POST", "media", "my docs/z", "", {}, Root(), {{"uploads", ""}}).status, 200);
  Answer encoded = Call("GET", "media", "", "", {}, Root(),
                        {{"uploads", ""}, {"encoding-type", "url"}, {"prefix", "my "},
                         {"key-marker", "my a"}, {"max-uploads", "1"}});
  ASSERT_EQ(encoded.status, 200) << encoded.body;
  EXPECT_EQ(Between(encoded.body, "<Key>", "</Key>"),
            std::vector<std::string>{"my%20docs/r%C3%A9sum%C3%A9%20%26%20co"});
  EXPECT_EQ(Between(encoded.body, "<Prefix>", "</Prefix>").at(0), "my%20");
  EXPECT_EQ(Between(encoded.body, "<KeyMarker>", "</KeyMarker>").at(0), "my%20a");
  EXPECT_EQ(Between(encoded.body, "<NextKeyMarker>", "</NextKeyMarker>").at(0),
            "my%20docs/r%C3%A9sum%C3%A9%20%26%20co");
  EXPECT_EQ(Between(encoded.body, "<EncodingType>", "</EncodingType>").at(0), "url");
  Answer rolled = Call("GET", "media", "", "", {}, Root(),
                       {{"uploads", ""}, {"encoding-type", "url"}, {"delimiter", " "}});
  EXPECT_EQ(Between(rolled.body, "<CommonPrefixes><Prefix>", "</Prefix>"),
            std::vector<std::string>{"my%20"});
  EXPECT_EQ(Between(rolled.body, "<Delimiter>", "</Delimiter>").at(0), "%20");
  // Without encoding-type, XML escapes only.
  Answer plain = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}});
  EXPECT_EQ(Between(plain.body, "<Key>", "</Key>").at(0), "my docs/r\xc3\xa9sum\xc3\xa9 &amp; co");
  EXPECT_EQ(plain.body.find("<EncodingType>"), std::string::npos);
  EXPECT_EQ(Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"encoding-type", "xml"}})
                .code,
            "InvalidArgument");
}

TEST_F(S3HandlerTest, ListMultipartUploadsRefusesABadMaxUploads) {
  ASSERT_EQ(Call("POST", "media", "k", "", {}, Root(), {{"uploads", ""}}).status, 200);
  for (const std::string bad : {"-1", "ten", "1.5", "99999999999999999999"}) {
    Answer answer =
        Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"max-uploads", bad}});
    EXPECT_EQ(answer.code, "InvalidArgument") << bad;
    EXPECT_NE(answer.body.find("max-uploads must be a whole number"), std::string::npos)
        << answer.body;
  }
  Answer many =
      Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"max-uploads", "5000"}});
  EXPECT_EQ(Between(many.body, "<MaxUploads>", "</MaxUploads>").at(0), "1000");
  EXPECT_EQ(Between(many.body, "<Key>", "</Key>").size(), 1u);
  Answer none = Call("GET", "media", "", "", {}, Root(), {{"uploads", ""}, {"max-uploads", "0"}});
  EXPECT_EQ(none.status, 200);
  EXPECT_TRUE(Between(none.body, "<Key>", "</Key>").empty());
  EXPECT_EQ(Between(none.body, "<IsTruncated>", "</IsTruncated>").at(0), "true");
}

// A body that runs `midway` once, after its first half is read.
class MidwayBody final : public BodyReader {
 public:
  MidwayBody(std::string data, std::function<void()> midway)
      : data_(std::move(data)), midway_(std::move(midway)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    if (at_ >= data_.size() / 2 && midway_) {
      std::function<void()> once = std::move(midway_);
      midway_ = nullptr;
      once();
    }
    size_t n = std::min({size, data_.size() - at_, std::max<size_t>(1, data_.size() / 2)});
    std::copy_n(data_.data() + at_, n, buffer);
    at_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t at_ = 0;
  std::function<void()> midway_;
};

TEST_F(S3HandlerTest, OfTwoUploadsOfAPartTheOneBegunLastWins) {
  Answer begun = Call("POST", "media", "k", "", {}, Root(), {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  const std::map<std::string, std::string> part1 = {{"partNumber", "1"}, {"uploadId", id}};
  std::string retry_etag;
  // The first try stalls; the client's retry of part 1 begins and ends
  // meanwhile; then the first try ends too.
  MidwayBody first_try(std::string(64, 'A'), [&] {
    retry_etag = Call("PUT", "media", "k", std::string(64, 'B'), {}, Root(), part1).headers["ETag"];
  });
  Answer late = Call("PUT", "media", "k", "", {}, Root(), part1, &first_try);
  ASSERT_EQ(late.status, 200);
  Answer done = Call("POST", "media", "k", CompletionXml({{1, retry_etag}}), {}, Root(),
                     {{"uploadId", id}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(Call("GET", "media", "k").body, std::string(64, 'B'));
}

TEST_F(S3HandlerTest, APutWhoseBucketGoesMidwayLeavesNothing) {
  const uint64_t inodes = Inodes();
  MidwayBody body(std::string(1 << 20, 'x'), [&] { EXPECT_EQ(Call("DELETE", "media", "").status, 204); });
  Answer put = Call("PUT", "media", "k", "", {}, Root(), {}, &body);
  EXPECT_EQ(put.code, "NoSuchBucket") << put.body;
  EXPECT_EQ(Inodes(), inodes - 1);  // the bucket's directory went; nothing came
}

TEST_F(S3HandlerTest, UploadPartCopyTakesARangeOfAnObject) {
  std::string source(7 << 20, 's');
  source[6 << 20] = 'S';
  ASSERT_EQ(Call("PUT", "media", "source", source).status, 200);
  Answer begun = Call("POST", "media", "copy", "", {}, Root(), {{"uploads", ""}});
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  Answer first = Call("PUT", "media", "copy", "",
                      {{"x-amz-copy-source", "media/source"},
                       {"x-amz-copy-source-range", "bytes=0-5242879"}},
                      Root(), {{"partNumber", "1"}, {"uploadId", id}});
  ASSERT_EQ(first.status, 200) << first.body;
  Answer second = Call("PUT", "media", "copy", "",
                       {{"x-amz-copy-source", "/media/source"},
                        {"x-amz-copy-source-range", "bytes=5242880-7340031"}},
                       Root(), {{"partNumber", "2"}, {"uploadId", id}});
  ASSERT_EQ(second.status, 200) << second.body;
  auto etag_of = [&](const Answer& a) {
    std::string etag = Between(a.body, "<ETag>", "</ETag>").at(0);
    return absl::StrReplaceAll(etag, {{"&quot;", "\""}});
  };
  Answer done = Call("POST", "media", "copy",
                     CompletionXml({{1, etag_of(first)}, {2, etag_of(second)}}), {}, Root(),
                     {{"uploadId", id}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_TRUE(Call("GET", "media", "copy").body == source);
  EXPECT_EQ(Call("PUT", "media", "copy", "",
                 {{"x-amz-copy-source", "media/source"},
                  {"x-amz-copy-source-range", "bytes=0-99999999"}},
                 Root(), {{"partNumber", "1"}, {"uploadId", "nope"}}).code,
            "NoSuchUpload");
}

// A body the server checked against a checksum the client sent.
class ChecksummedBody final : public BodyReader {
 public:
  ChecksummedBody(std::string data, std::pair<std::string, std::string> checksum)
      : body_(std::move(data)), checksum_(std::move(checksum)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    absl::StatusOr<size_t> n = body_.Read(buffer, size);
    if (n.ok() && *n == 0) done_ = true;
    return n;
  }
  std::optional<std::pair<std::string, std::string>> Checksum() const override {
    if (!done_) return std::nullopt;
    return checksum_;
  }

 private:
  StringBody body_;
  std::pair<std::string, std::string> checksum_;
  bool done_ = false;
};

TEST_F(S3HandlerTest, AChecksumSentWithAPutIsReturnedWhileTheObjectIsUnchanged) {
  ChecksummedBody body("hello world", {"x-amz-checksum-crc32", "DUoRhQ=="});
  Answer put = Call("PUT", "media", "sum.txt", "", {}, Root(), {}, &body);
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.headers["x-amz-checksum-crc32"], "DUoRhQ==");
  Answer asked = Call("HEAD", "media", "sum.txt", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(asked.headers["x-amz-checksum-crc32"], "DUoRhQ==");
  EXPECT_EQ(Call("HEAD", "media", "sum.txt").headers.count("x-amz-checksum-crc32"), 0u);

  // Changed through the mount: the checksum no longer describes it.
  absl::StatusOr<InodeAttr> file = Path("media/sum.txt");
  ASSERT_TRUE(fs().Open(file->ino, O_RDWR).ok());
  ASSERT_TRUE(fs().Write(file->ino, 0, "J").ok());
  SetAttrRequest times;
  times.mtime = Timespec{file->mtime.sec + 1, 0};
  ASSERT_TRUE(fs().SetAttr(file->ino, times).ok());
  fs().Release(file->ino, O_RDWR);
  Answer after = Call("GET", "media", "sum.txt", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(after.body, "Jello world");
  EXPECT_EQ(after.headers.count("x-amz-checksum-crc32"), 0u);
}

// CRC32 of 5 MiB of 'a' is r/zBbw==, of "hello world" DUoRhQ==; the
// upload's is CRC32 of the two raw CRCs one after the other (AWS's
// composite checksum), NSvTHQ==, and "-2" for its two parts.
TEST_F(S3HandlerTest, AMultipartUploadWithAChecksumAlgorithmGetsTheCompositeChecksum) {
  EXPECT_EQ(Call("POST", "media", "k", "", {{"x-amz-checksum-algorithm", "MD4"}}, Root(),
                 {{"uploads", ""}}).code,
            "InvalidRequest");
  Answer begun = Call("POST", "media", "k", "", {{"x-amz-checksum-algorithm", "CRC32"}}, Root(),
                      {{"uploads", ""}});
  ASSERT_EQ(begun.status, 200) << begun.body;
  EXPECT_EQ(begun.headers["x-amz-checksum-algorithm"], "CRC32");
  const std::string id = Between(begun.body, "<UploadId>", "</UploadId>").at(0);
  const std::map<std::string, std::string> part1 = {{"partNumber", "1"}, {"uploadId", id}};
  const std::map<std::string, std::string> part2 = {{"partNumber", "2"}, {"uploadId", id}};
  // Each part must carry the upload's checksum.
  EXPECT_EQ(Call("PUT", "media", "k", "hello world", {}, Root(), part2).code, "InvalidRequest");
  ChecksummedBody other("hello world", {"x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="});
  EXPECT_EQ(Call("PUT", "media", "k", "", {{"x-amz-checksum-sha1", "x"}}, Root(), part2, &other)
                .code,
            "InvalidRequest");
  ChecksummedBody first(std::string(5 << 20, 'a'), {"x-amz-checksum-crc32", "r/zBbw=="});
  Answer put1 = Call("PUT", "media", "k", "", {{"x-amz-checksum-crc32", "r/zBbw=="}}, Root(),
                     part1, &first);
  ASSERT_EQ(put1.status, 200) << put1.body;
  EXPECT_EQ(put1.headers["x-amz-checksum-crc32"], "r/zBbw==");
  // Part 2 copied from an object: the server computes its checksum.
  ASSERT_EQ(Call("PUT", "media", "hello", "hello world").status, 200);
  Answer put2 = Call("PUT", "media", "k", "", {{"x-amz-copy-source", "media/hello"}}, Root(),
                     part2);
  ASSERT_EQ(put2.status, 200) << put2.body;
  EXPECT_EQ(Between(put2.body, "<ChecksumCRC32>", "</ChecksumCRC32>"),
            std::vector<std::string>{"DUoRhQ=="});

  Answer parts = Call("GET", "media", "k", "", {}, Root(), {{"uploadId", id}});
  EXPECT_EQ(Between(parts.body, "<ChecksumCRC32>", "</ChecksumCRC32>"),
            (std::vector<std::string>{"r/zBbw==", "DUoRhQ=="}));
  EXPECT_EQ(Between(parts.body, "<ChecksumAlgorithm>", "</ChecksumAlgorithm>"),
            std::vector<std::string>{"CRC32"});
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());  // the checksums are kept

  const std::string e1 = put1.headers["ETag"];
  const std::string e2 = absl::StrReplaceAll(Between(put2.body, "<ETag>", "</ETag>").at(0),
                                             {{"&quot;", "\""}});
  auto completion = [&](const std::string& sum2) {
    return absl::StrCat("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>", e1,
                        "</ETag><ChecksumCRC32>r/zBbw==</ChecksumCRC32></Part><Part><PartNumber>2"
                        "</PartNumber><ETag>", e2, "</ETag><ChecksumCRC32>", sum2,
                        "</ChecksumCRC32></Part></CompleteMultipartUpload>");
  };
  EXPECT_EQ(Call("POST", "media", "k", completion("AAAAAA=="), {}, Root(), {{"uploadId", id}})
                .code,
            "InvalidPart");
  Answer done = Call("POST", "media", "k", completion("DUoRhQ=="), {}, Root(), {{"uploadId", id}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(Between(done.body, "<ChecksumCRC32>", "</ChecksumCRC32>"),
            std::vector<std::string>{"NSvTHQ==-2"});
  Answer head = Call("HEAD", "media", "k", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers["x-amz-checksum-crc32"], "NSvTHQ==-2");
  EXPECT_EQ(head.headers["x-amz-checksum-type"], "COMPOSITE");
  EXPECT_EQ(Call("HEAD", "media", "k").headers.count("x-amz-checksum-crc32"), 0u);
  EXPECT_TRUE(Call("GET", "media", "k").body == std::string(5 << 20, 'a') + "hello world");
  // Repeated after a restart, the Complete answers as the first, checksum
  // and all.
  ASSERT_NO_FATAL_FAILURE(CutThePowerAndMount());
  Answer again =
      Call("POST", "media", "k", completion("DUoRhQ=="), {}, Root(), {{"uploadId", id}});
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.body, done.body);

  // A copy is one part: it gets a full-object checksum, not the composite.
  Answer copied = Call("PUT", "media", "copy", "", {{"x-amz-copy-source", "media/k"}});
  ASSERT_EQ(copied.status, 200) << copied.body;
  EXPECT_EQ(Between(copied.body, "<ChecksumCRC32>", "</ChecksumCRC32>").size(), 0u);
  Answer copy_head = Call("HEAD", "media", "copy", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(copy_head.headers.count("x-amz-checksum-crc32"), 0u);
  EXPECT_EQ(copy_head.headers.count("x-amz-checksum-crc64nvme"), 1u);
  EXPECT_EQ(copy_head.headers["x-amz-checksum-type"], "FULL_OBJECT");
}

TEST_F(S3HandlerTest, ListBucketsNamesTopDirectoriesWithBucketNames) {
  absl::StatusOr<InodeAttr> root = fs().GetAttr(kRootInode);
  NewNode dir;
  dir.mode = S_IFDIR | 0755;
  ASSERT_TRUE(fs().MakeNode(kRootInode, "Not_A_Bucket", dir, Caller{0, 0}).ok());
  Answer list = Call("GET", "", "");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(Between(list.body, "<Name>", "</Name>"),
            (std::vector<std::string>{"alice-files", "media"}));
  EXPECT_EQ(Call("HEAD", "media", "").status, 200);
  EXPECT_EQ(Call("HEAD", "nothing-here", "").code, "NoSuchBucket");
  // us-east-1 answers its owner's second CreateBucket with success, and
  // changes nothing; another user's is refused.
  ASSERT_EQ(Call("PUT", "media", "k", "kept").status, 200);
  EXPECT_EQ(Call("PUT", "media", "").status, 200);
  EXPECT_EQ(Call("GET", "media", "k").body, "kept");
  EXPECT_EQ(Call("PUT", "alice-files", "").code, "BucketAlreadyExists");
  ASSERT_EQ(Call("PUT", "scratch", "").status, 200);
  EXPECT_EQ(Call("DELETE", "scratch", "").status, 204);
  EXPECT_FALSE(Path("scratch").ok());
}

// Values from a bit-at-a-time CRC-64/NVME and from sha256sum.
constexpr char kHelloCrc64[] = "jSnVw/bqjr4=";  // "hello world"
constexpr char kHelloSha256[] = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";

TEST_F(S3HandlerTest, APutWithoutAChecksumGetsACrc64nvme) {
  Answer put = Call("PUT", "media", "plain.txt", "hello world");
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.headers["x-amz-checksum-crc64nvme"], kHelloCrc64);
  EXPECT_EQ(put.headers["x-amz-checksum-type"], "FULL_OBJECT");
  Answer asked = Call("GET", "media", "plain.txt", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(asked.headers["x-amz-checksum-crc64nvme"], kHelloCrc64);
  EXPECT_EQ(asked.headers["x-amz-checksum-type"], "FULL_OBJECT");
  EXPECT_EQ(Call("HEAD", "media", "plain.txt").headers.count("x-amz-checksum-crc64nvme"), 0u);
  // An empty object's CRC is 0.
  Answer empty = Call("PUT", "media", "empty.txt", "");
  EXPECT_EQ(empty.headers["x-amz-checksum-crc64nvme"], "AAAAAAAAAAA=");

  // A client's own checksum is kept instead.
  ChecksummedBody body("hello world", {"x-amz-checksum-crc32", "DUoRhQ=="});
  Answer sent = Call("PUT", "media", "sent.txt", "", {{"x-amz-checksum-crc32", "DUoRhQ=="}},
                     Root(), {}, &body);
  EXPECT_EQ(sent.headers["x-amz-checksum-crc32"], "DUoRhQ==");
  EXPECT_EQ(sent.headers.count("x-amz-checksum-crc64nvme"), 0u);
  Answer head = Call("HEAD", "media", "sent.txt", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers["x-amz-checksum-crc32"], "DUoRhQ==");
  EXPECT_EQ(head.headers.count("x-amz-checksum-crc64nvme"), 0u);
}

TEST_F(S3HandlerTest, ACopyCarriesTheSourcesChecksumStampedForTheCopy) {
  ChecksummedBody body("hello world", {"x-amz-checksum-sha256", kHelloSha256});
  ASSERT_EQ(Call("PUT", "media", "source", "", {{"x-amz-checksum-sha256", kHelloSha256}}, Root(),
                 {}, &body).status,
            200);
  Answer copy = Call("PUT", "media", "copy", "", {{"x-amz-copy-source", "media/source"}});
  ASSERT_EQ(copy.status, 200) << copy.body;
  EXPECT_THAT(copy.body, ::testing::HasSubstr(absl::StrCat(
                             "<ChecksumSHA256>", kHelloSha256,
                             "</ChecksumSHA256><ChecksumType>FULL_OBJECT</ChecksumType>")));
  Answer head = Call("HEAD", "media", "copy", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers["x-amz-checksum-sha256"], kHelloSha256);
  // The stamp is the copy's own: it holds after the source changes.
  absl::StatusOr<InodeAttr> source = Path("media/source");
  ASSERT_TRUE(fs().Open(source->ino, O_RDWR).ok());
  ASSERT_TRUE(fs().Write(source->ino, 0, "J").ok());
  SetAttrRequest times;
  times.mtime = Timespec{source->mtime.sec + 1, 0};
  ASSERT_TRUE(fs().SetAttr(source->ino, times).ok());
  fs().Release(source->ino, O_RDWR);
  head = Call("HEAD", "media", "copy", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers["x-amz-checksum-sha256"], kHelloSha256);

  // The changed source has no checksum any more: its copy gets a CRC64NVME
  // of the bytes it holds.
  ASSERT_EQ(Call("PUT", "media", "copy2", "", {{"x-amz-copy-source", "media/source"}}).status,
            200);
  head = Call("HEAD", "media", "copy2", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers.count("x-amz-checksum-sha256"), 0u);
  Answer jello = Call("PUT", "media", "jello", "Jello world");
  EXPECT_EQ(head.headers["x-amz-checksum-crc64nvme"], jello.headers["x-amz-checksum-crc64nvme"]);
  EXPECT_FALSE(head.headers["x-amz-checksum-crc64nvme"].empty());
}

TEST_F(S3HandlerTest, ACopyComputesTheChecksumTheRequestNames) {
  ASSERT_EQ(Call("PUT", "media", "source", "hello world").status, 200);
  Answer copy = Call(
      "PUT", "media", "copy", "",
      {{"x-amz-copy-source", "media/source"}, {"x-amz-checksum-algorithm", "SHA256"}});
  ASSERT_EQ(copy.status, 200) << copy.body;
  EXPECT_THAT(copy.body, ::testing::HasSubstr(absl::StrCat("<ChecksumSHA256>", kHelloSha256,
                                                           "</ChecksumSHA256>")));
  Answer head = Call("HEAD", "media", "copy", "", {{"x-amz-checksum-mode", "ENABLED"}});
  EXPECT_EQ(head.headers["x-amz-checksum-sha256"], kHelloSha256);
  EXPECT_EQ(head.headers.count("x-amz-checksum-crc64nvme"), 0u);
  copy = Call("PUT", "media", "copy64", "",
              {{"x-amz-copy-source", "media/source"}, {"x-amz-checksum-algorithm", "crc64nvme"}});
  EXPECT_THAT(copy.body, ::testing::HasSubstr(absl::StrCat("<ChecksumCRC64NVME>", kHelloCrc64,
                                                           "</ChecksumCRC64NVME>")));
  EXPECT_EQ(Call("PUT", "media", "bad", "",
                 {{"x-amz-copy-source", "media/source"}, {"x-amz-checksum-algorithm", "MD5"}})
                .code,
            "InvalidRequest");
}

TEST_F(S3HandlerTest, ListBucketsPagesWithMaxBucketsAndAContinuationToken) {
  for (const char* name : {"b-one", "b-three", "b-two"}) {
    ASSERT_EQ(Call("PUT", name, "").status, 200);
  }
  // alice-files, b-one, b-three, b-two, media
  std::vector<std::string> names;
  std::map<std::string, std::string> query = {{"max-buckets", "2"}};
  int pages = 0;
  for (;; ++pages) {
    ASSERT_LT(pages, 10);
    Answer page = Call("GET", "", "", "", {}, Root(), query);
    ASSERT_EQ(page.status, 200) << page.body;
    std::vector<std::string> got = Between(page.body, "<Name>", "</Name>");
    EXPECT_LE(got.size(), 2u);
    names.insert(names.end(), got.begin(), got.end());
    std::vector<std::string> token =
        Between(page.body, "<ContinuationToken>", "</ContinuationToken>");
    if (token.empty()) break;
    query["continuation-token"] = token[0];
  }
  EXPECT_EQ(pages, 2);  // the third page is the last: no token on it
  EXPECT_EQ(names,
            (std::vector<std::string>{"alice-files", "b-one", "b-three", "b-two", "media"}));
  // A page that ends exactly at the last bucket has no token either.
  Answer all = Call("GET", "", "", "", {}, Root(), {{"max-buckets", "5"}});
  EXPECT_EQ(all.body.find("<ContinuationToken>"), std::string::npos) << all.body;

  Answer prefixed = Call("GET", "", "", "", {}, Root(), {{"prefix", "b-t"}, {"max-buckets", "1"}});
  EXPECT_EQ(Between(prefixed.body, "<Name>", "</Name>"), (std::vector<std::string>{"b-three"}));
  EXPECT_EQ(Between(prefixed.body, "<Prefix>", "</Prefix>"), (std::vector<std::string>{"b-t"}));
  EXPECT_EQ(Between(prefixed.body, "<ContinuationToken>", "</ContinuationToken>"),
            (std::vector<std::string>{"b-three"}));
  EXPECT_THAT(prefixed.body, ::testing::HasSubstr("<BucketRegion>us-east-1</BucketRegion>"));

  Answer here = Call("GET", "", "", "", {}, Root(), {{"bucket-region", "us-east-1"}});
  EXPECT_EQ(Between(here.body, "<Name>", "</Name>").size(), 5u);
  Answer elsewhere = Call("GET", "", "", "", {}, Root(), {{"bucket-region", "eu-west-1"}});
  ASSERT_EQ(elsewhere.status, 200);
  EXPECT_TRUE(Between(elsewhere.body, "<Name>", "</Name>").empty());

  for (const char* bad : {"0", "10001", "-1", "many"}) {
    EXPECT_EQ(Call("GET", "", "", "", {}, Root(), {{"max-buckets", bad}}).code, "InvalidArgument")
        << bad;
  }
}

// XML 1.0 has no raw control characters, and a parser turns a raw CR
// into LF: they go as character references.
TEST_F(S3HandlerTest, AListingWritesControlCharactersAsReferences) {
  ASSERT_EQ(Call("PUT", "media", "a\rb\x01" "c\td", "x").status, 200);
  Answer plain = Call("GET", "media", "", "", {}, Root(), {{"list-type", "2"}});
  EXPECT_EQ(Between(plain.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"a&#13;b&#1;c\td"}));
  Answer encoded =
      Call("GET", "media", "", "", {}, Root(), {{"list-type", "2"}, {"encoding-type", "url"}});
  EXPECT_EQ(Between(encoded.body, "<Key>", "</Key>"),
            (std::vector<std::string>{"a%0Db%01c%09d"}));
}

// Metadata values are bytes: what a PUT sends, UTF-8 (as boto3 sends
// text) or not, comes back as it came.
TEST_F(S3HandlerTest, MetadataValuesRoundTripByteForByte) {
  const std::string latin1 = "Hello World\xe9";
  const std::string utf8 = "h\xc3\xa9llo \xe2\x82\xac";
  ASSERT_EQ(Call("PUT", "media", "meta", "x",
                 {{"x-amz-meta-meta1", latin1}, {"x-amz-meta-meta2", utf8}}).status,
            200);
  Answer head = Call("HEAD", "media", "meta");
  EXPECT_EQ(head.headers["x-amz-meta-meta1"], latin1);
  EXPECT_EQ(head.headers["x-amz-meta-meta2"], utf8);
}

}  // namespace
}  // namespace cairn::frontend
