// The little JSON cairn writes (stats.json, status --json, control replies).
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace cairn {

// `text` as a JSON string literal, quotes included.
inline std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace cairn
