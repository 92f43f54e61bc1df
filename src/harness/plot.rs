//! The report's plots, each written as PNG and SVG with plotters (fonts embedded from the
//! `dejavu` crate: no system fonts needed).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use yoco_core::{Error, Result};

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed and hollow-marked: the paper's figures, as opposed to measurements.
    pub reference: bool,
    /// Index into the palette: a measured series and the paper's for the same quantity share it.
    pub color: usize,
}

/// A line chart over (usually) context length.
#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Stacked bars: for each x label, one bar per group, stacked by part.
#[derive(Clone, Debug)]
pub struct StackedBars {
    pub title: String,
    pub y_label: String,
    pub x_labels: Vec<String>,
    /// (group name, for each x: the parts' values in `parts` order).
    pub groups: Vec<(String, Vec<Vec<f64>>)>,
    pub parts: Vec<String>,
}

const SIZE: (u32, u32) = (960, 600);
const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled DejaVu Sans is a valid font; registration cannot fail on it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::invalid("plot", "output", e.to_string())
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
        ((lo - pad).min(0.0), hi + pad)
    }
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &LineChart) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let (x0, x1) = bounds(chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), chart.log_x);
    let (y0, y1) = bounds(chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), chart.log_y);
    let mut builder = ChartBuilder::on(root);
    builder.caption(&chart.title, (FONT, 24)).margin(16).x_label_area_size(48).y_label_area_size(80);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_labels(8)
                .y_labels(8)
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .label_style((FONT, 15))
                .x_label_formatter(&|v| human(*v))
                .y_label_formatter(&|v| human(*v))
                .draw()
                .map_err(plot_err)?;
            for s in &chart.series {
                let color = PALETTE[s.color % PALETTE.len()];
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
                let style = if s.reference { color.mix(0.7).stroke_width(2) } else { color.stroke_width(3) };
                if s.reference {
                    ctx.draw_series(DashedLineSeries::new(pts.clone(), 8, 6, style)).map_err(plot_err)?.label(s.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                    ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.stroke_width(2)))).map_err(plot_err)?;
                } else {
                    ctx.draw_series(LineSeries::new(pts.clone(), style)).map_err(plot_err)?.label(s.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
                    ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(plot_err)?;
                }
            }
            ctx.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).label_font((FONT, 15)).position(SeriesLabelPosition::UpperLeft).draw().map_err(plot_err)?;
        }};
    }
    match (chart.log_x, chart.log_y) {
        (true, true) => body!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(plot_err)?),
        (true, false) => body!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(plot_err)?),
        (false, true) => body!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(plot_err)?),
        (false, false) => body!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(plot_err)?),
    }
    root.present().map_err(plot_err)
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &StackedBars) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let groups = chart.groups.len().max(1);
    let slots = chart.x_labels.len() * (groups + 1);
    let top = chart.groups.iter().flat_map(|(_, xs)| xs.iter().map(|parts| parts.iter().sum::<f64>())).fold(0.0, f64::max) * 1.1;
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        // Room on the right for the legend, so that it covers no bar.
        .build_cartesian_2d(0.0..slots as f64 * 1.3 + 1.0, 0.0..top.max(1e-9))
        .map_err(plot_err)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .light_line_style(WHITE)
        .y_desc(chart.y_label.as_str())
        .y_label_formatter(&|v| human(*v))
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_err)?;
    // The x labels, centred under each group of bars (the mesh's numeric labels would not be).
    for (xi, label) in chart.x_labels.iter().enumerate() {
        let centre = (xi * (groups + 1)) as f64 + groups as f64 / 2.0 - 0.2;
        ctx.draw_series(std::iter::once(Text::new(label.clone(), (centre, -top * 0.045), (FONT, 15)))).map_err(plot_err)?;
    }
    for (g, (group, xs)) in chart.groups.iter().enumerate() {
        for (xi, parts) in xs.iter().enumerate() {
            let left = (xi * (groups + 1) + g) as f64 + 0.1;
            let mut base = 0.0;
            for (pi, v) in parts.iter().enumerate() {
                let color = PALETTE[pi % PALETTE.len()];
                let shade = if g == 0 { color.filled() } else { color.mix(0.55).filled() };
                ctx.draw_series(std::iter::once(Rectangle::new([(left, base), (left + 0.8, base + v)], shade))).map_err(plot_err)?;
                base += v;
            }
            if xi == 0 {
                let tag = group.clone();
                ctx.draw_series(std::iter::once(Text::new(tag, (left, base + top * 0.02), (FONT, 13)))).map_err(plot_err)?;
            }
        }
    }
    for (pi, part) in chart.parts.iter().enumerate() {
        let color = PALETTE[pi % PALETTE.len()];
        ctx.draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (0.0, 0.0)], color.filled())))
            .map_err(plot_err)?
            .label(part.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    ctx.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).label_font((FONT, 15)).position(SeriesLabelPosition::UpperRight).draw().map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Writes `<stem>.png` and `<stem>.svg` in `dir`.
pub fn write_lines(dir: &Path, stem: &str, chart: &LineChart) -> Result<()> {
    register_fonts();
    draw_lines(&BitMapBackend::new(&dir.join(format!("{stem}.png")), SIZE).into_drawing_area(), chart)?;
    draw_lines(&SVGBackend::new(&dir.join(format!("{stem}.svg")), SIZE).into_drawing_area(), chart)
}

/// Writes `<stem>.png` and `<stem>.svg` in `dir`.
pub fn write_bars(dir: &Path, stem: &str, chart: &StackedBars) -> Result<()> {
    register_fonts();
    draw_bars(&BitMapBackend::new(&dir.join(format!("{stem}.png")), SIZE).into_drawing_area(), chart)?;
    draw_bars(&SVGBackend::new(&dir.join(format!("{stem}.svg")), SIZE).into_drawing_area(), chart)
}

/// 1536 → "1.5K", 2e9 → "2G", 0.25 → "0.25".
pub fn human(v: f64) -> String {
    let a = v.abs();
    let (scaled, unit) = if a >= 1e12 {
        (v / 1e12, "T")
    } else if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    let text = if scaled.abs() >= 100.0 || scaled.fract().abs() < 1e-9 { format!("{scaled:.0}") } else if scaled.abs() >= 10.0 { format!("{scaled:.1}") } else { format!("{scaled:.2}") };
    format!("{text}{unit}")
}
