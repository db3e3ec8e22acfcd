#include "reports/svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "reports/markup.hpp"

namespace kvb {

namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
constexpr int kLeft = 70, kRight = 190, kTop = 34, kBottom = 46;  // plot margins; legend on the right
constexpr const char* kDash[] = {"", " stroke-dasharray=\"6 3\"", " stroke-dasharray=\"2 3\""};

const char* color_of(const std::vector<Series>& series, size_t i) {
  return kColors[(series[i].color >= 0 ? series[i].color : int(i)) % 10];
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  // A degenerate range is widened; every range gets 4% of room on each side so that points on
  // the extremes are not clipped by the frame.
  void settle() {
    if (!std::isfinite(lo)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
      lo -= 0.5 * std::max(1e-9, std::fabs(lo));
      hi += 0.5 * std::max(1e-9, std::fabs(hi));
    }
    const double pad = 0.04 * (hi - lo);
    lo -= pad;
    hi += pad;
  }
};

// About five ticks at 1, 2 or 5 times a power of ten.
std::vector<double> ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return out;
}

std::string label(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:.4g}", v);
}

struct Frame {
  ChartSpec spec;
  Range x, y;
  double px(double v) const { return kLeft + (v - x.lo) / (x.hi - x.lo) * (spec.width - kLeft - kRight); }
  double py(double v) const { return spec.height - kBottom - (v - y.lo) / (y.hi - y.lo) * (spec.height - kTop - kBottom); }
};

Frame frame_for(const ChartSpec& spec, const std::vector<Series>& series) {
  Frame f{spec, {}, {}};
  for (const Series& s : series)
    for (auto [x, y] : s.points) f.x.add(x), f.y.add(y);
  f.x.settle();
  f.y.settle();
  return f;
}

std::string open_chart(const Frame& f, const std::vector<Series>& series) {
  const ChartSpec& c = f.spec;
  std::string out = fmt::format(
      "<svg class=\"chart\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">\n"
      "<text x=\"{}\" y=\"20\" class=\"title\">{}</text>\n",
      c.width, c.height, c.width, c.height, markup_escape(c.title), kLeft, markup_escape(c.title));
  const int x0 = kLeft, x1 = c.width - kRight, y0 = c.height - kBottom, y1 = kTop;
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"plot\"/>\n", x0, y1, x1 - x0, y0 - y1);
  for (double t : ticks(f.x.lo, f.x.hi))
    out += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" class=\"grid\"/><text x=\"{0:.1f}\" "
                       "y=\"{3}\" class=\"tick\" text-anchor=\"middle\">{4}</text>\n",
                       f.px(t), y1, y0, y0 + 16, label(t));
  for (double t : ticks(f.y.lo, f.y.hi))
    out += fmt::format("<line x1=\"{0}\" y1=\"{2:.1f}\" x2=\"{1}\" y2=\"{2:.1f}\" class=\"grid\"/><text x=\"{3}\" "
                       "y=\"{4:.1f}\" class=\"tick\" text-anchor=\"end\">{5}</text>\n",
                       x0, x1, f.py(t), x0 - 6, f.py(t) + 4, label(t));
  out += fmt::format("<text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">{}</text>\n", (x0 + x1) / 2,
                     c.height - 8, markup_escape(c.x_label));
  out += fmt::format("<text x=\"14\" y=\"{}\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text>\n",
                     (y0 + y1) / 2, (y0 + y1) / 2, markup_escape(c.y_label));
  for (size_t i = 0; i < series.size(); ++i)
    out += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/><text x=\"{}\" "
                       "y=\"{}\" class=\"legend\">{}</text>\n",
                       x1 + 10, y1 + 9 + 16 * int(i), x1 + 30, y1 + 9 + 16 * int(i), color_of(series, i),
                       kDash[series[i].dash % 3], x1 + 36, y1 + 13 + 16 * int(i), markup_escape(series[i].name));
  return out;
}

}  // namespace

std::string svg_line_chart(const ChartSpec& spec, const std::vector<Series>& series) {
  const Frame f = frame_for(spec, series);
  std::string out = open_chart(f, series);
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& pts = series[i].points;
    if (pts.size() == 1) {
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\" class=\"series\"/>\n", f.px(pts[0].first),
                         f.py(pts[0].second), color_of(series, i));
      continue;
    }
    std::string coords;
    for (auto [x, y] : pts)
      if (std::isfinite(x) && std::isfinite(y)) coords += fmt::format("{:.1f},{:.1f} ", f.px(x), f.py(y));
    out += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} class=\"series\"/>\n",
                       coords, color_of(series, i), kDash[series[i].dash % 3]);
  }
  return out + "</svg>\n";
}

std::string svg_scatter_chart(const ChartSpec& spec, const std::vector<Series>& series) {
  const Frame f = frame_for(spec, series);
  std::string out = open_chart(f, series);
  for (size_t i = 0; i < series.size(); ++i)
    for (auto [x, y] : series[i].points)
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\" class=\"series\"><title>{}: {}, {}</title>"
                         "</circle>\n",
                         f.px(x), f.py(y), color_of(series, i), markup_escape(series[i].name), label(x), label(y));
  return out + "</svg>\n";
}

}  // namespace kvb
