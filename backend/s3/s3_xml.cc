#include "backend/s3/s3_xml.h"

#include <charconv>

#include "absl/time/time.h"
#include "backend/base/fs_error.h"

namespace cairn::s3 {
namespace {

// S3 documents nest at most four deep; the bound keeps hostile input from
// exhausting the stack through recursion.
constexpr int kMaxDepth = 32;

absl::Status Malformed(std::string_view what) {
  return FsError(FsErrorKind::kIo, "malformed S3 XML: " + std::string(what));
}

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsAllSpace(std::string_view text) {
  for (char c : text) {
    if (!IsXmlSpace(c)) return false;
  }
  return true;
}

std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && IsXmlSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsXmlSpace(text.back())) text.remove_suffix(1);
  return text;
}

bool IsNameStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

void AppendUtf8(uint32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// `reference` is what lies between '&#' and ';'.
absl::Status AppendCharacterReference(std::string_view reference, std::string& out) {
  int base = 10;
  if (!reference.empty() && (reference.front() == 'x' || reference.front() == 'X')) {
    base = 16;
    reference.remove_prefix(1);
  }
  uint32_t code_point = 0;
  auto [end, error] =
      std::from_chars(reference.data(), reference.data() + reference.size(), code_point, base);
  if (reference.empty() || error != std::errc() || end != reference.data() + reference.size()) {
    return Malformed("bad character reference");
  }
  if (code_point == 0 || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return Malformed("character reference out of range");
  }
  AppendUtf8(code_point, out);
  return absl::OkStatus();
}

// Appends character data with its entity and character references decoded.
absl::Status AppendDecodedText(std::string_view raw, std::string& out) {
  // References are short; searching further for ';' would only pair a bare
  // '&' with some unrelated later semicolon.
  constexpr size_t kMaxReferenceLength = 16;
  while (!raw.empty()) {
    size_t amp = raw.find('&');
    out.append(raw.substr(0, amp));
    if (amp == std::string_view::npos) break;
    raw.remove_prefix(amp + 1);
    size_t semicolon = raw.substr(0, kMaxReferenceLength).find(';');
    if (semicolon == std::string_view::npos) return Malformed("unterminated entity");
    std::string_view entity = raw.substr(0, semicolon);
    raw.remove_prefix(semicolon + 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (!entity.empty() && entity.front() == '#') {
      if (absl::Status status = AppendCharacterReference(entity.substr(1), out); !status.ok()) {
        return status;
      }
    } else {
      return Malformed("unknown entity");
    }
  }
  return absl::OkStatus();
}

// A recursive-descent parser over the whole body; positions never pass the
// end, so every look-ahead is bounds-checked by std::string_view.
class XmlParser {
 public:
  explicit XmlParser(std::string_view input) : input_(input) {}

  absl::StatusOr<XmlElement> ParseDocument() {
    if (Rest().starts_with("\xEF\xBB\xBF")) pos_ += 3;  // UTF-8 byte order mark
    if (absl::Status status = SkipMisc(); !status.ok()) return status;
    if (AtEnd()) return Malformed("no root element");
    XmlElement root;
    if (absl::Status status = ParseElement(root, 1); !status.ok()) return status;
    if (absl::Status status = SkipMisc(); !status.ok()) return status;
    if (!AtEnd()) return Malformed("content after the root element");
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= input_.size(); }
  std::string_view Rest() const { return input_.substr(pos_); }

  void SkipSpace() {
    while (!AtEnd() && IsXmlSpace(input_[pos_])) ++pos_;
  }

  // Moves past the next `terminator`, returning what came before it.
  absl::StatusOr<std::string_view> TakeUntil(std::string_view terminator, std::string_view what) {
    size_t found = input_.find(terminator, pos_);
    if (found == std::string_view::npos) return Malformed("unterminated " + std::string(what));
    std::string_view taken = input_.substr(pos_, found - pos_);
    pos_ = found + terminator.size();
    return taken;
  }

  // Whitespace, comments and processing instructions (the XML declaration
  // among them) outside the root element.
  absl::Status SkipMisc() {
    while (true) {
      SkipSpace();
      if (Rest().starts_with("<?")) {
        pos_ += 2;
        if (absl::StatusOr<std::string_view> skipped = TakeUntil("?>", "processing instruction");
            !skipped.ok()) {
          return skipped.status();
        }
      } else if (Rest().starts_with("<!--")) {
        pos_ += 4;
        if (absl::StatusOr<std::string_view> skipped = TakeUntil("-->", "comment"); !skipped.ok()) {
          return skipped.status();
        }
      } else if (Rest().starts_with("<!")) {
        return Malformed("DOCTYPE and other declarations are not accepted");
      } else {
        return absl::OkStatus();
      }
    }
  }

  absl::StatusOr<std::string_view> ParseName() {
    size_t start = pos_;
    if (AtEnd() || !IsNameStart(input_[pos_])) return Malformed("expected a name");
    while (!AtEnd() && IsNameChar(input_[pos_])) ++pos_;
    return input_.substr(start, pos_ - start);
  }

  // Skips the attributes after an element name; sets `self_closing` for "/>".
  absl::Status SkipAttributes(bool& self_closing) {
    while (true) {
      SkipSpace();
      if (AtEnd()) return Malformed("unterminated start tag");
      if (input_[pos_] == '>') {
        ++pos_;
        self_closing = false;
        return absl::OkStatus();
      }
      if (Rest().starts_with("/>")) {
        pos_ += 2;
        self_closing = true;
        return absl::OkStatus();
      }
      if (absl::StatusOr<std::string_view> name = ParseName(); !name.ok()) return name.status();
      SkipSpace();
      if (AtEnd() || input_[pos_] != '=') return Malformed("attribute without a value");
      ++pos_;
      SkipSpace();
      if (AtEnd() || (input_[pos_] != '"' && input_[pos_] != '\'')) {
        return Malformed("unquoted attribute value");
      }
      char quote = input_[pos_++];
      if (absl::StatusOr<std::string_view> value =
              TakeUntil(std::string_view(&quote, 1), "attribute value");
          !value.ok()) {
        return value.status();
      }
    }
  }

  // Parses the element starting at '<' into `element`.
  absl::Status ParseElement(XmlElement& element, int depth) {
    if (depth > kMaxDepth) return Malformed("elements nested too deeply");
    if (AtEnd() || input_[pos_] != '<') return Malformed("expected an element");
    ++pos_;
    absl::StatusOr<std::string_view> qualified_name = ParseName();
    if (!qualified_name.ok()) return qualified_name.status();
    size_t colon = qualified_name->rfind(':');
    element.name = std::string(colon == std::string_view::npos ? *qualified_name
                                                               : qualified_name->substr(colon + 1));
    bool self_closing = false;
    if (absl::Status status = SkipAttributes(self_closing); !status.ok()) return status;
    if (self_closing) return absl::OkStatus();

    while (true) {
      if (AtEnd()) return Malformed("unterminated element <" + element.name + ">");
      if (input_[pos_] != '<') {
        size_t markup = input_.find('<', pos_);
        if (markup == std::string_view::npos) markup = input_.size();
        std::string_view raw = input_.substr(pos_, markup - pos_);
        pos_ = markup;
        if (absl::Status status = AppendDecodedText(raw, element.text); !status.ok()) {
          return status;
        }
      } else if (Rest().starts_with("</")) {
        pos_ += 2;
        absl::StatusOr<std::string_view> end_name = ParseName();
        if (!end_name.ok()) return end_name.status();
        if (*end_name != *qualified_name) return Malformed("mismatched end tag");
        SkipSpace();
        if (AtEnd() || input_[pos_] != '>') return Malformed("unterminated end tag");
        ++pos_;
        if (!element.children.empty() && IsAllSpace(element.text)) element.text.clear();
        return absl::OkStatus();
      } else if (Rest().starts_with("<!--")) {
        pos_ += 4;
        if (absl::StatusOr<std::string_view> skipped = TakeUntil("-->", "comment"); !skipped.ok()) {
          return skipped.status();
        }
      } else if (Rest().starts_with("<![CDATA[")) {
        pos_ += 9;
        absl::StatusOr<std::string_view> data = TakeUntil("]]>", "CDATA section");
        if (!data.ok()) return data.status();
        element.text.append(*data);
      } else if (Rest().starts_with("<?")) {
        pos_ += 2;
        if (absl::StatusOr<std::string_view> skipped = TakeUntil("?>", "processing instruction");
            !skipped.ok()) {
          return skipped.status();
        }
      } else if (Rest().starts_with("<!")) {
        return Malformed("declaration inside an element");
      } else {
        element.children.emplace_back();
        if (absl::Status status = ParseElement(element.children.back(), depth + 1); !status.ok()) {
          return status;
        }
      }
    }
  }

  std::string_view input_;
  size_t pos_ = 0;
};

absl::StatusOr<XmlElement> ParseRoot(std::string_view xml, std::string_view expected_root) {
  absl::StatusOr<XmlElement> root = ParseXml(xml);
  if (!root.ok()) return root.status();
  if (root->name != expected_root) {
    return Malformed("expected <" + std::string(expected_root) + ">, got <" + root->name + ">");
  }
  return root;
}

absl::StatusOr<bool> ParseBool(const XmlElement& element) {
  std::string_view text = TrimSpace(element.text);
  if (text == "true") return true;
  if (text == "false") return false;
  return Malformed("<" + element.name + "> is not a boolean");
}

// "2026-12-06T04:01:30.000Z" (ISO 8601, as S3 writes times in listings)
// to Unix seconds; 0 for anything else. Not an error: a listing is still
// good for what does not look at times.
int64_t ParseIsoSeconds(std::string_view text) {
  text = TrimSpace(text);
  absl::Time time;
  std::string error;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, std::string(text), &time, &error)) {
    return 0;
  }
  const int64_t seconds = absl::ToUnixSeconds(time);
  return seconds > 0 ? seconds : 0;
}

