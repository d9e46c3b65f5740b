//! Minimal SVG line charts (axes, ticks, lines with dash patterns and markers, labels at the lines'
//! ends, a legend, horizontal reference lines), written by hand so that no font or rendering
//! library is needed: the viewer renders the text. The documents are self-contained (no external
//! fonts, images or scripts).
//!
//! Every line has its own [`LineStyle`] (colour, dash pattern, marker shape), so that two series
//! with the same values stay visible: solid lines are drawn first and dashed ones over them (the
//! lower line shows through the gaps), markers are hollow, and markers that would land on each
//! other are moved a few pixels apart sideways.

use std::fmt::Write;

/// The Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008), yellow last: it reads poorly on
/// white, so it is given out last.
pub mod okabe_ito {
    /// Black.
    pub const BLACK: &str = "#000000";
    /// Orange.
    pub const ORANGE: &str = "#E69F00";
    /// Sky blue.
    pub const SKY_BLUE: &str = "#56B4E9";
    /// Bluish green.
    pub const BLUISH_GREEN: &str = "#009E73";
    /// Blue.
    pub const BLUE: &str = "#0072B2";
    /// Vermillion.
    pub const VERMILLION: &str = "#D55E00";
    /// Reddish purple.
    pub const REDDISH_PURPLE: &str = "#CC79A7";
    /// Yellow.
    pub const YELLOW: &str = "#F0E442";
}

/// Colour of reference lines (in no series' palette).
pub const REFERENCE_COLOUR: &str = "#8C8C8C";
/// Dash pattern of reference lines.
pub const REFERENCE_DASH: &str = "6 4";

/// Shape of a line's markers; all are drawn hollow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Marker {
    /// ○
    Circle,
    /// □
    Square,
    /// △
    TriangleUp,
    /// ◇
    Diamond,
    /// ▽
    TriangleDown,
    /// ×
    Cross,
    /// +
    Plus,
    /// ✳ (× and + together)
    Asterisk,
}

impl Marker {
    /// Every shape.
    pub const ALL: [Marker; 8] = [
        Marker::Circle,
        Marker::Square,
        Marker::TriangleUp,
        Marker::Diamond,
        Marker::TriangleDown,
        Marker::Cross,
        Marker::Plus,
        Marker::Asterisk,
    ];

