#include "backend/s3/s3_xml.h"

#include <random>
#include <string>
#include <vector>

#include "backend/base/fs_error.h"
#include "gtest/gtest.h"

// The documents follow the examples in the Amazon S3 API Reference
// (ListObjectsV2, Error responses, CreateMultipartUpload, ListMultipartUploads,
// DeleteObjects), with the entity escaping S3 really sends (ETags as &quot;).

namespace cairn::s3 {
namespace {

constexpr char kListObjectsTruncated[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>3</KeyCount>
  <MaxKeys>3</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>&quot;70ee1738b6b21e2c8a43f3a5ab0eee71&quot;</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>photos/caf&#xE9; &amp; cr&#232;me &lt;1&gt;.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>&quot;becf17f89c30367a9a44495d62ed521a-1&quot;</ETag>
    <Size>18446744073709551615</Size>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>mtd@amazon.com</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>文档/報告 2024.pdf</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>notes/summer/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>R&amp;D/</Prefix>
  </CommonPrefixes>
</ListBucketResult>
)";

constexpr char kListObjectsComplete[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Name>bucket</Name>
    <Prefix/>
    <KeyCount>1</KeyCount>
    <MaxKeys>1000</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
</ListBucketResult>)";

constexpr char kNoSuchKey[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>)";

constexpr char kSignatureDoesNotMatch[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>SignatureDoesNotMatch</Code>
  <Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>
  <AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId>
  <StringToSign>AWS4-HMAC-SHA256
20130524T000000Z
20130524/us-east-1/s3/aws4_request
7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972</StringToSign>
  <SignatureProvided>f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb40</SignatureProvided>
  <CanonicalRequest>GET
/test.txt

host:examplebucket.s3.amazonaws.com
range:bytes=0-9
x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-amz-date:20130524T000000Z

host;range;x-amz-content-sha256;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</CanonicalRequest>
  <RequestId>7Q3XTYN1SD3P0X7K</RequestId>
  <HostId>fWNpKSxPvYNNw0f3/l9gqJvEIDx9ODSZ6XlhLUV0K2E4xPVomHT3aSdkZDAPTH7Sdr3VaTHyLWg=</HostId>
</Error>)";

constexpr char kInitiateMultipartUpload[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>)";

constexpr char kListMultipartUploads[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>
      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>
    </Initiator>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
    <Initiator>
      <ID>b1d16700c70b0b05597d7acd6a3f92be</ID>
      <DisplayName>InitiatorDisplayName</DisplayName>
    </Initiator>
    <Owner>
      <ID>b1d16700c70b0b05597d7acd6a3f92be</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</UploadId>
    <Initiator>
      <ID>arn:aws:iam::444455556666:user/user1-22222a31-17b5-4fb7-9df5-b222222f13de</ID>
      <DisplayName>user1-22222a31-17b5-4fb7-9df5-b222222f13de</DisplayName>
    </Initiator>
    <Owner>
      <ID>b1d16700c70b0b05597d7acd6a3f92be</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:49:33.000Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>)";

constexpr char kDeleteResult[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted>
    <Key>sample1.txt</Key>
  </Deleted>
  <Deleted>
    <Key>Tom &amp; Jerry.txt</Key>
    <VersionId>UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ</VersionId>
    <DeleteMarker>true</DeleteMarker>
    <DeleteMarkerVersionId>A._w1z6EFiCF5uhtQMDal9JDkID9tQ7F</DeleteMarkerVersionId>
  </Deleted>
  <Error>
    <Key>sample2.txt</Key>
    <Code>AccessDenied</Code>
    <Message>Access Denied</Message>
  </Error>
</DeleteResult>)";

std::vector<std::string> ValidDocuments() {
  return {kListObjectsTruncated,    kListObjectsComplete,  kNoSuchKey,   kSignatureDoesNotMatch,
          kInitiateMultipartUpload, kListMultipartUploads, kDeleteResult};
}

// Runs every parser; only termination without a crash or sanitizer report is
// being checked, plus that success and error are reported consistently.
void ParseWithEverything(std::string_view xml) {
  absl::StatusOr<XmlElement> tree = ParseXml(xml);
  absl::StatusOr<ListResult> list = ParseListObjectsV2(xml);
  absl::StatusOr<ErrorResponse> error = ParseError(xml);
  absl::StatusOr<std::string> upload_id = ParseInitiateMultipartUpload(xml);
  absl::StatusOr<ListUploadsResult> uploads = ParseListMultipartUploads(xml);
  absl::StatusOr<DeleteResult> deleted = ParseDeleteObjects(xml);
  if (!tree.ok()) {
    EXPECT_FALSE(list.ok() || error.ok() || upload_id.ok() || uploads.ok() || deleted.ok());
  }
}

TEST(S3XmlTest, ParsesTruncatedListObjectsV2) {
  absl::StatusOr<ListResult> list = ParseListObjectsV2(kListObjectsTruncated);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->truncated);
  EXPECT_EQ(list->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(list->objects.size(), 3u);
  EXPECT_EQ(list->objects[0].key, "happyface.jpg");
  EXPECT_EQ(list->objects[0].size, 11u);
  EXPECT_EQ(list->objects[0].etag, "\"70ee1738b6b21e2c8a43f3a5ab0eee71\"");
  EXPECT_EQ(list->objects[1].key, "photos/caf\xC3\xA9 & cr\xC3\xA8me <1>.jpg");
  EXPECT_EQ(list->objects[1].size, 18446744073709551615u);
  EXPECT_EQ(list->objects[1].etag, "\"becf17f89c30367a9a44495d62ed521a-1\"");
  EXPECT_EQ(list->objects[2].key, "文档/報告 2024.pdf");
  EXPECT_EQ(list->objects[2].size, 0u);
  EXPECT_EQ(list->objects[2].etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
  EXPECT_EQ(list->common_prefixes, (std::vector<std::string>{"notes/summer/", "R&D/"}));
}

TEST(S3XmlTest, ParsesCompleteListObjectsV2) {
  absl::StatusOr<ListResult> list = ParseListObjectsV2(kListObjectsComplete);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_FALSE(list->truncated);
  EXPECT_EQ(list->next_continuation_token, "");
  ASSERT_EQ(list->objects.size(), 1u);
  EXPECT_EQ(list->objects[0].key, "my-image.jpg");
  EXPECT_EQ(list->objects[0].size, 434234u);
  EXPECT_TRUE(list->common_prefixes.empty());

  absl::StatusOr<ListResult> empty = ParseListObjectsV2(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount>"
      "<IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->objects.empty());
}

// An object's age is told by it; a time that does not parse, or none, is
// 0 (unknown) and the listing is still good.
TEST(S3XmlTest, ListObjectsV2ReadsLastModifiedAndZeroForABadOne) {
  absl::StatusOr<ListResult> list = ParseListObjectsV2(kListObjectsTruncated);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->objects[0].last_modified, 1416598805);
  absl::StatusOr<ListResult> odd = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a</Key><Size>1</Size><LastModified>2026-12-06T04:01:30+01:00"
      "</LastModified></Contents>"
      "<Contents><Key>b</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents>"
      "<Contents><Key>c</Key><Size>1</Size></Contents></ListBucketResult>");
  ASSERT_TRUE(odd.ok()) << odd.status();
  ASSERT_EQ(odd->objects.size(), 3u);
  EXPECT_EQ(odd->objects[0].last_modified, 1796526090);  // 03:01:30 UTC
  EXPECT_EQ(odd->objects[1].last_modified, 0);
  EXPECT_EQ(odd->objects[2].last_modified, 0);
}

TEST(S3XmlTest, ListObjectsV2KeepsLeafWhitespaceExactly) {
  absl::StatusOr<ListResult> list = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key> padded  key </Key><Size> 5 </Size></Contents>"
      "<Contents><Key>line&#13;&#10;break</Key><Size>1</Size></Contents></ListBucketResult>");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->objects.size(), 2u);
  EXPECT_EQ(list->objects[0].key, " padded  key ");
  EXPECT_EQ(list->objects[0].size, 5u);
  EXPECT_EQ(list->objects[1].key, "line\r\nbreak");
}