absl::StatusOr<uint64_t> ParseUint64(const XmlElement& element) {
  std::string_view text = TrimSpace(element.text);
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return Malformed("<" + element.name + "> is not an unsigned integer");
  }
  return value;
}

// The text of a child that must be present and non-empty.
absl::StatusOr<std::string> RequiredChildText(const XmlElement& parent,
                                              std::string_view child_name) {
  const XmlElement* child = parent.Child(child_name);
  if (child == nullptr || child->text.empty()) {
    return Malformed("<" + parent.name + "> without <" + std::string(child_name) + ">");
  }
  return child->text;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// S3's encoding-type=url output is form encoding: '+' stands for a space.
absl::Status FormDecodeInPlace(std::string& text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      decoded.push_back(' ');
    } else if (text[i] != '%') {
      decoded.push_back(text[i]);
    } else {
      int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      int low = high >= 0 ? HexValue(text[i + 2]) : -1;
      if (low < 0) return Malformed("bad percent-encoding in a url-encoded name");
      decoded.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    }
  }
  text = std::move(decoded);
  return absl::OkStatus();
}

// Whether names in the document must be form-decoded (<EncodingType>url</EncodingType>).
absl::StatusOr<bool> IsUrlEncoded(const XmlElement& root) {
  const XmlElement* encoding = root.Child("EncodingType");
  if (encoding == nullptr) return false;
  std::string_view type = TrimSpace(encoding->text);
  if (type == "url") return true;
  if (type.empty()) return false;
  return Malformed("unknown EncodingType");
}