    /// Name written into the SVG (`class="marker <name>"`).
    pub fn name(self) -> &'static str {
        match self {
            Marker::Circle => "circle",
            Marker::Square => "square",
            Marker::TriangleUp => "triangle-up",
            Marker::Diamond => "diamond",
            Marker::TriangleDown => "triangle-down",
            Marker::Cross => "cross",
            Marker::Plus => "plus",
            Marker::Asterisk => "asterisk",
        }
    }

    /// Appends the marker centred on `(x, y)`.
    fn draw(self, svg: &mut String, x: f64, y: f64, colour: &str) {
        let attrs = format!(r#"class="marker {}" fill="none" stroke="{colour}" stroke-width="1.5""#, self.name());
        let polygon = |corners: &[(f64, f64)]| {
            let points: Vec<String> = corners.iter().map(|(dx, dy)| format!("{:.1},{:.1}", x + dx, y + dy)).collect();
            format!(r#"<polygon {attrs} points="{}"/>"#, points.join(" "))
        };
        let path = |segments: &[(f64, f64, f64, f64)]| {
            let d: Vec<String> = segments
                .iter()
                .map(|(x1, y1, x2, y2)| format!("M{:.1},{:.1} L{:.1},{:.1}", x + x1, y + y1, x + x2, y + y2))
                .collect();
            format!(r#"<path {attrs} d="{}"/>"#, d.join(" "))
        };
        let (c, p) = (3.5, 4.5);
        let element = match self {
            Marker::Circle => format!(r#"<circle {attrs} cx="{x:.1}" cy="{y:.1}" r="3.5"/>"#),
            Marker::Square => {
                format!(r#"<rect {attrs} x="{:.1}" y="{:.1}" width="6.4" height="6.4"/>"#, x - 3.2, y - 3.2)
            }
            Marker::TriangleUp => polygon(&[(0.0, -p), (4.0, 3.0), (-4.0, 3.0)]),
            Marker::Diamond => polygon(&[(0.0, -p), (p, 0.0), (0.0, p), (-p, 0.0)]),
            Marker::TriangleDown => polygon(&[(0.0, p), (4.0, -3.0), (-4.0, -3.0)]),
            Marker::Cross => path(&[(-c, -c, c, c), (-c, c, c, -c)]),
            Marker::Plus => path(&[(-p, 0.0, p, 0.0), (0.0, -p, 0.0, p)]),
            Marker::Asterisk => path(&[(-c, -c, c, c), (-c, c, c, -c), (-p, 0.0, p, 0.0), (0.0, -p, 0.0, p)]),
        };
        svg.push_str(&element);
        svg.push('\n');
    }
}

/// How one line is drawn.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineStyle {
    /// Stroke colour (`#RRGGBB`).
    pub colour: String,
    /// `stroke-dasharray`; empty for a solid line.
    pub dash: String,
    /// Marker shape.
    pub marker: Marker,
}

impl Default for LineStyle {
    fn default() -> Self {
        Self { colour: okabe_ito::BLACK.into(), dash: String::new(), marker: Marker::Circle }
    }
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend and end label.
    pub name: String,
    /// `(x, y)` points, drawn in order; the last finite one is the line's end.
    pub points: Vec<(f64, f64)>,
    /// Colour, dash pattern and marker.
    pub style: LineStyle,
}

impl Series {
    /// The last finite point.
    pub fn end(&self) -> Option<(f64, f64)> {
        self.points.iter().rev().copied().find(|(x, y)| x.is_finite() && y.is_finite())
    }
}

/// A horizontal line across the plot (grey, dashed), labelled at its right end.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Label.
    pub label: String,
    /// Level.
    pub y: f64,
}

/// How the x axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XScale {
    /// Linear.
    Linear,
    /// `ln(1 + x)`: spreads small counts (0, 1, 2, 5, …) and still shows 100.
    Log1p,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// X axis scale.
    pub x_scale: XScale,
    /// X values that get a tick (all distinct x values when empty).
    pub x_ticks: Vec<f64>,
    /// The lines.
    pub series: Vec<Series>,
    /// Horizontal reference lines.
    pub references: Vec<Reference>,
}

/// Size of one chart.
pub const WIDTH: f64 = 960.0;
/// Height of one chart (a stack of `n` charts is `n` times as high).
pub const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 390.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const PLOT_RIGHT: f64 = WIDTH - RIGHT;
/// Where the legend starts, right of the end labels' column.
const LEGEND_X: f64 = PLOT_RIGHT + 160.0;
/// Height of a line of text (12 px font).
const LINE_HEIGHT: f64 = 14.0;
/// Horizontal gap between a line's end and its label.
const LABEL_GAP: f64 = 14.0;
/// Markers on a line with more points are drawn on every n-th point only.
const MAX_MARKERS: usize = 16;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Rough width of `text` in the 12 px sans-serif font (no font metrics are available).
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 7.0 + 4.0
}

/// Round tick step for a span: 1, 2 or 5 × 10^n, about `count` ticks.
fn nice_step(span: f64, count: f64) -> f64 {
    let raw = (span / count).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// A text label that wants to sit at `desired` (its vertical centre) and spans `x..x + width`.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    x: f64,
    width: f64,
    desired: f64,
    placed: f64,
}

