#include "daemon/metrics_text.h"

#include <charconv>
#include <cmath>

namespace cairn {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Plain decimals where they stay short (bucket bounds like 0.0001 read
  // better than 1e-04), exponents for the rest; either way the shortest
  // digits that read back as the same double.
  double magnitude = std::fabs(value);
  bool plain = value == 0 || (magnitude >= 1e-9 && magnitude < 1e15);
  char buf[64];
  std::to_chars_result r =
      plain ? std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed)
            : std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

void MetricsText::Family(std::string_view name, MetricType type, std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  for (char c : help) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else {
      text_.push_back(c);
    }
  }
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += TypeName(type);
  text_ += '\n';
}

void MetricsText::SampleStart(std::string_view name, std::string_view suffix,
                              std::initializer_list<MetricLabel> labels,
                              const MetricLabel* extra) {
  text_ += name;
  text_ += suffix;
  if (labels.size() > 0 || extra != nullptr) {
    text_ += '{';
    bool first = true;
    auto add = [&](const MetricLabel& label) {
      if (!first) text_ += ',';
      first = false;
      text_ += label.name;
      text_ += "=\"";
      text_ += EscapeLabelValue(label.value);
      text_ += '"';
    };
    for (const MetricLabel& label : labels) add(label);
    if (extra != nullptr) add(*extra);
    text_ += '}';
  }
  text_ += ' ';
}

void MetricsText::Value(std::string_view name, uint64_t value,
                        std::initializer_list<MetricLabel> labels) {
  SampleStart(name, "", labels);
  text_ += std::to_string(value);
  text_ += '\n';
}

void MetricsText::Value(std::string_view name, double value,
                        std::initializer_list<MetricLabel> labels) {
  SampleStart(name, "", labels);
  text_ += FormatMetricValue(value);
  text_ += '\n';
}

void MetricsText::Histogram(std::string_view name, std::span<const double> upper_bounds,
                            std::span<const uint64_t> counts, double sum,
                            std::initializer_list<MetricLabel> labels) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds.size(); ++i) {
    if (i < counts.size()) cumulative += counts[i];
    std::string bound = i < upper_bounds.size() ? FormatMetricValue(upper_bounds[i]) : "+Inf";
    MetricLabel le{"le", bound};
    SampleStart(name, "_bucket", labels, &le);
    text_ += std::to_string(cumulative);
    text_ += '\n';
  }
  SampleStart(name, "_sum", labels);
  text_ += FormatMetricValue(sum);
  text_ += '\n';
  SampleStart(name, "_count", labels);
  text_ += std::to_string(cumulative);
  text_ += '\n';
}

}  // namespace cairn