absl::Status FormDecodeAll(std::vector<std::string*> texts) {
  for (std::string* text : texts) {
    if (absl::Status status = FormDecodeInPlace(*text); !status.ok()) return status;
  }
  return absl::OkStatus();
}

ErrorResponse ErrorFields(const XmlElement& error) {
  return {.code = error.ChildText("Code"),
          .message = error.ChildText("Message"),
          .request_id = error.ChildText("RequestId"),
          .resource = error.ChildText("Resource")};
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& child : children) {
    if (child.name == child_name) return &child;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* child = Child(child_name);
  return child == nullptr ? std::string() : child->text;
}

absl::StatusOr<XmlElement> ParseXml(std::string_view xml) {
  if (IsAllSpace(xml)) return Malformed("empty document");
  return XmlParser(xml).ParseDocument();
}

absl::StatusOr<ListResult> ParseListObjectsV2(std::string_view xml) {
  absl::StatusOr<XmlElement> root = ParseRoot(xml, "ListBucketResult");
  if (!root.ok()) return root.status();
  ListResult result;
  for (const XmlElement& child : root->children) {
    if (child.name == "Contents") {
      ObjectEntry entry;
      absl::StatusOr<std::string> key = RequiredChildText(child, "Key");
      if (!key.ok()) return key.status();
      entry.key = std::move(*key);
      const XmlElement* size = child.Child("Size");
      if (size == nullptr) return Malformed("<Contents> without <Size>");
      absl::StatusOr<uint64_t> size_value = ParseUint64(*size);
      if (!size_value.ok()) return size_value.status();
      entry.size = *size_value;
      entry.etag = child.ChildText("ETag");
      entry.last_modified = ParseIsoSeconds(child.ChildText("LastModified"));
      result.objects.push_back(std::move(entry));
    } else if (child.name == "CommonPrefixes") {
      for (const XmlElement& prefix : child.children) {
        if (prefix.name == "Prefix") result.common_prefixes.push_back(prefix.text);
      }
    } else if (child.name == "IsTruncated") {
      absl::StatusOr<bool> truncated = ParseBool(child);
      if (!truncated.ok()) return truncated.status();
      result.truncated = *truncated;
    } else if (child.name == "NextContinuationToken") {
      result.next_continuation_token = child.text;
    }
  }
  absl::StatusOr<bool> url_encoded = IsUrlEncoded(*root);
  if (!url_encoded.ok()) return url_encoded.status();
  if (*url_encoded) {
    std::vector<std::string*> names;
    for (ObjectEntry& entry : result.objects) names.push_back(&entry.key);
    for (std::string& prefix : result.common_prefixes) names.push_back(&prefix);
    if (absl::Status status = FormDecodeAll(std::move(names)); !status.ok()) return status;
  }
  if (result.truncated && result.next_continuation_token.empty()) {
    return Malformed("truncated listing without <NextContinuationToken>");
  }
  return result;
}

