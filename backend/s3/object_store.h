// A bucket of objects, as cairn uses one: the seam between cairn and S3.
// The libcurl client (s3_client.h) is the real one; tests use an in-memory
// store that can fail, stall or answer short (tests/support/
// fake_object_store.h), so outages of the remote tier and the replica are
// tested without a server.
//
// Keys are the whole object names; a prefix listing returns every key that
// starts with it, in key order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/s3/s3_options.h"
#include "backend/s3/s3_xml.h"

namespace cairn::s3 {

struct ObjectInfo {
  uint64_t size = 0;
  std::string etag;
};

// One page of a listing (ObjectStore::ListObjectsPage).
struct ObjectPage {
  std::vector<ObjectEntry> objects;
  bool truncated = false;  // more keys follow the last one
  // The server's clock when it answered (its Date header), Unix seconds;
  // 0 when unknown. With ObjectEntry::last_modified it tells an object's
  // age by one clock, whatever the host's says.
  int64_t server_time = 0;
};

// What a store has done, for cairn status and the metrics.
struct ObjectStoreStats {
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t failures = 0;  // requests that failed after all attempts
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Stores `data` as `key`; with `crc32c`, the store checks the body
  // against it. All or nothing: a failed put leaves no partial object.
  virtual absl::Status PutObject(const std::string& key, std::string_view data,
                                 std::optional<uint32_t> crc32c = std::nullopt) = 0;
  // The whole object, or `length` bytes at `offset` (fewer only where the
  // object ends first, and only with `allow_short`). kNotFound when absent.
  virtual absl::StatusOr<std::string> GetObject(
      const std::string& key,
      std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt,
      bool allow_short = false) = 0;
  // kNotFound when absent.
  virtual absl::StatusOr<ObjectInfo> HeadObject(const std::string& key) = 0;
  // Absent objects are not an error.
  virtual absl::Status DeleteObject(const std::string& key) = 0;
  virtual absl::Status DeleteObjects(const std::vector<std::string>& keys) = 0;
  // Every object under `prefix`, all pages.
  virtual absl::StatusOr<std::vector<ObjectEntry>> ListObjects(const std::string& prefix) = 0;
  // One page: at most `max_keys` objects under `prefix` whose keys sort
  // after `start_after` ("": from the first), in key order, so a caller
  // walks a large bucket holding one page at a time. This fallback lists
  // everything for each page and knows no server time; stores that can
  // page override it.
  virtual absl::StatusOr<ObjectPage> ListObjectsPage(const std::string& prefix,
                                                     const std::string& start_after,
                                                     int max_keys) {
    absl::StatusOr<std::vector<ObjectEntry>> all = ListObjects(prefix);
    if (!all.ok()) return all.status();
    ObjectPage page;
    for (ObjectEntry& entry : *all) {
      if (entry.key <= start_after) continue;
      if (static_cast<int>(page.objects.size()) >= max_keys) {
        page.truncated = true;
        break;
      }
      page.objects.push_back(std::move(entry));
    }
    return page;
  }
  // The "directories" right under `prefix`: the distinct key prefixes up
  // to the next '/' (ListObjectsV2 with delimiter "/"), all pages.
  virtual absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) = 0;
  // Multipart uploads under `prefix` that were started and never completed
  // or aborted.
  virtual absl::StatusOr<std::vector<MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) = 0;
  virtual absl::Status AbortMultipartUpload(const std::string& key,
                                            const std::string& upload_id) = 0;

  virtual ObjectStoreStats GetStats() = 0;
};

// Opens the bucket that `options` names: how every layer gets its object
// stores, so a test can hand out in-memory ones instead.
class ObjectStoreFactory {
 public:
  virtual ~ObjectStoreFactory() = default;
  // The libcurl client.
  static ObjectStoreFactory* Default();
  virtual absl::StatusOr<std::unique_ptr<ObjectStore>> Open(const S3Options& options) = 0;
};

}  // namespace cairn::s3
