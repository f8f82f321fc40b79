#include "frontend/s3_error.h"

#include <gtest/gtest.h>

namespace cairn::frontend {
namespace {

TEST(S3ErrorTest, AStatusCarriesItsCodeNameAndHttpStatus) {
  absl::Status status = S3Error(S3ErrorCode::kNoSuchKey, "no object at photos/a.jpg");
  EXPECT_EQ(S3ErrorCodeOf(status), S3ErrorCode::kNoSuchKey);
  EXPECT_EQ(S3ErrorName(S3ErrorCodeOf(status)), "NoSuchKey");
  EXPECT_EQ(S3ErrorHttpStatus(S3ErrorCodeOf(status)), 404);
  EXPECT_EQ(status.message(), "no object at photos/a.jpg");
}

TEST(S3ErrorTest, AFailureWithoutACodeIsAnInternalError) {
  absl::Status status = absl::DataLossError("shard checksum mismatch");
  EXPECT_EQ(S3ErrorCodeOf(status), S3ErrorCode::kInternalError);
  EXPECT_EQ(S3ErrorHttpStatus(S3ErrorCodeOf(status)), 500);
}

}  // namespace
}  // namespace cairn::frontend