absl::StatusOr<ErrorResponse> ParseError(std::string_view xml) {
  absl::StatusOr<XmlElement> root = ParseRoot(xml, "Error");
  if (!root.ok()) return root.status();
  ErrorResponse error = ErrorFields(*root);
  if (error.code.empty()) return Malformed("<Error> without <Code>");
  return error;
}

absl::StatusOr<std::string> ParseInitiateMultipartUpload(std::string_view xml) {
  absl::StatusOr<XmlElement> root = ParseRoot(xml, "InitiateMultipartUploadResult");
  if (!root.ok()) return root.status();
  return RequiredChildText(*root, "UploadId");
}

absl::StatusOr<ListUploadsResult> ParseListMultipartUploads(std::string_view xml) {
  absl::StatusOr<XmlElement> root = ParseRoot(xml, "ListMultipartUploadsResult");
  if (!root.ok()) return root.status();
  ListUploadsResult result;
  for (const XmlElement& child : root->children) {
    if (child.name == "Upload") {
      absl::StatusOr<std::string> key = RequiredChildText(child, "Key");
      if (!key.ok()) return key.status();
      absl::StatusOr<std::string> upload_id = RequiredChildText(child, "UploadId");
      if (!upload_id.ok()) return upload_id.status();
      result.uploads.push_back({.key = std::move(*key), .upload_id = std::move(*upload_id)});
    } else if (child.name == "IsTruncated") {
      absl::StatusOr<bool> truncated = ParseBool(child);
      if (!truncated.ok()) return truncated.status();
      result.truncated = *truncated;
    } else if (child.name == "NextKeyMarker") {
      result.next_key_marker = child.text;
    } else if (child.name == "NextUploadIdMarker") {
      result.next_upload_id_marker = child.text;
    }
  }
  absl::StatusOr<bool> url_encoded = IsUrlEncoded(*root);
  if (!url_encoded.ok()) return url_encoded.status();
  if (*url_encoded) {
    std::vector<std::string*> names = {&result.next_key_marker};
    for (MultipartUpload& upload : result.uploads) names.push_back(&upload.key);
    if (absl::Status status = FormDecodeAll(std::move(names)); !status.ok()) return status;
  }
  if (result.truncated && result.next_key_marker.empty()) {
    return Malformed("truncated upload listing without <NextKeyMarker>");
  }
  return result;
}

absl::StatusOr<DeleteResult> ParseDeleteObjects(std::string_view xml) {
  absl::StatusOr<XmlElement> root = ParseRoot(xml, "DeleteResult");
  if (!root.ok()) return root.status();
  DeleteResult result;
  for (const XmlElement& child : root->children) {
    if (child.name == "Deleted") {
      absl::StatusOr<std::string> key = RequiredChildText(child, "Key");
      if (!key.ok()) return key.status();
      result.deleted.push_back(std::move(*key));
    } else if (child.name == "Error") {
      absl::StatusOr<std::string> key = RequiredChildText(child, "Key");
      if (!key.ok()) return key.status();
      ErrorResponse error = ErrorFields(child);
      if (error.code.empty()) return Malformed("<Error> without <Code>");
      result.errors.emplace_back(std::move(*key), std::move(error));
    }
  }
  return result;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          out += "&#" + std::to_string(static_cast<unsigned char>(c)) + ";";
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

std::string CompleteMultipartUploadXml(const std::vector<std::pair<int, std::string>>& part_etags) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& [part_number, etag] : part_etags) {
    xml += "<Part><PartNumber>" + std::to_string(part_number) + "</PartNumber><ETag>" +
           XmlEscape(etag) + "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

std::string DeleteObjectsXml(const std::vector<std::string>& keys, bool quiet) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  if (quiet) xml += "<Quiet>true</Quiet>";
  for (const std::string& key : keys) {
    xml += "<Object><Key>" + XmlEscape(key) + "</Key></Object>";
  }
  xml += "</Delete>";
  return xml;
}

}  // namespace cairn::s3
