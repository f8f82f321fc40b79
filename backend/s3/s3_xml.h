// The S3 XML documents cairn reads and writes, without an XML library.
//
// S3 responses are small, flat and machine-written, so a strict subset of XML
// is enough: elements, character data with the five named entities and
// numeric references, CDATA, comments and processing instructions. Attributes
// and namespace prefixes are ignored; DOCTYPE (and with it entity expansion)
// is refused. Bodies come from the network, so every parser treats its input
// as hostile: malformed input is an error status (FsErrorKind::kIo), never a
// crash, and nesting depth is bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::s3 {

// ETags are kept as S3 sends them, quotes included, because that is the form
// CompleteMultipartUpload wants back.
struct ObjectEntry {
  std::string key;
  uint64_t size = 0;
  std::string etag;
  // <LastModified>, in Unix seconds by the server's clock; 0 when the
  // listing gave none that parses (a caller must then not judge its age).
  int64_t last_modified = 0;
};

struct ListResult {
  std::vector<ObjectEntry> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_continuation_token;
};

// Keys and prefixes are percent-decoded when the document says
// <EncodingType>url</EncodingType> (requested with encoding-type=url). A
// truncated listing without a continuation token is an error, since it could
// not be continued.
absl::StatusOr<ListResult> ParseListObjectsV2(std::string_view xml);

struct ErrorResponse {
  std::string code, message, request_id, resource;
};

// An S3 <Error> document; an empty/unparseable body gives an error status.
// Note that CompleteMultipartUpload and CopyObject can answer 200 OK with an
// <Error> body.
absl::StatusOr<ErrorResponse> ParseError(std::string_view xml);

// The UploadId of an <InitiateMultipartUploadResult>.
absl::StatusOr<std::string> ParseInitiateMultipartUpload(std::string_view xml);

struct MultipartUpload {
  std::string key, upload_id;
};

struct ListUploadsResult {
  std::vector<MultipartUpload> uploads;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};

absl::StatusOr<ListUploadsResult> ParseListMultipartUploads(std::string_view xml);

struct DeleteResult {
  std::vector<std::string> deleted;
  std::vector<std::pair<std::string, ErrorResponse>> errors;  // key, error
};

// <DeleteResult><Deleted><Key>..</Key></Deleted><Error><Key/><Code/><Message/></Error>
absl::StatusOr<DeleteResult> ParseDeleteObjects(std::string_view xml);

// Builders for request bodies, with XML escaping of keys.
// The ETags are sent as given (normally quoted, as S3 returned them).
std::string CompleteMultipartUploadXml(const std::vector<std::pair<int, std::string>>& part_etags);
// DeleteObjects also needs a Content-MD5 (or x-amz-checksum-*) header of the body.
std::string DeleteObjectsXml(const std::vector<std::string>& keys, bool quiet);

// Escapes the markup characters, and writes control characters as numeric
// references (&#13;), which is what S3 asks for keys containing them.
std::string XmlEscape(std::string_view text);

// The generic tree the parsers above are built on, for other S3 documents.
struct XmlElement {
  std::string name;  // local name: any namespace prefix is dropped
  // Character data directly inside this element, entities decoded. Whitespace
  // between child elements is dropped; a leaf keeps its text exactly.
  std::string text;
  std::vector<XmlElement> children;

  // The first child with this local name, or nullptr.
  const XmlElement* Child(std::string_view child_name) const;
  // The first such child's text, or "" when there is none.
  std::string ChildText(std::string_view child_name) const;
};

absl::StatusOr<XmlElement> ParseXml(std::string_view xml);

}  // namespace cairn::s3