/// Moves labels vertically so that no two that overlap horizontally are closer than `height`,
/// keeping their top-to-bottom order and each group of colliding labels centred on where its
/// members want to be, within `lo..=hi` where they fit.
fn place_labels(labels: &mut [Label], height: f64, lo: f64, hi: f64) {
    // Columns: labels whose horizontal extents overlap, transitively.
    let mut by_x: Vec<usize> = (0..labels.len()).collect();
    by_x.sort_by(|&a, &b| labels[a].x.total_cmp(&labels[b].x).then(a.cmp(&b)));
    let mut columns: Vec<Vec<usize>> = Vec::new();
    let mut column_end = f64::NEG_INFINITY;
    for i in by_x {
        let (x, end) = (labels[i].x, labels[i].x + labels[i].width);
        match columns.last_mut() {
            Some(column) if x < column_end => {
                column.push(i);
                column_end = column_end.max(end);
            }
            _ => {
                columns.push(vec![i]);
                column_end = end;
            }
        }
    }
    for mut column in columns {
        column.sort_by(|&a, &b| labels[a].desired.total_cmp(&labels[b].desired).then(a.cmp(&b)));
        // Clusters of consecutive labels stacked `height` apart: (first index in `column`, count, top).
        let mut clusters: Vec<(usize, usize, f64)> = Vec::new();
        for (rank, &i) in column.iter().enumerate() {
            clusters.push((rank, 1, labels[i].desired.min(hi).max(lo)));
            while clusters.len() > 1 {
                let (last, previous) = (clusters[clusters.len() - 1], clusters[clusters.len() - 2]);
                if previous.2 + previous.1 as f64 * height <= last.2 + 1e-9 {
                    break;
                }
                clusters.pop();
                let (start, count) = (previous.0, previous.1 + last.1);
                let top = (0..count).map(|j| labels[column[start + j]].desired - j as f64 * height).sum::<f64>()
                    / count as f64;
                let top = top.min(hi - (count - 1) as f64 * height).max(lo);
                *clusters.last_mut().expect("two clusters") = (start, count, top);
            }
        }
        for (start, count, top) in clusters {
            for j in 0..count {
                labels[column[start + j]].placed = top + j as f64 * height;
            }
        }
    }
}

impl LineChart {
    fn x_position(&self, x: f64, lo: f64, hi: f64) -> f64 {
        let t = |v: f64| if self.x_scale == XScale::Log1p { v.max(0.0).ln_1p() } else { v };
        let span = (t(hi) - t(lo)).max(f64::MIN_POSITIVE);
        LEFT + (t(x) - t(lo)) / span * (PLOT_RIGHT - LEFT)
    }