TEST(S3XmlTest, ListObjectsV2DecodesUrlEncodedNames) {
  absl::StatusOr<ListResult> list = ParseListObjectsV2(
      "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a+b%2Fc%E2%9C%93%01</Key><Size>1</Size></Contents>"
      "<CommonPrefixes><Prefix>dir%20x/</Prefix></CommonPrefixes></ListBucketResult>");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->objects.size(), 1u);
  EXPECT_EQ(list->objects[0].key, "a b/c\xE2\x9C\x93\x01");
  EXPECT_EQ(list->common_prefixes, (std::vector<std::string>{"dir x/"}));

  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><EncodingType>url</EncodingType>"
                                  "<Contents><Key>bad%2</Key><Size>1</Size></Contents>"
                                  "</ListBucketResult>")
                   .ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><EncodingType>base64</EncodingType>"
                                  "</ListBucketResult>")
                   .ok());
}

TEST(S3XmlTest, ListObjectsV2RejectsInconsistentDocuments) {
  const char* bad_documents[] = {
      // A truncated listing that cannot be continued.
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
      "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>12a</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>"
      "</ListBucketResult>",
      "<ListAllMyBucketsResult></ListAllMyBucketsResult>",
      "",
  };
  for (const char* xml : bad_documents) {
    absl::StatusOr<ListResult> list = ParseListObjectsV2(xml);
    ASSERT_FALSE(list.ok()) << xml;
    EXPECT_EQ(GetFsErrorKind(list.status()), FsErrorKind::kIo) << xml;
  }
}

