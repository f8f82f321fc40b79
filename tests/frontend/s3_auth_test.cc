#include "frontend/s3_auth.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "backend/s3/sigv4.h"
#include "frontend/s3_error.h"
#include "tests/support/temp_dir.h"

namespace cairn::frontend {
namespace {

// The credentials, bucket and time of AWS's published SigV4 examples.
constexpr char kAccessKey[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kSecretKey[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kExampleHost[] = "examplebucket.s3.amazonaws.com";
constexpr char kExampleAmzDate[] = "20130524T000000Z";
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

absl::Time ExampleTime() {
  return absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());
}

// "OK" or the S3 code's name, so that a failure shows both sides readably.
std::string CodeOf(const absl::Status& status) {
  return status.ok() ? "OK" : std::string(S3ErrorName(S3ErrorCodeOf(status)));
}

std::string Hex(std::string_view bytes) {
  std::string hex;
  for (unsigned char c : bytes) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

std::string RawHmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

std::string HmacHex(std::string_view key, std::string_view data) { return Hex(RawHmac(key, data)); }

std::string ExampleAuthorization(const std::string& signed_headers, const std::string& signature) {
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", kAccessKey,
                      "/20130524/us-east-1/s3/aws4_request,SignedHeaders=", signed_headers,
                      ",Signature=", signature);
}

void SetHeader(SignedRequest& request, std::string_view name, std::string_view value) {
  for (auto& [header_name, header_value] : request.headers) {
    if (header_name == name) {
      header_value = std::string(value);
      return;
    }
  }
  request.headers.emplace_back(name, value);
}

void RemoveHeader(SignedRequest& request, std::string_view name) {
  std::erase_if(request.headers, [&](const auto& header) { return header.first == name; });
}

// AWS example: GET Object, the first ten bytes of examplebucket/test.txt.
SignedRequest GetObjectExample() {
  return SignedRequest{
      "GET",
      "/test.txt",
      {{"Host", kExampleHost},
       {"Range", "bytes=0-9"},
       {"x-amz-content-sha256", kEmptySha256},
       {"x-amz-date", kExampleAmzDate},
       {"Authorization",
        ExampleAuthorization("host;range;x-amz-content-sha256;x-amz-date",
                             "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")}}};
}

// AWS example: PUT Object "test$file.text" with "Welcome to Amazon S3." and
// both a Date and an x-amz-date header.
SignedRequest PutObjectExample(std::string target) {
  return SignedRequest{
      "PUT",
      std::move(target),
      {{"Host", kExampleHost},
       {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
       {"x-amz-date", kExampleAmzDate},
       {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
       {"x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
       {"Authorization",
        ExampleAuthorization("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                             "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")}}};
}

// AWS examples of bucket requests: GET ?lifecycle and GET ?max-keys=2&prefix=J.
SignedRequest BucketGetExample(std::string target, const std::string& signature) {
  return SignedRequest{
      "GET",
      std::move(target),
      {{"Host", kExampleHost},
       {"x-amz-content-sha256", kEmptySha256},
       {"x-amz-date", kExampleAmzDate},
       {"Authorization", ExampleAuthorization("host;x-amz-content-sha256;x-amz-date", signature)}}};
}

constexpr char kPresignedSignature[] =
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

// AWS example: a presigned URL for GET examplebucket/test.txt, valid a day.
SignedRequest PresignedExample(const std::string& signature = kPresignedSignature,
                               const std::string& expires = "86400") {
  return SignedRequest{
      "GET",
      absl::StrCat("/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=", kAccessKey,
                   "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
                   "&X-Amz-Expires=",
                   expires, "&X-Amz-SignedHeaders=host&X-Amz-Signature=", signature),
      {{"Host", kExampleHost}}};
}

// AWS example: PUT examplebucket/chunkObject.txt, 66560 bytes of 'a' sent as
// aws-chunked in 64 KiB chunks.
constexpr char kChunkedSeedSignature[] =
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

SignedRequest ChunkedUploadExample() {
  return SignedRequest{
      "PUT",
      "/examplebucket/chunkObject.txt",
      {{"Host", "s3.amazonaws.com"},
       {"x-amz-date", kExampleAmzDate},
       {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
       {"Authorization",
        ExampleAuthorization("content-encoding;content-length;host;x-amz-content-sha256;"
                             "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
                             kChunkedSeedSignature)},
       {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
       {"Content-Encoding", "aws-chunked"},
       {"x-amz-decoded-content-length", "66560"},
       {"Content-Length", "66824"}}};
}

std::string ChunkedUploadExampleBody() {
  return absl::StrCat(
      "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n",
      std::string(65536, 'a'), "\r\n",
      "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
      std::string(1024, 'a'), "\r\n",
      "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n",
      "\r\n");
}

class S3AuthTest : public testing::Test {
 protected:
  void SetUp() override { WriteKeys(absl::StrCat(kAccessKey, " ", kSecretKey, " 1000 1000\n")); }

  // Rewrites the keys file in place (same inode), as an editor would.
  void WriteKeys(std::string_view text, mode_t mode = 0600) {
    int fd = open(keys_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << keys_path_;
    ASSERT_EQ(fchmod(fd, mode), 0);
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ASSERT_EQ(close(fd), 0);
  }

  absl::StatusOr<Authenticated> Check(const SignedRequest& request, absl::Time now = ExampleTime(),
                                      std::string_view region = "us-east-1") {
    return Authenticate(request, keys_, region, now);
  }

  TempDir dir_;
  std::string keys_path_ = dir_.path() + "/s3-keys";
  KeysFile keys_{keys_path_};
};

// --- AWS's published examples ----------------------------------------------

TEST_F(S3AuthTest, AwsExampleGetObjectWithRangeVerifies) {
  absl::StatusOr<Authenticated> auth = Check(GetObjectExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->key.access_key, kAccessKey);
  EXPECT_EQ(auth->key.uid, 1000u);
  EXPECT_EQ(auth->payload, PayloadKind::kSha256);
  EXPECT_EQ(auth->payload_sha256, kEmptySha256);
}

TEST_F(S3AuthTest, AwsExamplePutObjectVerifiesWhicheverWayTheDollarIsSent) {
  for (std::string target : {"/test$file.text", "/test%24file.text", "/test%24file%2Etext"}) {
    absl::StatusOr<Authenticated> auth = Check(PutObjectExample(target));
    ASSERT_TRUE(auth.ok()) << target << ": " << auth.status();
    EXPECT_EQ(auth->payload, PayloadKind::kSha256);
    EXPECT_EQ(auth->payload_sha256,
              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  }
  // A different key is a different object: not what was signed.
  EXPECT_EQ(CodeOf(Check(PutObjectExample("/test%25file.text")).status()), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, AwsExampleGetBucketLifecycleVerifies) {
  absl::StatusOr<Authenticated> auth = Check(BucketGetExample(
      "/?lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
  EXPECT_TRUE(auth.ok()) << auth.status();
  // "?lifecycle=" means the same as "?lifecycle".
  auth = Check(BucketGetExample(
      "/?lifecycle=", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
  EXPECT_TRUE(auth.ok()) << auth.status();
  auth = Check(BucketGetExample(
      "/?policy", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
  EXPECT_EQ(CodeOf(auth.status()), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, AwsExampleListObjectsVerifiesWithParametersInAnyOrder) {
  constexpr char kSignature[] = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
  for (std::string target :
       {"/?max-keys=2&prefix=J", "/?prefix=J&max-keys=2", "/?max-keys=2&prefix=%4A"}) {
    absl::StatusOr<Authenticated> auth = Check(BucketGetExample(target, kSignature));
    EXPECT_TRUE(auth.ok()) << target << ": " << auth.status();
  }
  EXPECT_EQ(CodeOf(Check(BucketGetExample("/?max-keys=3&prefix=J", kSignature)).status()),
            "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, AwsExamplePresignedUrlVerifies) {
  absl::StatusOr<Authenticated> auth = Check(PresignedExample(), ExampleTime() + absl::Hours(1));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->payload, PayloadKind::kUnsigned);
  EXPECT_EQ(auth->key.access_key, kAccessKey);
}

TEST_F(S3AuthTest, AwsExampleChunkedUploadVerifiesTheSeedAndEveryChunk) {
  absl::StatusOr<Authenticated> auth = Check(ChunkedUploadExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->payload, PayloadKind::kStreamingSigned);
  EXPECT_EQ(auth->seed_signature, kChunkedSeedSignature);
  EXPECT_EQ(auth->amz_date, kExampleAmzDate);
  EXPECT_EQ(auth->scope, "20130524/us-east-1/s3/aws4_request");
  EXPECT_EQ(auth->signing_key.size(), 32u);

  AwsChunkedDecoder decoder(*auth, "");
  std::string data;
  ASSERT_TRUE(decoder.Feed(ChunkedUploadExampleBody(), data).ok());
  EXPECT_TRUE(decoder.done());
  EXPECT_TRUE(decoder.Finish().ok());
  EXPECT_EQ(data, std::string(66560, 'a'));
}

// --- What must be refused ----------------------------------------------------

TEST_F(S3AuthTest, AWrongSecretDoesNotMatch) {
  WriteKeys(absl::StrCat(kAccessKey, " wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ 1000 1000\n"));
  absl::StatusOr<Authenticated> auth = Check(GetObjectExample());
  EXPECT_EQ(CodeOf(auth.status()), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, ATamperedSignedHeaderDoesNotMatch) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "Range", "bytes=0-99");
  EXPECT_EQ(CodeOf(Check(request).status()), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, HeaderValuesAreComparedAfterTrimmingAndNamesInAnyCase) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "Range", "  bytes=0-9 ");
  request.headers.emplace_back("X-Unsigned-Extra", "anything");
  for (auto& [name, value] : request.headers) {
    if (name == "Host") name = "HOST";
  }
  absl::StatusOr<Authenticated> auth = Check(request);
  EXPECT_TRUE(auth.ok()) << auth.status();
}

TEST_F(S3AuthTest, AClockSkewOfMoreThanFifteenMinutesIsRefused) {
  EXPECT_EQ(CodeOf(Check(GetObjectExample(), ExampleTime() + absl::Minutes(16)).status()),
            "RequestTimeTooSkewed");
  EXPECT_EQ(CodeOf(Check(GetObjectExample(), ExampleTime() - absl::Minutes(16)).status()),
            "RequestTimeTooSkewed");
  EXPECT_EQ(CodeOf(Check(GetObjectExample(), ExampleTime() + absl::Minutes(14)).status()), "OK");
}

TEST_F(S3AuthTest, AnExpiredPresignedUrlIsDenied) {
  absl::Time expiry = ExampleTime() + absl::Seconds(86400);
  EXPECT_EQ(CodeOf(Check(PresignedExample(), expiry).status()), "OK");
  absl::StatusOr<Authenticated> auth = Check(PresignedExample(), expiry + absl::Seconds(1));
  EXPECT_EQ(CodeOf(auth.status()), "AccessDenied");
  EXPECT_NE(auth.status().message().find("Request has expired"), std::string_view::npos)
      << auth.status();
}

TEST_F(S3AuthTest, APresignedUrlFromTheFutureIsDenied) {
  EXPECT_EQ(CodeOf(Check(PresignedExample(), ExampleTime() - absl::Minutes(16)).status()),
            "AccessDenied");
  EXPECT_EQ(CodeOf(Check(PresignedExample(), ExampleTime() - absl::Minutes(14)).status()), "OK");
}

TEST_F(S3AuthTest, APresignedUrlMayNotOutliveAWeek) {
  absl::StatusOr<Authenticated> auth =
      Check(PresignedExample(kPresignedSignature, "604801"), ExampleTime());
  EXPECT_EQ(CodeOf(auth.status()), "AuthorizationHeaderMalformed");
}

TEST_F(S3AuthTest, ATamperedPresignedSignatureDoesNotMatch) {
  std::string signature = kPresignedSignature;
  signature[0] = 'b';
  EXPECT_EQ(CodeOf(Check(PresignedExample(signature), ExampleTime()).status()),
            "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, AWrongRegionIsMalformedAndNamesTheExpectedOne) {
  absl::StatusOr<Authenticated> auth = Check(GetObjectExample(), ExampleTime(), "eu-west-3");
  EXPECT_EQ(CodeOf(auth.status()), "AuthorizationHeaderMalformed");
  EXPECT_NE(auth.status().message().find("eu-west-3"), std::string_view::npos) << auth.status();
}

TEST_F(S3AuthTest, AServiceOtherThanS3IsMalformed) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "Authorization",
            absl::StrCat("AWS4-HMAC-SHA256 Credential=", kAccessKey,
                         "/20130524/us-east-1/ec2/aws4_request,SignedHeaders=host;range;"
                         "x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6"
                         "ed310bd44f0170aba48dd91039c6036bdb41"));
  EXPECT_EQ(CodeOf(Check(request).status()), "AuthorizationHeaderMalformed");
}

TEST_F(S3AuthTest, AnUnknownAccessKeyIsInvalid) {
  WriteKeys("AKIDOTHER secret 1000 1000\n");
  EXPECT_EQ(CodeOf(Check(GetObjectExample()).status()), "InvalidAccessKeyId");
}

TEST_F(S3AuthTest, AnAnonymousRequestIsDenied) {
  SignedRequest request = GetObjectExample();
  RemoveHeader(request, "Authorization");
  absl::StatusOr<Authenticated> auth = Check(request);
  EXPECT_EQ(CodeOf(auth.status()), "AccessDenied");
  EXPECT_NE(auth.status().message().find("anonymous"), std::string_view::npos) << auth.status();
}

TEST_F(S3AuthTest, TheHostHeaderMustBeSigned) {
  SignedRequest request = GetObjectExample();
  SetHeader(
      request, "Authorization",
      ExampleAuthorization("range;x-amz-content-sha256;x-amz-date",
                           "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
  EXPECT_EQ(CodeOf(Check(request).status()), "AuthorizationHeaderMalformed");
}

TEST_F(S3AuthTest, AHeaderRequestWithoutContentSha256IsInvalid) {
  SignedRequest request = GetObjectExample();
  RemoveHeader(request, "x-amz-content-sha256");
  absl::StatusOr<Authenticated> auth = Check(request);
  EXPECT_EQ(CodeOf(auth.status()), "InvalidRequest");
  EXPECT_NE(auth.status().message().find("x-amz-content-sha256"), std::string_view::npos);
}

TEST_F(S3AuthTest, AnUnknownContentSha256IsAnInvalidArgument) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "x-amz-content-sha256", "STREAMING-SOMETHING-ELSE");
  EXPECT_EQ(CodeOf(Check(request).status()), "InvalidArgument");
}

TEST_F(S3AuthTest, TheCredentialDateMustBeTheRequestDate) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "x-amz-date", "20130523T235959Z");
  EXPECT_EQ(CodeOf(Check(request).status()), "AuthorizationHeaderMalformed");
}

// Header values past ASCII (x-amz-meta-* in another script) are signed
// as the bytes that came, whatever their encoding: botocore sends and
// signs UTF-8.
TEST_F(S3AuthTest, NonAsciiHeaderValuesAreSignedAsTheBytesSent) {
  const std::string utf8 = "Hello World\xc3\xa9";
  const std::string latin1 = "Hello World\xe9";
  auto signed_over = [&](const std::string& value) {
    s3::SigningRequest signing;
    signing.method = "PUT";
    signing.host = "localhost:9000";
    signing.path = "/bucket/foo";
    signing.headers = {{"x-amz-meta-meta1", value}};
    signing.payload_sha256 = s3::Sha256Hex("bar");
    signing.amz_date = "20240301T120000Z";
    signing.region = "us-east-1";
    return s3::SignV4(signing, {kAccessKey, kSecretKey, ""});
  };
  auto request_with = [&](const std::string& sent, const std::string& signed_value) {
    SignedRequest request{"PUT", "/bucket/foo",
                          {{"Host", "localhost:9000"}, {"x-amz-meta-meta1", sent}}};
    for (const auto& header : signed_over(signed_value)) request.headers.push_back(header);
    return request;
  };
  absl::Time now = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 3, 0), absl::UTCTimeZone());
  EXPECT_EQ(CodeOf(Check(request_with(utf8, utf8), now).status()), "OK");
  EXPECT_EQ(CodeOf(Check(request_with(latin1, latin1), now).status()), "OK");
  EXPECT_EQ(CodeOf(Check(request_with(latin1, utf8), now).status()), "SignatureDoesNotMatch");
  EXPECT_EQ(CodeOf(Check(request_with(utf8, "Hello World\xc3\xa8"), now).status()),
            "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, ClientSignedRequestsVerifyAndMutationsDoNot) {
  s3::SigningRequest signing;
  signing.method = "PUT";
  signing.host = "localhost:9000";
  signing.path = "/bucket/dir/my%20file%2B1.txt";
  signing.query = {{"uploadId", "a/b c"}, {"partNumber", "1"}};
  signing.headers = {{"Content-Type", "text/plain"}, {"X-Amz-Meta-Note", "  two   spaces "}};
  signing.payload_sha256 = s3::Sha256Hex("body");
  signing.amz_date = "20240301T120000Z";
  signing.region = "us-east-1";
  auto signed_headers = s3::SignV4(signing, {kAccessKey, kSecretKey, ""});

  auto request_for = [&](std::string target) {
    SignedRequest request{"PUT",
                          std::move(target),
                          {{"Host", "localhost:9000"},
                           {"Content-Type", "text/plain"},
                           {"X-Amz-Meta-Note", "  two   spaces "}}};
    for (const auto& header : signed_headers) request.headers.push_back(header);
    return request;
  };
  absl::Time now = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 3, 0), absl::UTCTimeZone());
  // The client's spelling of the target does not matter, only what it means.
  for (std::string target : {"/bucket/dir/my%20file%2B1.txt?uploadId=a%2Fb%20c&partNumber=1",
                             "/bucket/dir/my%20file+1.txt?partNumber=1&uploadId=a/b%20c"}) {
    absl::StatusOr<Authenticated> auth = Check(request_for(target), now);
    EXPECT_TRUE(auth.ok()) << target << ": " << auth.status();
  }
  for (std::string target : {"/bucket/dir/my%20file%2B2.txt?uploadId=a%2Fb%20c&partNumber=1",
                             "/bucket/dir/my%20file%2B1.txt?uploadId=a%2Fb%20c&partNumber=2",
                             "/bucket/dir/my%20file%2B1.txt?uploadId=a%2Fb%20c",
                             "/bucket/dir//my%20file%2B1.txt?uploadId=a%2Fb%20c&partNumber=1"}) {
    EXPECT_EQ(CodeOf(Check(request_for(target), now).status()), "SignatureDoesNotMatch") << target;
  }
  SignedRequest request =
      request_for("/bucket/dir/my%20file%2B1.txt?uploadId=a%2Fb%20c&partNumber=1");
  request.method = "POST";
  EXPECT_EQ(CodeOf(Check(request, now).status()), "SignatureDoesNotMatch");
}

// A request dated only by its Date header, signed here by hand from AWS's
// description (the client signer always sends x-amz-date).
SignedRequest DateHeaderRequest(const std::string& date) {
  const std::string signed_headers = "date;host;x-amz-content-sha256";
  std::string canonical_request = absl::StrCat(
      "GET\n/test.txt\n\ndate:", date, "\nhost:", kExampleHost,
      "\nx-amz-content-sha256:", kEmptySha256, "\n\n", signed_headers, "\n", kEmptySha256);
  std::string string_to_sign =
      absl::StrCat("AWS4-HMAC-SHA256\n", kExampleAmzDate, "\n20130524/us-east-1/s3/aws4_request\n",
                   s3::Sha256Hex(canonical_request));
  std::string key = RawHmac(std::string("AWS4") + kSecretKey, "20130524");
  for (const char* part : {"us-east-1", "s3", "aws4_request"}) key = RawHmac(key, part);
  return SignedRequest{
      "GET",
      "/test.txt",
      {{"Host", kExampleHost},
       {"Date", date},
       {"x-amz-content-sha256", kEmptySha256},
       {"Authorization", ExampleAuthorization(signed_headers, Hex(RawHmac(key, string_to_sign)))}}};
}

TEST_F(S3AuthTest, TheDateHeaderStandsInForXAmzDate) {
  SignedRequest request = DateHeaderRequest("Fri, 24 May 2013 00:00:00 GMT");
  absl::StatusOr<Authenticated> auth = Check(request);
  EXPECT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(CodeOf(Check(request, ExampleTime() + absl::Minutes(16)).status()),
            "RequestTimeTooSkewed");
  EXPECT_EQ(CodeOf(Check(DateHeaderRequest("Friday 24 May 2013")).status()), "AccessDenied");
  RemoveHeader(request, "Date");
  EXPECT_EQ(CodeOf(Check(request).status()), "AccessDenied");
}

TEST_F(S3AuthTest, TwoAuthMechanismsAtOnceAreRefused) {
  SignedRequest request = PresignedExample();
  request.headers.emplace_back("Authorization", GetObjectExample().headers.back().second);
  EXPECT_EQ(CodeOf(Check(request).status()), "InvalidArgument");
}

TEST_F(S3AuthTest, SignatureVersion2IsRefusedWithAHint) {
  SignedRequest request = GetObjectExample();
  SetHeader(request, "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=");
  absl::StatusOr<Authenticated> auth = Check(request);
  EXPECT_EQ(CodeOf(auth.status()), "InvalidRequest");
  EXPECT_NE(auth.status().message().find("AWS4-HMAC-SHA256"), std::string_view::npos);
}

// --- aws-chunked bodies -------------------------------------------------------

TEST_F(S3AuthTest, ChunkedBodyFedOneByteAtATimeDecodesTheSame) {
  absl::StatusOr<Authenticated> auth = Check(ChunkedUploadExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  AwsChunkedDecoder decoder(*auth, "");
  std::string body = ChunkedUploadExampleBody();
  std::string data;
  for (size_t i = 0; i < body.size(); ++i) {
    EXPECT_FALSE(decoder.done());
    absl::Status status = decoder.Feed(std::string_view(body).substr(i, 1), data);
    ASSERT_TRUE(status.ok()) << "at byte " << i << ": " << status;
  }
  EXPECT_TRUE(decoder.done());
  EXPECT_TRUE(decoder.Finish().ok());
  EXPECT_EQ(data, std::string(66560, 'a'));
}

TEST_F(S3AuthTest, AFlippedChunkDataByteDoesNotMatch) {
  absl::StatusOr<Authenticated> auth = Check(ChunkedUploadExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  std::string body = ChunkedUploadExampleBody();
  body[body.find("\r\n") + 2 + 1000] = 'b';
  AwsChunkedDecoder decoder(*auth, "");
  std::string data;
  absl::Status status = decoder.Feed(body, data);
  EXPECT_EQ(CodeOf(status), "SignatureDoesNotMatch");
  EXPECT_FALSE(decoder.done());
  EXPECT_EQ(CodeOf(decoder.Finish()), "SignatureDoesNotMatch");
  // An error is final.
  EXPECT_EQ(CodeOf(decoder.Feed("0\r\n", data)), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, ASignedChunkWithoutSignatureDoesNotMatch) {
  absl::StatusOr<Authenticated> auth = Check(ChunkedUploadExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  AwsChunkedDecoder decoder(*auth, "");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed("5\r\nhello\r\n0\r\n\r\n", data)), "SignatureDoesNotMatch");
}

TEST_F(S3AuthTest, ATruncatedChunkedBodyIsIncomplete) {
  absl::StatusOr<Authenticated> auth = Check(ChunkedUploadExample());
  ASSERT_TRUE(auth.ok()) << auth.status();
  std::string body = ChunkedUploadExampleBody();
  for (size_t cut : {size_t{10}, size_t{40000}, body.size() - 2, body.size() - 1}) {
    AwsChunkedDecoder decoder(*auth, "");
    std::string data;
    ASSERT_TRUE(decoder.Feed(std::string_view(body).substr(0, cut), data).ok()) << cut;
    EXPECT_FALSE(decoder.done()) << cut;
    EXPECT_EQ(CodeOf(decoder.Finish()), "IncompleteBody") << cut;
  }
}

Authenticated UnsignedTrailerAuth() {
  Authenticated auth;
  auth.payload = PayloadKind::kStreamingUnsignedTrailer;
  return auth;
}

// "hello world" in two chunks, then `trailer` and the blank line that ends it.
std::string UnsignedHelloWorld(const std::string& trailer) {
  return absl::StrCat("5\r\nhello\r\n6\r\n world\r\n0\r\n", trailer, "\r\n");
}

struct TrailerCase {
  std::string name;
  std::string good;  // base64 of "hello world"'s checksum
};

TEST_F(S3AuthTest, AnUnsignedTrailerChecksumIsVerified) {
  const TrailerCase cases[] = {
      {"x-amz-checksum-crc32", "DUoRhQ=="},
      {"x-amz-checksum-crc32c", "yZRlqg=="},
      {"x-amz-checksum-crc64nvme", "jSnVw/bqjr4="},
      {"x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="},
      {"x-amz-checksum-sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="},
  };
  for (const TrailerCase& c : cases) {
    AwsChunkedDecoder decoder(UnsignedTrailerAuth(), c.name);
    std::string data;
    absl::Status status =
        decoder.Feed(UnsignedHelloWorld(absl::StrCat(c.name, ":", c.good, "\r\n")), data);
    EXPECT_TRUE(status.ok()) << c.name << ": " << status;
    EXPECT_TRUE(decoder.Finish().ok()) << c.name;
    EXPECT_EQ(data, "hello world");
    ASSERT_TRUE(decoder.trailer_checksum().has_value()) << c.name;
    EXPECT_EQ(decoder.trailer_checksum()->first, c.name);
    EXPECT_EQ(decoder.trailer_checksum()->second, c.good);

    std::string wrong = c.good;
    wrong[1] = wrong[1] == 'A' ? 'B' : 'A';
    AwsChunkedDecoder bad_decoder(UnsignedTrailerAuth(), c.name);
    data.clear();
    status = bad_decoder.Feed(UnsignedHelloWorld(absl::StrCat(c.name, ":", wrong, "\r\n")), data);
    EXPECT_EQ(CodeOf(status), "BadDigest") << c.name;
    EXPECT_EQ(CodeOf(bad_decoder.Finish()), "BadDigest") << c.name;
  }
}

// A header checksum is computed over the body as it streams, in pieces.
TEST(PayloadChecksumTest, ComputesEachAlgorithmInPieces) {
  const TrailerCase cases[] = {
      {"x-amz-checksum-crc32", "DUoRhQ=="},
      {"x-amz-checksum-crc32c", "yZRlqg=="},
      {"x-amz-checksum-crc64nvme", "jSnVw/bqjr4="},
      {"x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="},
      {"x-amz-checksum-sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="},
  };
  for (const TrailerCase& c : cases) {
    std::unique_ptr<PayloadChecksum> checksum = PayloadChecksum::For(c.name);
    ASSERT_NE(checksum, nullptr) << c.name;
    checksum->Update("hello");
    checksum->Update(" world");
    EXPECT_EQ(checksum->Finish(), c.good) << c.name;
  }
  // CRC-64/NVME's check value, as S3 writes it (big-endian, base64).
  std::unique_ptr<PayloadChecksum> crc64 = PayloadChecksum::For("x-amz-checksum-crc64nvme");
  crc64->Update("123456789");
  EXPECT_EQ(crc64->Finish(), "rosUhgp5mIg=");
  EXPECT_EQ(PayloadChecksum::For("x-amz-checksum-md5"), nullptr);
}

TEST_F(S3AuthTest, AnAnnouncedTrailerThatDoesNotComeIsInvalid) {
  AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "x-amz-checksum-crc32");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed(UnsignedHelloWorld(""), data)), "InvalidRequest");
}

TEST_F(S3AuthTest, AnUnannouncedTrailerIsInvalid) {
  AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed(UnsignedHelloWorld("x-amz-checksum-crc32:DUoRhQ==\r\n"), data)),
            "InvalidRequest");
}

TEST_F(S3AuthTest, AnOverlongChunkHeaderIsInvalid) {
  AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "");
  std::string data;
  std::string header = absl::StrCat("5;", std::string(5000, 'x'));
  EXPECT_EQ(CodeOf(decoder.Feed(header, data)), "InvalidRequest");
}

TEST_F(S3AuthTest, ChunkDataNotFollowedByCrlfIsInvalid) {
  AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed("4\r\nhello\r\n0\r\n\r\n", data)), "InvalidRequest");
}

TEST_F(S3AuthTest, BytesAfterTheEndOfTheBodyAreInvalid) {
  AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "");
  std::string data;
  ASSERT_TRUE(decoder.Feed(UnsignedHelloWorld(""), data).ok());
  EXPECT_TRUE(decoder.done());
  EXPECT_EQ(CodeOf(decoder.Feed("x", data)), "InvalidRequest");
}

// A signed-trailer upload of "hello world" as an SDK would send it, signed
// by cairn's client signer for the request and here for the body.
class SignedTrailerTest : public S3AuthTest {
 protected:
  void SetUp() override {
    S3AuthTest::SetUp();
    s3::SigningRequest signing;
    signing.method = "PUT";
    signing.host = "localhost:9000";
    signing.path = "/bucket/hello.txt";
    signing.headers = {{"Content-Encoding", "aws-chunked"},
                       {"x-amz-decoded-content-length", "11"},
                       {"x-amz-trailer", "x-amz-checksum-crc32c"}};
    signing.payload_sha256 = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
    signing.amz_date = kExampleAmzDate;
    signing.region = "us-east-1";
    SignedRequest request{"PUT", "/bucket/hello.txt", {{"Host", "localhost:9000"}}};
    for (const auto& header : signing.headers) request.headers.push_back(header);
    for (const auto& header : s3::SignV4(signing, {kAccessKey, kSecretKey, ""})) {
      request.headers.push_back(header);
    }
    absl::StatusOr<Authenticated> auth = Check(request);
    ASSERT_TRUE(auth.ok()) << auth.status();
    ASSERT_EQ(auth->payload, PayloadKind::kStreamingSignedTrailer);
    auth_ = *auth;
  }

  std::string ChunkSignature(const std::string& previous, const std::string& data) const {
    return HmacHex(auth_.signing_key,
                   absl::StrCat("AWS4-HMAC-SHA256-PAYLOAD\n", auth_.amz_date, "\n", auth_.scope,
                                "\n", previous, "\n", kEmptySha256, "\n", s3::Sha256Hex(data)));
  }

  std::string Body(const std::string& checksum_value,
                   bool corrupt_trailer_signature = false) const {
    std::string first = ChunkSignature(auth_.seed_signature, "hello world");
    std::string last = ChunkSignature(first, "");
    std::string trailer = absl::StrCat("x-amz-checksum-crc32c:", checksum_value);
    std::string trailer_signature =
        HmacHex(auth_.signing_key,
                absl::StrCat("AWS4-HMAC-SHA256-TRAILER\n", auth_.amz_date, "\n", auth_.scope, "\n",
                             last, "\n", s3::Sha256Hex(absl::StrCat(trailer, "\n"))));
    if (corrupt_trailer_signature) trailer_signature[5] = trailer_signature[5] == '0' ? '1' : '0';
    return absl::StrCat("b;chunk-signature=", first, "\r\nhello world\r\n0;chunk-signature=", last,
                        "\r\n", trailer, "\r\nx-amz-trailer-signature:", trailer_signature,
                        "\r\n\r\n");
  }

  Authenticated auth_;
};

TEST_F(SignedTrailerTest, AGoodBodyDecodesAndReportsItsChecksum) {
  AwsChunkedDecoder decoder(auth_, "x-amz-checksum-crc32c");
  std::string data;
  absl::Status status = decoder.Feed(Body("yZRlqg=="), data);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(decoder.Finish().ok());
  EXPECT_EQ(data, "hello world");
  ASSERT_TRUE(decoder.trailer_checksum().has_value());
  EXPECT_EQ(decoder.trailer_checksum()->second, "yZRlqg==");
}

TEST_F(SignedTrailerTest, ATamperedTrailerSignatureDoesNotMatch) {
  AwsChunkedDecoder decoder(auth_, "x-amz-checksum-crc32c");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed(Body("yZRlqg==", /*corrupt_trailer_signature=*/true), data)),
            "SignatureDoesNotMatch");
}

TEST_F(SignedTrailerTest, ASignedButWrongChecksumIsABadDigest) {
  AwsChunkedDecoder decoder(auth_, "x-amz-checksum-crc32c");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed(Body("AAAAAA=="), data)), "BadDigest");
}

TEST_F(SignedTrailerTest, AMissingTrailerSignatureDoesNotMatch) {
  std::string body = Body("yZRlqg==");
  size_t start = body.find("x-amz-trailer-signature:");
  body.erase(start, body.find("\r\n", start) + 2 - start);
  AwsChunkedDecoder decoder(auth_, "x-amz-checksum-crc32c");
  std::string data;
  EXPECT_EQ(CodeOf(decoder.Feed(body, data)), "SignatureDoesNotMatch");
}

// AWS example with trailing headers: the same 66560 bytes of 'a', signed
// chunks chained from seed 106e2a8a..., and an x-amz-checksum-crc32c
// trailer. (The trailer signature AWS prints for it does not follow from
// AWS's own description of the trailer string to sign, so it is not used;
// SignedTrailerTest covers trailer signatures.)
Authenticated AwsTrailerExampleAuth(std::string seed_signature) {
  Authenticated auth;
  auth.payload = PayloadKind::kStreamingSignedTrailer;
  auth.seed_signature = std::move(seed_signature);
  auth.amz_date = kExampleAmzDate;
  auth.scope = "20130524/us-east-1/s3/aws4_request";
  auth.signing_key = RawHmac(std::string("AWS4") + kSecretKey, "20130524");
  for (const char* part : {"us-east-1", "s3", "aws4_request"}) {
    auth.signing_key = RawHmac(auth.signing_key, part);
  }
  return auth;
}

std::string AwsTrailerExampleChunks() {
  return absl::StrCat(
      "10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n",
      std::string(65536, 'a'), "\r\n",
      "400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
      std::string(1024, 'a'), "\r\n",
      "0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
}

TEST(AwsChunkedDecoderTest, AwsTrailerExampleChunkSignaturesVerify) {
  AwsChunkedDecoder decoder(
      AwsTrailerExampleAuth("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"),
      "x-amz-checksum-crc32c");
  std::string data;
  absl::Status status = decoder.Feed(AwsTrailerExampleChunks(), data);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(data, std::string(66560, 'a'));
  EXPECT_FALSE(decoder.done());  // the trailer has not come yet

  // The same chunks do not chain from another seed (the first example's).
  AwsChunkedDecoder other_seed(AwsTrailerExampleAuth(kChunkedSeedSignature),
                               "x-amz-checksum-crc32c");
  data.clear();
  EXPECT_EQ(CodeOf(other_seed.Feed(AwsTrailerExampleChunks(), data)), "SignatureDoesNotMatch");
}

TEST(AwsChunkedDecoderTest, AwsTrailerExampleCrc32cMatchesTheData) {
  std::string body = absl::StrCat("10000\r\n", std::string(65536, 'a'), "\r\n400\r\n",
                                  std::string(1024, 'a'), "\r\n0\r\n");
  for (std::string checksum : {"sOO8/Q==", "sOO8/A=="}) {
    AwsChunkedDecoder decoder(UnsignedTrailerAuth(), "x-amz-checksum-crc32c");
    std::string data;
    absl::Status status =
        decoder.Feed(absl::StrCat(body, "x-amz-checksum-crc32c:", checksum, "\r\n\r\n"), data);
    EXPECT_EQ(CodeOf(status), checksum == "sOO8/Q==" ? "OK" : "BadDigest") << checksum;
  }
}

// --- The keys file -------------------------------------------------------------

TEST(ParseKeysFileTest, ReadsKeysCommentsAndOptions) {
  absl::StatusOr<std::vector<S3Key>> keys = ParseKeysFile(
      "# access secret uid gid [ro] [buckets]\n"
      "\n"
      "AK1 secret1 1000 100\n"
      "  AK2\tsecret2 1001 101 ro   # a reader\n"
      "AK3 secret3 0 0 photos,backups\r\n"
      "AK4 secret4 4294967295 7 ro logs\n");
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 4u);
  EXPECT_EQ((*keys)[0].access_key, "AK1");
  EXPECT_EQ((*keys)[0].secret_key, "secret1");
  EXPECT_EQ((*keys)[0].uid, 1000u);
  EXPECT_EQ((*keys)[0].gid, 100u);
  EXPECT_FALSE((*keys)[0].read_only);
  EXPECT_TRUE((*keys)[0].buckets.empty());
  EXPECT_TRUE((*keys)[1].read_only);
  EXPECT_TRUE((*keys)[1].buckets.empty());
  EXPECT_FALSE((*keys)[2].read_only);
  EXPECT_EQ((*keys)[2].buckets, (std::vector<std::string>{"photos", "backups"}));
  EXPECT_EQ((*keys)[3].uid, 4294967295u);
  EXPECT_TRUE((*keys)[3].read_only);
  EXPECT_EQ((*keys)[3].buckets, (std::vector<std::string>{"logs"}));
}

TEST(ParseKeysFileTest, ErrorsNameTheLineAndTheProblem) {
  struct Case {
    std::string text;
    std::string message;
  };
  const Case cases[] = {
      {"AK1 s 1 1\n# fine\nAK2 s x 1\n", "keys file line 3: UID 'x' is not a number"},
      {"AK1 s 1 -1\n", "keys file line 1: GID '-1' is not a number"},
      {"AK1 s 4294967296 1\n", "keys file line 1: UID '4294967296' is not a number"},
      {"\n\nAK1 s 1\n", "keys file line 3: expected ACCESS_KEY SECRET_KEY UID GID"},
      {"AK1 s 1 1\nAK2 s 2 2\nAK1 t 3 3\n",
       "keys file line 3: access key 'AK1' is already on line 1"},
      {"AK1 s 1 1 a,,b\n", "keys file line 1: the bucket list 'a,,b' has an empty bucket name"},
      {"AK1 s 1 1 ro a b\n", "keys file line 1: unexpected 'b'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<S3Key>> keys = ParseKeysFile(c.text);
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_EQ(keys.status().message().substr(0, c.message.size()), c.message) << keys.status();
  }
}

TEST_F(S3AuthTest, KeysFileReadableByOthersIsRefused) {
  WriteKeys(absl::StrCat(kAccessKey, " ", kSecretKey, " 1000 1000\n"), 0644);
  absl::StatusOr<std::optional<S3Key>> key = keys_.Find(kAccessKey);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(
      key.status().message(),
      absl::StrCat("keys file ", keys_path_, " is readable by others (mode 0644): chmod 600 it"));
  // Nor is the request let through on keys read before the file went bad.
  EXPECT_FALSE(Check(GetObjectExample()).ok());
  ASSERT_EQ(chmod(keys_path_.c_str(), 0600), 0);
  key = keys_.Find(kAccessKey);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(key->has_value());
}

TEST_F(S3AuthTest, KeysFileOwnedBySomeoneElseIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "giving the file away needs root";
  ASSERT_EQ(chown(keys_path_.c_str(), 12345, 12345), 0);
  absl::StatusOr<std::optional<S3Key>> key = keys_.Find(kAccessKey);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("owned by uid 12345"), std::string_view::npos)
      << key.status();
}

TEST_F(S3AuthTest, KeysFileIsReadAgainAfterARewrite) {
  absl::StatusOr<std::optional<S3Key>> key = keys_.Find("AKNEW");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(key->has_value());

  WriteKeys("AKNEW newsecret 2000 2000 ro\n");
  key = keys_.Find("AKNEW");
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE(key->has_value());
  EXPECT_EQ((*key)->uid, 2000u);
  EXPECT_TRUE((*key)->read_only);
  key = keys_.Find(kAccessKey);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(key->has_value());

  // Replaced by rename, as tools that write atomically do.
  std::string staged = keys_path_ + ".new";
  int fd = open(staged.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string text = "AKNEW othersecret 3000 3000\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ASSERT_EQ(close(fd), 0);
  ASSERT_EQ(rename(staged.c_str(), keys_path_.c_str()), 0);
  key = keys_.Find("AKNEW");
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE(key->has_value());
  EXPECT_EQ((*key)->uid, 3000u);
}

TEST_F(S3AuthTest, AMalformedKeysFileIsAnErrorNotTheLastGoodKeys) {
  ASSERT_TRUE(keys_.Find(kAccessKey).ok());
  WriteKeys(absl::StrCat(kAccessKey, " ", kSecretKey, " 1000 oops\n"));
  absl::StatusOr<std::optional<S3Key>> key = keys_.Find(kAccessKey);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("line 1: GID 'oops' is not a number"), std::string::npos)
      << key.status();
  EXPECT_NE(key.status().message().find(keys_path_), std::string::npos) << key.status();
}

TEST_F(S3AuthTest, AMissingKeysFileIsAnErrorNamingIt) {
  ASSERT_EQ(unlink(keys_path_.c_str()), 0);
  absl::StatusOr<std::optional<S3Key>> key = keys_.Find(kAccessKey);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find(keys_path_), std::string::npos) << key.status();
}

TEST_F(S3AuthTest, KeysFileLookupsFromManyThreadsAgree) {
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<std::optional<S3Key>> key = keys_.Find(kAccessKey);
        if (key.ok() && key->has_value() && (*key)->secret_key == kSecretKey) ++found;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(found.load(), 800);
}

}  // namespace
}  // namespace cairn::frontend
