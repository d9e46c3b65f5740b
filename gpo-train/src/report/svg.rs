//! Minimal SVG line charts (axes, ticks, lines with markers, legend), written by hand so that no
//! font or rendering library is needed: the viewer renders the text.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
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
}

const PALETTE: [&str; 8] = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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

impl LineChart {
    fn x_position(&self, x: f64, lo: f64, hi: f64) -> f64 {
        let t = |v: f64| if self.x_scale == XScale::Log1p { v.max(0.0).ln_1p() } else { v };
        let span = (t(hi) - t(lo)).max(f64::MIN_POSITIVE);
        LEFT + (t(x) - t(lo)) / span * (WIDTH - LEFT - RIGHT)
    }

    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in &points {
            (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
        }
        if points.is_empty() {
            (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
        }
        if x_hi <= x_lo {
            x_hi = x_lo + 1.0;
        }
        let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
        let y_step = nice_step(y_hi - y_lo + 2.0 * pad, 6.0);
        let (y_lo, y_hi) = (((y_lo - pad) / y_step).floor() * y_step, ((y_hi + pad) / y_step).ceil() * y_step);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let y_pos = |y: f64| TOP + (y_hi - y) / (y_hi - y_lo) * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            escape(&self.title)
        );
        // Horizontal grid and y ticks.
        let mut y = y_lo;
        while y <= y_hi + y_step * 0.5 {
            let p = y_pos(y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{p:.1}" y2="{p:.1}" stroke="#e5e5e5"/>"##,
                WIDTH - RIGHT
            );
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
            let p = self.x_position(x, x_lo, x_hi);
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
            WIDTH - LEFT - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", self.x_position(x, x_lo, x_hi), y_pos(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            if series.points.len() <= 40 {
                for p in &path {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(svg, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
                }
            }
            let ly = TOP + 10.0 + i as f64 * 20.0;
            let lx = WIDTH - RIGHT + 14.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"/>"#,
                lx + 22.0
            );
            let _ = writeln!(svg, r#"<text x="{}" y="{}">{}</text>"#, lx + 28.0, ly + 4.0, escape(&series.name));
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_well_formed_chart() {
        let chart = LineChart {
            title: "a < b & c".into(),
            x_label: "k".into(),
            y_label: "alignment".into(),
            x_scale: XScale::Log1p,
            x_ticks: vec![0.0, 1.0, 10.0, 100.0],
            series: vec![
                Series { name: "gpo".into(), points: vec![(0.0, 0.8), (10.0, 0.9), (100.0, 0.95)] },
                Series { name: "uniform".into(), points: vec![(0.0, 0.82), (100.0, 0.82)] },
            ],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(!svg.contains("NaN"));
        assert_eq!(nice_step(0.17, 6.0), 0.05);
    }
}
