// The remote objects and multipart uploads of a volume that nothing claims,
// for cairn fsck (and its --repair).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/s3/object_store.h"

namespace cairn {

// Remote objects of this volume that no blob record claims: a blob with no
// record (deleted while its move was under way), or one recorded as local
// only (a crash between upload and commit). Multipart uploads never
// completed under the volume's prefix count too. With `remove`, deletes
// them. Safe only while nothing moves blobs: the volume must be locked (not
// mounted), or a move's upload in flight would look unclaimed.
struct UnclaimedRemote {
  uint64_t objects = 0;
  uint64_t uploads = 0;
  bool uploads_listed = true;  // false: the server cannot list uploads
};
absl::StatusOr<UnclaimedRemote> SweepUnclaimedRemote(NamespaceStore& ns, RemoteBlobStore& remote,
                                                     s3::ObjectStore& client, bool remove,
                                                     std::vector<std::string>* lines,
                                                     size_t max_lines = 20);

}  // namespace cairn