    /// Indices of the series in legend order: by final value, highest first (series without a
    /// finite point last), ties in series order.
    pub fn legend_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        let key = |i: usize| self.series[i].end().map(|(_, y)| y).unwrap_or(f64::NEG_INFINITY);
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
        order
    }

    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        render_stack(std::slice::from_ref(self))
    }

    /// Appends the chart's elements, in a `WIDTH` × `HEIGHT` box at the origin.
    fn draw(&self, svg: &mut String) {
        let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        let points: Vec<(f64, f64)> =
            self.series.iter().flat_map(|s| s.points.iter().copied()).filter(finite).collect();
        let references: Vec<&Reference> = self.references.iter().filter(|r| r.y.is_finite()).collect();
        let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in &points {
            (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
        }
        for r in &references {
            (y_lo, y_hi) = (y_lo.min(r.y), y_hi.max(r.y));
        }
        if points.is_empty() {
            (x_lo, x_hi) = (0.0, 1.0);
        }
        if !y_lo.is_finite() {
            (y_lo, y_hi) = (0.0, 1.0);
        }
        if x_hi <= x_lo {
            x_hi = x_lo + 1.0;
        }
        let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
        let y_step = nice_step(y_hi - y_lo + 2.0 * pad, 6.0);
        let (y_lo, y_hi) = (((y_lo - pad) / y_step).floor() * y_step, ((y_hi + pad) / y_step).ceil() * y_step);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let y_pos = |y: f64| TOP + (y_hi - y) / (y_hi - y_lo) * plot_h;
        let x_pos = |x: f64| self.x_position(x, x_lo, x_hi);

        let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text class="title" x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            (LEFT + PLOT_RIGHT) / 2.0,
            escape(&self.title)
        );
        // Horizontal grid and y ticks.
        let mut y = y_lo;
        while y <= y_hi + y_step * 0.5 {
            let p = y_pos(y);
            let _ =
                writeln!(svg, r##"<line x1="{LEFT}" x2="{PLOT_RIGHT}" y1="{p:.1}" y2="{p:.1}" stroke="#e5e5e5"/>"##);
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                p + 4.0,
                label((y / y_step).round() * y_step)
            );
            y += y_step;
        }
        // X ticks.
        let mut ticks = if self.x_ticks.is_empty() {
            let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            if xs.len() > 12 {
                let step = nice_step(x_hi - x_lo, 8.0);
                xs = (0..).map(|i| (x_lo / step).ceil() * step + i as f64 * step).take_while(|x| *x <= x_hi).collect();
            }
            xs
        } else {
            self.x_ticks.clone()
        };
        ticks.retain(|x| *x >= x_lo && *x <= x_hi);
        for x in ticks {
            let p = x_pos(x);
            let _ = writeln!(
                svg,
                r##"<line x1="{p:.1}" x2="{p:.1}" y1="{TOP}" y2="{}" stroke="#f0f0f0"/>"##,
                HEIGHT - BOTTOM
            );
            let _ = writeln!(
                svg,
                r#"<text x="{p:.1}" y="{}" text-anchor="middle">{}</text>"#,
                HEIGHT - BOTTOM + 16.0,
                label(x)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{plot_h}" fill="none" stroke="#444"/>"##,
            PLOT_RIGHT - LEFT
        );
        let _ = writeln!(
            svg,
            r#"<text class="x-label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + PLOT_RIGHT) / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text class="y-label" transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );

        // Reference lines, under the series.
        for r in &references {
            let p = y_pos(r.y);
            let _ = writeln!(
                svg,
                r#"<line class="reference" x1="{LEFT}" x2="{PLOT_RIGHT}" y1="{p:.1}" y2="{p:.1}" stroke="{REFERENCE_COLOUR}" stroke-width="1.5" stroke-dasharray="{REFERENCE_DASH}"/>"#
            );
        }

        // Lines: solid ones first, so that dashed ones over them leave them visible in the gaps.
        let mut draw_order: Vec<usize> = (0..self.series.len()).collect();
        draw_order.sort_by_key(|&i| (!self.series[i].style.dash.is_empty(), i));
        let mut placed_markers: Vec<(f64, f64)> = Vec::new();
        for &i in &draw_order {
            let series = &self.series[i];
            let style = &series.style;
            let path: Vec<(f64, f64)> =
                series.points.iter().copied().filter(finite).map(|(x, y)| (x_pos(x), y_pos(y))).collect();
            let dash =
                if style.dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{}""#, style.dash) };
            let coordinates: Vec<String> = path.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                svg,
                r#"<polyline class="line" data-name="{}" fill="none" stroke="{}" stroke-width="2"{dash} stroke-linejoin="round" points="{}"/>"#,
                escape(&series.name),
                style.colour,
                coordinates.join(" ")
            );
            // Markers on at most MAX_MARKERS points (staggered between series) and the end.
            let every = path.len().div_ceil(MAX_MARKERS).max(1);
            for (j, &(x, y)) in path.iter().enumerate() {
                if (j + i) % every != 0 && j + 1 != path.len() {
                    continue;
                }
                // Sideways out of the way of markers already drawn at the same place.
                let dx = [0.0, 5.0, -5.0, 10.0, -10.0, 15.0, -15.0]
                    .into_iter()
                    .find(|dx| {
                        placed_markers.iter().all(|&(px, py)| (px - x - dx).abs() >= 4.0 || (py - y).abs() >= 4.0)
                    })
                    .unwrap_or(0.0);
                placed_markers.push((x + dx, y));
                style.marker.draw(svg, x + dx, y, &style.colour);
            }
        }

        // Labels at the lines' ends (and the reference lines' right ends), nudged apart.
        let mut texts: Vec<(String, String, (f64, f64))> = Vec::new();
        for series in &self.series {
            if let Some((x, y)) = series.end() {
                texts.push((series.name.clone(), series.style.colour.clone(), (x_pos(x), y_pos(y))));
            }
        }
        for r in &references {
            texts.push((r.label.clone(), REFERENCE_COLOUR.into(), (PLOT_RIGHT, y_pos(r.y))));
        }
        let mut labels: Vec<Label> = texts
            .iter()
            .map(|(text, _, (x, y))| Label { x: x + LABEL_GAP, width: text_width(text), desired: *y, placed: *y })
            .collect();
        place_labels(&mut labels, LINE_HEIGHT, TOP, HEIGHT - BOTTOM);
        for ((text, colour, (ax, ay)), l) in texts.iter().zip(&labels) {
            if (l.placed - l.desired).abs() > 1.0 {
                let _ = writeln!(
                    svg,
                    r#"<line class="leader" x1="{:.1}" y1="{ay:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="0.75"/>"#,
                    ax + 5.0,
                    l.x - 2.0,
                    l.placed
                );
            }
            let _ = writeln!(
                svg,
                r#"<text class="end-label" x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
                l.x,
                l.placed + 4.0,
                escape(text)
            );
        }

        // Legend, by final value.
        let _ = writeln!(svg, r#"<g class="legend">"#);
        let _ = writeln!(svg, r##"<text x="{LEGEND_X}" y="{}" fill="#444">final value</text>"##, TOP + 4.0);
        for (row, i) in self.legend_order().into_iter().enumerate() {
            let series = &self.series[i];
            let style = &series.style;
            let ly = TOP + 24.0 + row as f64 * 20.0;
            let dash =
                if style.dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{}""#, style.dash) };
            let _ = writeln!(
                svg,
                r#"<line x1="{LEGEND_X}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/>"#,
                LEGEND_X + 30.0,
                style.colour
            );
            style.marker.draw(svg, LEGEND_X + 15.0, ly, &style.colour);
            let _ = writeln!(
                svg,
                r#"<text class="legend-label" x="{}" y="{}">{}</text>"#,
                LEGEND_X + 36.0,
                ly + 4.0,
                escape(&series.name)
            );
            if let Some((_, y)) = series.end() {
                let _ = writeln!(
                    svg,
                    r#"<text class="legend-value" x="{}" y="{}" text-anchor="end">{y:.4}</text>"#,
                    WIDTH - 10.0,
                    ly + 4.0
                );
            }
        }
        let _ = writeln!(svg, "</g>");
    }
}

/// Charts stacked vertically in one SVG document.
pub fn render_stack(charts: &[LineChart]) -> String {
    let height = HEIGHT * charts.len().max(1) as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        let _ = writeln!(svg, r#"<g class="chart" transform="translate(0,{})">"#, i as f64 * HEIGHT);
        chart.draw(&mut svg);
        let _ = writeln!(svg, "</g>");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Reading rendered charts back, for tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Checks that `svg` is well-formed XML of the kind the renderer writes: balanced tags,
    /// quoted attributes, escaped text.
    pub fn check_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "unescaped > in text {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)),
                    "bare & in text {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "< inside tag {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("tag name").to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert!(rest.trim().is_empty());
    }

    /// The opening tags named `element` that have `class="{class}"` (or start with it).
    pub fn elements<'a>(svg: &'a str, element: &str, class: &str) -> Vec<&'a str> {
        let open = format!("<{element} ");
        svg.match_indices(&open)
            .map(|(i, _)| &svg[i..i + svg[i..].find('>').expect("closed tag")])
            .filter(|tag| attribute(tag, "class").is_some_and(|c| c == class || c.starts_with(&format!("{class} "))))
            .collect()
    }

    /// An attribute's value in an opening tag.
    pub fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        Some(&tag[start..start + tag[start..].find('"')?])
    }

    /// The text content of the `<text class="{class}">` elements, in document order.
    pub fn texts(svg: &str, class: &str) -> Vec<String> {
        let open = format!("<text class=\"{class}\"");
        svg.match_indices(&open)
            .map(|(i, _)| {
                let body = &svg[i + svg[i..].find('>').expect("closed tag") + 1..];
                body[..body.find("</text>").expect("closed text")].to_string()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn style(colour: &str, dash: &str, marker: Marker) -> LineStyle {
        LineStyle { colour: colour.into(), dash: dash.into(), marker }
    }

    fn chart() -> LineChart {
        LineChart {
            title: "a < b & c".into(),
            x_label: "k".into(),
            y_label: "alignment".into(),
            x_scale: XScale::Log1p,
            x_ticks: vec![0.0, 1.0, 10.0, 100.0],
            series: vec![
                Series {
                    name: "gpo".into(),
                    points: vec![(0.0, 0.82), (10.0, 0.82), (100.0, 0.82)],
                    style: style(okabe_ito::VERMILLION, "", Marker::Circle),
                },
                Series {
                    name: "uniform".into(),
                    points: vec![(0.0, 0.82), (10.0, 0.82), (100.0, 0.82)],
                    style: style(okabe_ito::BLACK, "1.5 3", Marker::Square),
                },
                Series {
                    name: "knn".into(),
                    points: vec![(0.0, 0.9), (10.0, 0.93), (100.0, 0.95)],
                    style: style(okabe_ito::BLUISH_GREEN, "7 3", Marker::Diamond),
                },
            ],
            references: vec![Reference { label: "uniform".into(), y: 0.82 }],
        }
    }

    #[test]
    fn renders_a_well_formed_chart() {
        let svg = chart().render();
        check_well_formed(&svg);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert_eq!(elements(&svg, "polyline", "line").len(), 3);
        assert_eq!(elements(&svg, "line", "reference").len(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(!svg.contains("href") && !svg.contains("<script") && !svg.contains("@import"));
        assert_eq!(nice_step(0.17, 6.0), 0.05);
    }

    #[test]
    fn identical_series_stay_visible() {
        let svg = chart().render();
        let lines = elements(&svg, "polyline", "line");
        // The solid line is drawn first, the dashed one over it.
        assert_eq!(attribute(lines[0], "data-name"), Some("gpo"));
        assert_eq!(attribute(lines[0], "stroke-dasharray"), None);
        assert_eq!(attribute(lines[1], "stroke-dasharray"), Some("1.5 3"));
        // Their markers are of different shapes and no two sit on each other.
        let circles = elements(&svg, "circle", "marker");
        let squares = elements(&svg, "rect", "marker");
        assert_eq!((circles.len(), squares.len()), (3 + 1, 3 + 1), "on the lines and in the legend");
        for (c, s) in circles.iter().zip(&squares).take(3) {
            let cx: f64 = attribute(c, "cx").unwrap().parse().unwrap();
            let sx: f64 = attribute(s, "x").unwrap().parse::<f64>().unwrap() + 3.2;
            assert!((cx - sx).abs() >= 4.0, "markers at {cx} and {sx}");
        }
    }

    #[test]
    fn labels_ends_and_orders_the_legend_by_final_value() {
        let svg = chart().render();
        assert_eq!(texts(&svg, "legend-label"), ["knn", "gpo", "uniform"]);
        assert_eq!(texts(&svg, "legend-value"), ["0.9500", "0.8200", "0.8200"]);
        let labels = elements(&svg, "text", "end-label");
        assert_eq!(texts(&svg, "end-label"), ["gpo", "uniform", "knn", "uniform"]);
        // gpo, uniform and the reference end at the same point: stacked apart, in one column.
        let y = |i: usize| attribute(labels[i], "y").unwrap().parse::<f64>().unwrap();
        let mut ys = [y(0), y(1), y(3)];
        ys.sort_by(f64::total_cmp);
        assert!(ys[1] - ys[0] >= LINE_HEIGHT - 0.11 && ys[2] - ys[1] >= LINE_HEIGHT - 0.11, "{ys:?}");
        assert!(!elements(&svg, "line", "leader").is_empty());
    }

    #[test]
    fn label_placement_keeps_order_and_separates_collisions() {
        let label = |x: f64, y: f64| Label { x, width: 50.0, desired: y, placed: y };
        let mut labels = vec![label(0.0, 100.0), label(10.0, 101.0), label(20.0, 100.5), label(200.0, 100.0)];
        place_labels(&mut labels, 10.0, 0.0, 1000.0);
        let placed: Vec<f64> = labels.iter().map(|l| l.placed).collect();
        // The three overlapping ones are stacked 10 apart around their mean, in desired order;
        // the one far to the right stays put.
        assert_eq!(placed, [100.5 - 10.0, 100.5 + 10.0, 100.5, 100.0]);
        // Bounds push a cluster back inside.
        let mut labels = vec![label(0.0, 5.0), label(0.0, 5.0)];
        place_labels(&mut labels, 10.0, 0.0, 1000.0);
        assert_eq!(labels.iter().map(|l| l.placed).collect::<Vec<_>>(), [0.0, 10.0]);
    }

    #[test]
    fn stacks_charts() {
        let svg = render_stack(&[chart(), chart()]);
        check_well_formed(&svg);
        assert!(svg.contains(&format!(r#"height="{}""#, 2.0 * HEIGHT)));
        assert_eq!(elements(&svg, "g", "chart").len(), 2);
    }
}