TEST(S3XmlTest, ParsesNoSuchKeyError) {
  absl::StatusOr<ErrorResponse> error = ParseError(kNoSuchKey);
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_EQ(error->code, "NoSuchKey");
  EXPECT_EQ(error->message, "The resource you requested does not exist");
  EXPECT_EQ(error->resource, "/mybucket/myfoto.jpg");
  EXPECT_EQ(error->request_id, "4442587FB7D0A2F9");
}

TEST(S3XmlTest, ParsesSignatureDoesNotMatchError) {
  absl::StatusOr<ErrorResponse> error = ParseError(kSignatureDoesNotMatch);
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_EQ(error->code, "SignatureDoesNotMatch");
  EXPECT_EQ(error->message,
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.");
  EXPECT_EQ(error->request_id, "7Q3XTYN1SD3P0X7K");
  EXPECT_EQ(error->resource, "");
}

TEST(S3XmlTest, ErrorBodiesThatAreNotErrorsFail) {
  for (const char* xml :
       {"", "   \n", "<html><body>502 Bad Gateway</body></html>", "<Error></Error>",
        "<Error><Message>no code</Message></Error>", "Service Unavailable"}) {
    EXPECT_FALSE(ParseError(xml).ok()) << xml;
  }
}

TEST(S3XmlTest, ParsesInitiateMultipartUpload) {
  absl::StatusOr<std::string> upload_id = ParseInitiateMultipartUpload(kInitiateMultipartUpload);
  ASSERT_TRUE(upload_id.ok()) << upload_id.status();
  EXPECT_EQ(*upload_id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");

  EXPECT_FALSE(ParseInitiateMultipartUpload(
                   "<InitiateMultipartUploadResult><Key>k</Key></InitiateMultipartUploadResult>")
                   .ok());
  EXPECT_FALSE(ParseInitiateMultipartUpload(kNoSuchKey).ok());
}

TEST(S3XmlTest, ParsesListMultipartUploads) {
  absl::StatusOr<ListUploadsResult> uploads = ParseListMultipartUploads(kListMultipartUploads);
  ASSERT_TRUE(uploads.ok()) << uploads.status();
  EXPECT_TRUE(uploads->truncated);
  EXPECT_EQ(uploads->next_key_marker, "my-movie.m2ts");
  EXPECT_EQ(uploads->next_upload_id_marker, "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ");
  ASSERT_EQ(uploads->uploads.size(), 3u);
  EXPECT_EQ(uploads->uploads[0].key, "my-divisor");
  EXPECT_EQ(uploads->uploads[0].upload_id, "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
  EXPECT_EQ(uploads->uploads[2].key, "my-movie.m2ts");
  EXPECT_EQ(uploads->uploads[2].upload_id, "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ");

  EXPECT_FALSE(
      ParseListMultipartUploads("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                "</ListMultipartUploadsResult>")
          .ok());
  EXPECT_FALSE(ParseListMultipartUploads("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
                                         "</ListMultipartUploadsResult>")
                   .ok());
}

TEST(S3XmlTest, ParsesDeleteResultWithDeletedAndErrors) {
  absl::StatusOr<DeleteResult> result = ParseDeleteObjects(kDeleteResult);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->deleted, (std::vector<std::string>{"sample1.txt", "Tom & Jerry.txt"}));
  ASSERT_EQ(result->errors.size(), 1u);
  EXPECT_EQ(result->errors[0].first, "sample2.txt");
  EXPECT_EQ(result->errors[0].second.code, "AccessDenied");
  EXPECT_EQ(result->errors[0].second.message, "Access Denied");

  // What a quiet delete returns when everything went.
  absl::StatusOr<DeleteResult> quiet = ParseDeleteObjects(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>");
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_TRUE(quiet->deleted.empty());
  EXPECT_TRUE(quiet->errors.empty());

  EXPECT_FALSE(ParseDeleteObjects("<DeleteResult><Deleted></Deleted></DeleteResult>").ok());
  EXPECT_FALSE(
      ParseDeleteObjects("<DeleteResult><Error><Code>AccessDenied</Code></Error></DeleteResult>")
          .ok());
}

TEST(S3XmlTest, XmlEscapeEscapesMarkupAndControlCharacters) {
  EXPECT_EQ(XmlEscape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(XmlEscape("cr\rlf\ntab\t"), "cr&#13;lf&#10;tab&#9;");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9 /x"), "caf\xC3\xA9 /x");
  EXPECT_EQ(XmlEscape(""), "");
}

TEST(S3XmlTest, DeleteObjectsXmlRoundTripsKeys) {
  EXPECT_EQ(DeleteObjectsXml({"a&b"}, true),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            "<Object><Key>a&amp;b</Key></Object></Delete>");

  const std::vector<std::string> keys = {"plain.txt",     "Tom & Jerry <1>.txt", "\"quoted\" 'key'",
                                         " spaced  ",     "cr\rlf\ntab\t",       "文档/報告.pdf",
                                         "]]>&amp;&#38;", "\x01\x1F\x7F"};
  absl::StatusOr<XmlElement> tree = ParseXml(DeleteObjectsXml(keys, false));
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->name, "Delete");
  EXPECT_EQ(tree->Child("Quiet"), nullptr);
  std::vector<std::string> parsed;
  for (const XmlElement& object : tree->children) parsed.push_back(object.ChildText("Key"));
  EXPECT_EQ(parsed, keys);
}

TEST(S3XmlTest, CompleteMultipartUploadXmlRoundTripsParts) {
  const std::vector<std::pair<int, std::string>> parts = {
      {1, "\"a54357aff0632cce46d942af68356b38\""},
      {2, "\"0c78aef83f66abc1fa1e8477f296d394\""},
      {10000, "\"acbd18db4cc2f85cedef654fccc4a4d8\""}};
  std::string xml = CompleteMultipartUploadXml(parts);
  EXPECT_NE(xml.find("<Part><PartNumber>1</PartNumber>"
                     "<ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>"),
            std::string::npos);
  absl::StatusOr<XmlElement> tree = ParseXml(xml);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->name, "CompleteMultipartUpload");
  std::vector<std::pair<int, std::string>> parsed;
  for (const XmlElement& part : tree->children) {
    parsed.emplace_back(std::stoi(part.ChildText("PartNumber")), part.ChildText("ETag"));
  }
  EXPECT_EQ(parsed, parts);
}

TEST(S3XmlTest, ParseXmlHandlesTheSupportedSyntax) {
  absl::StatusOr<XmlElement> tree = ParseXml(
      "\xEF\xBB\xBF<?xml version='1.0'?>\n<!-- leading comment -->\n"
      "<s3:Root xmlns:s3=\"urn:x\" a = 'x>y' b=\"/>\">"
      "<s3:Text>&#72;&#x69;&#X21; &#x1F600; <![CDATA[<raw & kept>]]><!-- dropped --></s3:Text>"
      "<Empty/><Empty />"
      "<Spaced>\n  <Inner>v</Inner>\n</Spaced >"
      "</s3:Root>\n<!-- trailing comment -->\n");
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->name, "Root");
  EXPECT_EQ(tree->text, "");
  ASSERT_EQ(tree->children.size(), 4u);
  EXPECT_EQ(tree->ChildText("Text"), "Hi! \xF0\x9F\x98\x80 <raw & kept>");
  EXPECT_EQ(tree->children[1].name, "Empty");
  EXPECT_EQ(tree->children[1].text, "");
  const XmlElement* spaced = tree->Child("Spaced");
  ASSERT_NE(spaced, nullptr);
  EXPECT_EQ(spaced->text, "");
  EXPECT_EQ(spaced->ChildText("Inner"), "v");
  EXPECT_EQ(tree->Child("Missing"), nullptr);
  EXPECT_EQ(tree->ChildText("Missing"), "");
}

TEST(S3XmlTest, ParseXmlRejectsMalformedDocuments) {
  const char* bad_documents[] = {
      "",
      " \r\n\t",
      "plain text",
      "<a>",
      "<a></b>",
      "<a></a><b></b>",
      "<a></a>trailing",
      "<a>&unknown;</a>",
      "<a>&amp</a>",
      "<a>& amp;</a>",
      "<a>&#;</a>",
      "<a>&#x;</a>",
      "<a>&#0;</a>",
      "<a>&#xD800;</a>",
      "<a>&#x110000;</a>",
      "<a>&#99999999999999999999;</a>",
      "<a>&#-1;</a>",
      "<a>&#x+1;</a>",
      "<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
      "<a><!DOCTYPE a></a>",
      "<a><!-- unterminated</a>",
      "<a><![CDATA[unterminated</a>",
      "<?xml unterminated",
      "<a b></a>",
      "<a b=c></a>",
      "<a b=\"unterminated></a>",
      "<1a></1a>",
      "< a></a>",
      "<a></ a>",
      "<a></a",
      "<a/",
      "<",
      "</a>",
  };
  for (const char* xml : bad_documents) {
    absl::StatusOr<XmlElement> tree = ParseXml(xml);
    ASSERT_FALSE(tree.ok()) << xml;
    EXPECT_EQ(GetFsErrorKind(tree.status()), FsErrorKind::kIo) << xml;
  }
}

TEST(S3XmlTest, ParseXmlBoundsNestingDepth) {
  auto nested = [](int depth) {
    std::string xml;
    for (int i = 0; i < depth; ++i) xml += "<a>";
    for (int i = 0; i < depth; ++i) xml += "</a>";
    return xml;
  };
  EXPECT_TRUE(ParseXml(nested(16)).ok());
  EXPECT_FALSE(ParseXml(nested(100000)).ok());
  EXPECT_FALSE(ParseXml(std::string(100000, '<')).ok());
}

TEST(S3XmlTest, TruncatedDocumentsNeverParse) {
  for (const std::string& xml : ValidDocuments()) {
    ASSERT_TRUE(ParseXml(xml).ok()) << xml;
    // A body cut anywhere before the root's end tag closes must be refused:
    // accepting it could silently drop listing entries.
    size_t root_end = xml.rfind('>') + 1;
    for (size_t length = 0; length < root_end; ++length) {
      std::string_view prefix = std::string_view(xml).substr(0, length);
      EXPECT_FALSE(ParseXml(prefix).ok()) << prefix;
      ParseWithEverything(prefix);
    }
  }
}

TEST(S3XmlTest, RandomlyMutatedDocumentsDoNotCrash) {
  std::mt19937 random(20240607);
  const std::string interesting = std::string("<>/&;#x\"'=![]-?: \n") + '\0' + "\xFF\x80";
  for (const std::string& original : ValidDocuments()) {
    for (int round = 0; round < 1500; ++round) {
      std::string xml = original;
      int mutations = 1 + static_cast<int>(random() % 4);
      for (int m = 0; m < mutations && !xml.empty(); ++m) {
        size_t at = random() % xml.size();
        switch (random() % 5) {
          case 0:
            xml[at] = interesting[random() % interesting.size()];
            break;
          case 1:
            xml.insert(at, 1, interesting[random() % interesting.size()]);
            break;
          case 2:
            xml.erase(at, 1 + random() % 16);
            break;
          case 3:
            xml.insert(at, xml.substr(random() % xml.size(), 1 + random() % 32));
            break;
          case 4:
            xml[at] = static_cast<char>(random());
            break;
        }
      }
      ParseWithEverything(xml);
    }
  }
}

}  // namespace
}  // namespace cairn::s3
