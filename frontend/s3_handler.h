// The S3 operations over the volume's FileSystem, apart from HTTP: the
// server (s3_server.cc) parses a request, authenticates it and hands it
// here; tests call Handle directly. Every operation acts as the key's uid
// and gid and checks the mode bits itself, so S3 grants no more than the
// mount does (the kernel checks only the mount's users).
//
// Promises:
// - A PUT's object appears whole or not at all: the body is cut into blobs
//   as it comes, committed to a file with no name (FileSystem::StreamInto:
//   no journal, each byte written to disk once), which is then named in
//   one namespace commit, synced before the answer (FileSystem::Publish).
//   A failed or interrupted PUT leaves nothing; a crash before the commit
//   leaves an orphan the next mount frees.
// - What S3 changes, the mount sees at once: the kernel is told to forget
//   the names it cached (Options::forget_name).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fs/file_system.h"
#include "frontend/s3_auth.h"
#include "frontend/s3_names.h"

namespace cairn::frontend {

// A request body, already decoded (aws-chunked framing removed) and, where
// the request was signed or carried a trailing checksum, checked as it is
// read: Read returns 0 at the end, or an error (BadDigest,
// XAmzContentSHA256Mismatch, IncompleteBody) when what came does not match,
// before it returns 0.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual absl::StatusOr<size_t> Read(char* buffer, size_t size) = 0;
  // The x-amz-checksum-* header and value the whole body was checked
  // against (sent as a header or a trailer), once Read returned 0.
  virtual std::optional<std::pair<std::string, std::string>> Checksum() const {
    return std::nullopt;
  }
};

struct S3Request {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string bucket;  // empty: the service (ListBuckets)
  std::string key;     // empty: the bucket itself
  std::map<std::string, std::string> query;    // decoded names and values
  std::map<std::string, std::string> headers;  // names in lower case
  S3Key key_owner;                             // who signed it
  BodyReader* body = nullptr;                  // never null for PUT and POST
};

struct S3Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // small bodies (XML)
  // A streamed body of `stream_length` bytes (GET of an object): called
  // until it returns an empty string. `headers` then hold no Content-Length.
  std::function<absl::StatusOr<std::string>()> stream;
  uint64_t stream_length = 0;
};

class S3Handler {
 public:
  struct Options {
    std::string region = "us-east-1";
    // Tells the kernel to drop a cached name (fuse_lowlevel_notify_inval_entry);
    // unset when nothing is mounted.
    std::function<void(InodeId parent, const std::string& name)> forget_name;
    // Largest PUT body, and largest part of a multipart upload.
    uint64_t max_object_bytes = 5ull << 30;
    // A multipart upload not completed or aborted within this long is
    // aborted (its parts freed) when the handler starts or the next
    // upload starts.
    absl::Duration multipart_expiry = absl::Hours(24 * 7);
    // The smallest part but the last (S3's rule; tests lower it).
    uint64_t min_part_bytes = 5ull << 20;
  };
  // Loads the multipart uploads the namespace keeps, aborting the expired.
  S3Handler(FileSystem& fs, Options options);

  // The answer to one request; errors are S3Error statuses (or others,
  // which the server answers with 500).
  absl::StatusOr<S3Response> Handle(const S3Request& request);

 private:
  absl::StatusOr<S3Response> ListBuckets(const S3Request& request);
  absl::StatusOr<S3Response> BucketOperation(const S3Request& request);
  absl::StatusOr<S3Response> ObjectOperation(const S3Request& request);
  absl::StatusOr<S3Response> ListObjects(const S3Request& request, InodeAttr bucket);
  absl::StatusOr<S3Response> PutObject(const S3Request& request, InodeAttr bucket);
  absl::StatusOr<S3Response> GetObject(const S3Request& request, InodeAttr bucket,
                                       bool head);
  absl::StatusOr<S3Response> DeleteObject(const S3Request& request, InodeAttr bucket);
  absl::StatusOr<S3Response> DeleteObjects(const S3Request& request, InodeAttr bucket);
  absl::StatusOr<S3Response> CopyObject(const S3Request& request, InodeAttr bucket);
  // Multipart uploads (s3_multipart.cc).
  absl::StatusOr<S3Response> CreateMultipartUpload(const S3Request& request,
                                                   const InodeAttr& bucket);
  absl::StatusOr<S3Response> UploadPart(const S3Request& request, const InodeAttr& bucket);
  absl::StatusOr<S3Response> CompleteMultipartUpload(const S3Request& request,
                                                     const InodeAttr& bucket);
  absl::StatusOr<S3Response> AbortMultipartUpload(const S3Request& request);
  absl::StatusOr<S3Response> ListParts(const S3Request& request);
  absl::StatusOr<S3Response> ListMultipartUploads(const S3Request& request);

  // The conditions of a conditional delete, against the object now.
  absl::Status CheckDeleteConditions(const S3Request& request, const InodeAttr& found);
  // After a delete: removes the directories on `path` left empty, deepest
  // first, up to the bucket, stopping at one that is a directory object or
  // holds anything (or that the key may not remove).
  void PruneEmptyParents(const InodeAttr& bucket, const KeyPath& path, const S3Key& who);

