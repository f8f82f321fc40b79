// The Prometheus text exposition format, version 0.0.4: what GET /metrics
// returns. A family is announced once (# HELP, # TYPE) and its samples
// follow it; histograms are written as cumulative _bucket lines, _sum and
// _count. https://prometheus.io/docs/instrumenting/exposition_formats/
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace cairn {

// What GET /metrics answers with in the Content-Type header.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

struct MetricLabel {
  std::string_view name;
  std::string_view value;  // any bytes; escaped when written
};

// A label value as the format wants it inside its quotes: backslash, double
// quote and newline escaped.
std::string EscapeLabelValue(std::string_view value);

// A sample value: integers exactly, others in the shortest form that reads
// back the same; +Inf, -Inf and NaN as the format spells them.
std::string FormatMetricValue(double value);

class MetricsText {
 public:
  // Starts a family: its # HELP and # TYPE lines. `help` is one line of
  // plain text (a backslash or newline in it is escaped).
  void Family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the current family. Counters' names end in _total.
  void Value(std::string_view name, uint64_t value,
             std::initializer_list<MetricLabel> labels = {});
  void Value(std::string_view name, double value,
             std::initializer_list<MetricLabel> labels = {});

  // One histogram of the current family: `counts` holds the observations
  // per bucket, not cumulative, one more than `upper_bounds` (the last is
  // the +Inf bucket); `sum` is the total of the observed values. Written
  // cumulative, so the +Inf bucket always equals _count.
  void Histogram(std::string_view name, std::span<const double> upper_bounds,
                 std::span<const uint64_t> counts, double sum,
                 std::initializer_list<MetricLabel> labels = {});

  const std::string& text() const { return text_; }

 private:
  // name{labels[,extra="value"]} and a space, ready for the value.
  void SampleStart(std::string_view name, std::string_view suffix,
                   std::initializer_list<MetricLabel> labels,
                   const MetricLabel* extra = nullptr);

  std::string text_;
};

}  // namespace cairn
