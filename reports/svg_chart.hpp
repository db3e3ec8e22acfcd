#pragma once
// Small inline SVG charts for the HTML report: line charts (one polyline per series) and labelled
// scatter plots, with axes, ticks at round numbers and a legend. Self-contained markup, no scripts.
#include <string>
#include <utility>
#include <vector>

namespace kvb {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
  int color = -1;    // palette index; -1: the series' position
  int dash = 0;      // 0 solid, 1 dashed, 2 dotted (e.g. one per budget of a method)
};

struct ChartSpec {
  std::string title, x_label, y_label;
  int width = 960, height = 380;
};

// One polyline per series (points in x order); a series with a single point is drawn as a dot.
std::string svg_line_chart(const ChartSpec& spec, const std::vector<Series>& series);

// One labelled dot per series' points.
std::string svg_scatter_chart(const ChartSpec& spec, const std::vector<Series>& series);

}  // namespace kvb