  // x-amz-copy-source's file, readable by the key and passing the
  // x-amz-copy-source-if-* conditions; with `allow_directory`, also a
  // "dir/" key's directory.
  absl::StatusOr<InodeAttr> CopySource(const S3Request& request, bool allow_directory = false);
  // A copy of an object onto itself with x-amz-metadata-directive:
  // REPLACE (how s3fs and others chmod, touch or retag): only the stored
  // headers change, the bytes and the inode stay.
  absl::StatusOr<S3Response> ReplaceMetadataInPlace(const S3Request& request,
                                                    const InodeAttr& object);
  // Sets `ino`'s stored headers (content type, x-amz-meta-*, kept
  // headers) to the request's, dropping the ones it does not send.
  absl::Status ReplaceStoredHeaders(InodeId ino, const S3Request& request);

  // The bucket's directory, if the key may reach it.
  absl::StatusOr<InodeAttr> OpenBucket(const S3Request& request);
  // Makes a nameless file, has `fill` write its data (returning the
  // object's ETag, unquoted), and names it `key` in `bucket`, making the
  // directories on the way. `body`: the request's, read only to refuse
  // data for a "dir/" key.
  struct Written {
    InodeAttr attr;
    std::string etag;  // unquoted
  };
  using Fill = std::function<absl::StatusOr<std::string>(InodeId)>;
  // With `upload_id`, the name is given in the commit that ends that
  // multipart upload (FileSystem::PublishUpload).
  absl::StatusOr<Written> WriteObject(const S3Request& request, const InodeAttr& bucket,
                                      const std::string& key, BodyReader* body,
                                      const Fill& fill, const std::string& upload_id = "");
  // Streams `body` into the empty nameless file, straight into blobs, and
  // checks it (length, Content-MD5); returns its MD5 in hex once every
  // byte is in durable blobs committed as the file's extents.
  absl::StatusOr<std::string> StreamBody(InodeId ino, const S3Request& request,
                                         BodyReader& body, uint64_t expected_length);

  FileSystem& fs_;
  const Options options_;

  // Uploads under way. Each is a record in the namespace (synced before
  // an answer names it: FileSystem::BeginUpload, AddUploadPart), whose
  // parts are nameless files it holds, so an upload survives a restart or
  // a crash. Here is only a small index of them (no parts, no headers),
  // loaded from the namespace at start, for the checks every request
  // makes; kMaxUploads bounds it.
  struct Upload {
    std::string bucket, key;
    S3Key owner;  // access key, uid and gid only
    absl::Time initiated;
    std::string checksum_header;  // "x-amz-checksum-crc32c" and the like, or empty
    bool ending = false;          // being completed or aborted
  };
  absl::Mutex uploads_mu_;
  bool uploads_loaded_ ABSL_GUARDED_BY(uploads_mu_) = false;
  uint64_t part_uploads_begun_ ABSL_GUARDED_BY(uploads_mu_) = 0;
  std::map<std::string, Upload> uploads_ ABSL_GUARDED_BY(uploads_mu_);
  // Part uploads in flight, per upload and part number: of two uploads of
  // one part, the one begun last is the part, whichever ends last.
  struct PartSlot {
    int in_flight = 0;
    uint64_t recorded_begun = 0;  // of the part recorded last
  };
  std::map<std::pair<std::string, int>, PartSlot> part_slots_ ABSL_GUARDED_BY(uploads_mu_);
  // Reads the index from the namespace, once, and aborts the expired.
  absl::Status LoadUploads() ABSL_EXCLUSIVE_LOCKS_REQUIRED(uploads_mu_);
  // Aborts the uploads begun more than options_.multipart_expiry ago.
  void AbortExpiredUploads() ABSL_LOCKS_EXCLUDED(uploads_mu_);
  // The upload `request` names (uploadId), if it is the requester's and
  // for the request's key.
  absl::StatusOr<Upload*> FindUpload(const S3Request& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(uploads_mu_);
  // The last completions, so that a repeated Complete answers as the first.
  // A restart forgets them; a repeat then finds the upload's id kept with
  // the object it made (CompletionKeptWith), while the object is that one.
  struct Completed {
    std::string bucket, key, etag;
    std::optional<std::pair<std::string, std::string>> checksum;
  };
  // The completion of upload `id`, if the object at the request's key is
  // still the one that upload made (unchanged since); nullopt else.
  absl::StatusOr<std::optional<Completed>> CompletionKeptWith(const S3Request& request,
                                                               const InodeAttr& bucket,
                                                               const std::string& id);
  static constexpr size_t kRememberedCompletions = 1000;
  std::map<std::string, Completed> completed_ ABSL_GUARDED_BY(uploads_mu_);
  std::deque<std::string> completed_order_ ABSL_GUARDED_BY(uploads_mu_);
  static S3Response CompletionAnswer(const S3Request& request, const Completed& done);
};

}  // namespace cairn::frontend
