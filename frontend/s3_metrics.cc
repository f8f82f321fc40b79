#include "frontend/s3_metrics.h"

namespace cairn::frontend {

const char* S3OpName(S3Op op) {
  switch (op) {
    case S3Op::kListBuckets: return "ListBuckets";
    case S3Op::kCreateBucket: return "CreateBucket";
    case S3Op::kDeleteBucket: return "DeleteBucket";
    case S3Op::kHeadBucket: return "HeadBucket";
    case S3Op::kGetBucketLocation: return "GetBucketLocation";
    case S3Op::kGetBucketVersioning: return "GetBucketVersioning";
    case S3Op::kListObjects: return "ListObjects";
    case S3Op::kListObjectsV2: return "ListObjectsV2";
    case S3Op::kListObjectVersions: return "ListObjectVersions";
    case S3Op::kListMultipartUploads: return "ListMultipartUploads";
    case S3Op::kPutObject: return "PutObject";
    case S3Op::kCopyObject: return "CopyObject";
    case S3Op::kGetObject: return "GetObject";
    case S3Op::kHeadObject: return "HeadObject";
    case S3Op::kDeleteObject: return "DeleteObject";
    case S3Op::kDeleteObjects: return "DeleteObjects";
    case S3Op::kCreateMultipartUpload: return "CreateMultipartUpload";
    case S3Op::kUploadPart: return "UploadPart";
    case S3Op::kUploadPartCopy: return "UploadPartCopy";
    case S3Op::kCompleteMultipartUpload: return "CompleteMultipartUpload";
    case S3Op::kAbortMultipartUpload: return "AbortMultipartUpload";
    case S3Op::kListParts: return "ListParts";
    case S3Op::kOther:
    case S3Op::kCount: break;
  }
  return "other";
}

S3Op ClassifyS3Request(const S3Request& r) {
  auto has = [&](const char* name) { return r.query.count(name) > 0; };
  const std::string& m = r.method;
  if (r.bucket.empty()) return m == "GET" ? S3Op::kListBuckets : S3Op::kOther;
  if (r.key.empty()) {
    if (m == "PUT" && r.query.empty()) return S3Op::kCreateBucket;
    if (m == "DELETE" && r.query.empty()) return S3Op::kDeleteBucket;
    if (m == "HEAD") return S3Op::kHeadBucket;
    if (m == "POST" && has("delete")) return S3Op::kDeleteObjects;
    if (m != "GET") return S3Op::kOther;
    if (has("location")) return S3Op::kGetBucketLocation;
    if (has("versioning")) return S3Op::kGetBucketVersioning;
    if (has("uploads")) return S3Op::kListMultipartUploads;
    if (has("versions")) return S3Op::kListObjectVersions;
    auto type = r.query.find("list-type");
    if (type != r.query.end() && type->second == "2") return S3Op::kListObjectsV2;
    return S3Op::kListObjects;
  }
  const bool copy = r.headers.count("x-amz-copy-source") > 0;
  if (m == "POST" && has("uploads")) return S3Op::kCreateMultipartUpload;
  if (has("uploadId")) {
    if (m == "PUT") return copy ? S3Op::kUploadPartCopy : S3Op::kUploadPart;
    if (m == "POST") return S3Op::kCompleteMultipartUpload;
    if (m == "DELETE") return S3Op::kAbortMultipartUpload;
    if (m == "GET") return S3Op::kListParts;
    return S3Op::kOther;
  }
  if (m == "PUT") return copy ? S3Op::kCopyObject : S3Op::kPutObject;
  if (m == "GET") return S3Op::kGetObject;
  if (m == "HEAD") return S3Op::kHeadObject;
  if (m == "DELETE") return S3Op::kDeleteObject;
  return S3Op::kOther;
}

}  // namespace cairn::frontend
