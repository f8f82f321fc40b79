#include "backend/s3/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace cairn::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kSessionTokenHeader = "x-amz-security-token";

using Digest = std::vector<unsigned char>;

std::string HexEncode(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    hex.push_back(kDigits[data[i] >> 4]);
    hex.push_back(kDigits[data[i] & 0xf]);
  }
  return hex;
}

Digest HmacSha256(const Digest& key, std::string_view data) {
  Digest mac(EVP_MAX_MD_SIZE);
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &mac_size);
  mac.resize(mac_size);
  return mac;
}

// Key material must not linger in freed heap memory.
void Wipe(Digest& bytes) { OPENSSL_cleanse(bytes.data(), bytes.size()); }

std::string ToLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

bool IsHttpWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view DateOf(const SigningRequest& request) {
  return std::string_view(request.amz_date).substr(0, 8);
}

std::string CredentialScope(const SigningRequest& request) {
  std::string scope(DateOf(request));
  scope += '/';
  scope += request.region;
  scope += '/';
  scope += request.service;
  scope += "/aws4_request";
  return scope;
}

bool IsHeaderFromRequestFields(const std::string& lower_name, const SigningRequest& request) {
  return lower_name == "host" || lower_name == "x-amz-date" ||
         (request.sign_content_sha256 && lower_name == "x-amz-content-sha256");
}

// Lowercase name and canonical value, sorted by name; repeated names keep
// their relative order so their values can be joined as the spec requires.
std::vector<std::pair<std::string, std::string>> CanonicalHeaderList(
    const SigningRequest& request) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("host", TrimAll(request.host));
  headers.emplace_back("x-amz-date", TrimAll(request.amz_date));
  if (request.sign_content_sha256) {
    headers.emplace_back("x-amz-content-sha256", TrimAll(request.payload_sha256));
  }
  for (const auto& [name, value] : request.headers) {
    std::string lower_name = ToLower(name);
    if (IsHeaderFromRequestFields(lower_name, request)) continue;
    headers.emplace_back(std::move(lower_name), TrimAll(value));
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, std::string>> merged;
  for (auto& header : headers) {
    if (!merged.empty() && merged.back().first == header.first) {
      merged.back().second += ',';
      merged.back().second += header.second;
    } else {
      merged.push_back(std::move(header));
    }
  }
  return merged;
}

std::string SignedHeaderNames(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string names;
  for (const auto& header : headers) {
    if (!names.empty()) names += ';';
    names += header.first;
  }
  return names;
}

std::string CanonicalQueryString(const SigningRequest& request) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(request.query.size());
  for (const auto& [name, value] : request.query) {
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string query;
  for (const auto& [name, value] : encoded) {
    if (!query.empty()) query += '&';
    query += name;
    query += '=';
    query += value;
  }
  return query;
}

std::string Signature(const SigningRequest& request, const std::string& secret_access_key) {
  std::string secret = "AWS4" + secret_access_key;
  Digest key(secret.begin(), secret.end());
  OPENSSL_cleanse(secret.data(), secret.size());
  for (std::string_view part :
       {DateOf(request), std::string_view(request.region), std::string_view(request.service),
        std::string_view("aws4_request")}) {
    Digest next = HmacSha256(key, part);
    Wipe(key);
    key = std::move(next);
  }
  Digest signature = HmacSha256(key, StringToSign(request));
  Wipe(key);
  return HexEncode(signature.data(), signature.size());
}

}  // namespace

std::string TrimAll(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (IsHttpWhitespace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}


std::string UriEncode(std::string_view text, bool encode_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out.push_back(c);
      continue;
    }
    unsigned char byte = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0xf]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  EVP_Digest(data.data(), data.size(), digest, &digest_size, EVP_sha256(), nullptr);
  return HexEncode(digest, digest_size);
}

std::string AmzDate(int64_t unix_seconds) {
  using namespace std::chrono;
  sys_seconds time{seconds(unix_seconds)};
  sys_days day = floor<days>(time);
  year_month_day date(day);
  hh_mm_ss clock(time - day);
  char text[32];
  std::snprintf(text, sizeof(text), "%04d%02u%02uT%02d%02d%02lldZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()));
  return text;
}

std::string CanonicalRequest(const SigningRequest& request) {
  std::vector<std::pair<std::string, std::string>> headers = CanonicalHeaderList(request);
  std::string canonical;
  canonical += request.method;
  canonical += '\n';
  canonical += request.path.empty() ? "/" : request.path;
  canonical += '\n';
  canonical += CanonicalQueryString(request);
  canonical += '\n';
  for (const auto& [name, value] : headers) {
    canonical += name;
    canonical += ':';
    canonical += value;
    canonical += '\n';
  }
  canonical += '\n';
  canonical += SignedHeaderNames(headers);
  canonical += '\n';
  canonical += request.payload_sha256;
  return canonical;
}

std::string StringToSign(const SigningRequest& request) {
  std::string text(kAlgorithm);
  text += '\n';
  text += request.amz_date;
  text += '\n';
  text += CredentialScope(request);
  text += '\n';
  text += Sha256Hex(CanonicalRequest(request));
  return text;
}

std::vector<std::pair<std::string, std::string>> SignV4(const SigningRequest& request,
                                                        const Credentials& credentials) {
  SigningRequest signed_request = request;
  if (!credentials.session_token.empty()) {
    auto& headers = signed_request.headers;
    std::erase_if(headers,
                  [](const auto& header) { return ToLower(header.first) == kSessionTokenHeader; });
    headers.emplace_back(kSessionTokenHeader, credentials.session_token);
  }

  std::string authorization(kAlgorithm);
  authorization += " Credential=";
  authorization += credentials.access_key_id;
  authorization += '/';
  authorization += CredentialScope(signed_request);
  authorization += ", SignedHeaders=";
  authorization += SignedHeaderNames(CanonicalHeaderList(signed_request));
  authorization += ", Signature=";
  authorization += Signature(signed_request, credentials.secret_access_key);

  std::vector<std::pair<std::string, std::string>> added;
  added.emplace_back("Authorization", std::move(authorization));
  added.emplace_back("x-amz-date", request.amz_date);
  if (request.sign_content_sha256) {
    added.emplace_back("x-amz-content-sha256", request.payload_sha256);
  }
  if (!credentials.session_token.empty()) {
    added.emplace_back(std::string(kSessionTokenHeader), credentials.session_token);
  }
  return added;
}

}  // namespace cairn::s3
