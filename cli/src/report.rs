//! `modelobs report`: one self-contained HTML file of charts over time —
//! quality per window and model version, the label-free side (drift score,
//! estimated against measured AP50) — and the worst windows.
//!
//! Charts are inline SVG drawn by plotters; the page has no scripts, fonts or
//! other files to fetch, so it can be mailed or attached as it is.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use modelobs_core::drift::DEFAULT_ALPHA;
use modelobs_core::records::{Granularity, WindowMetrics};
use modelobs_pipeline::profiles::WindowView;
use plotters::prelude::*;

use crate::CliError;
use crate::windows::{GranularityArg, parse_instant};

#[derive(Args)]
pub struct ReportArgs {
    /// A JSON array of windows (`modelobs metrics --json`; bare WindowMetrics
    /// read too, without the label-free charts' data); repeatable.
    #[arg(long, value_name = "FILE")]
    windows: Vec<PathBuf>,
    /// Read the stored windows from this bucket instead (needs --from, --to).
    #[arg(long)]
    bucket: Option<String>,
    /// With --bucket: first window start, a date or a UTC time.
    #[arg(long, requires = "bucket")]
    from: Option<String>,
    /// With --bucket: the end, a date (inclusive) or a UTC time (exclusive).
    #[arg(long, requires = "bucket")]
    to: Option<String>,
    /// Which windows to chart.
    #[arg(long, value_enum, default_value = "day")]
    granularity: GranularityArg,
    /// Keep only the N worst windows in the table.
    #[arg(long, value_name = "N", default_value_t = 10)]
    worst: usize,
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
}

pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let granularity: Granularity = args.granularity.into();
    let mut windows = Vec::new();
    for path in &args.windows {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let mut file: Vec<WindowView> = serde_json::from_slice(&bytes).map_err(|e| {
            bad(
                path,
                format!("not a JSON array of windows (modelobs metrics --json): {e}"),
            )
        })?;
        windows.append(&mut file);
    }
    if let Some(bucket) = &args.bucket {
        let (Some(from), Some(to)) = (&args.from, &args.to) else {
            return Err(CliError::BadInput {
                path: "--bucket".into(),
                problem: "needs --from and --to (the range of window starts)".into(),
            });
        };
        let from = parse_instant("--from", from, false)?;
        let to = parse_instant("--to", to, true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)?;
        let mut stored = runtime.block_on(async {
            let store = crate::bucket_store(bucket).await;
            crate::windows::load(&store, granularity, from, to, None).await
        })?;
        windows.append(&mut stored);
    }
    if args.windows.is_empty() && args.bucket.is_none() {
        return Err(CliError::BadInput {
            path: "report".into(),
            problem: "nothing to report: pass --windows FILE or --bucket B --from --to".into(),
        });
    }
    let html = render(&windows, granularity, args.worst)?;
    std::fs::write(&args.out, html).with_context(|| format!("writing {}", args.out.display()))?;
    let shown = windows
        .iter()
        .filter(|w| w.metrics.window.granularity == granularity)
        .count();
    eprintln!(
        "modelobs report: {} ({shown} {} windows)",
        args.out.display(),
        granularity.as_str()
    );
    Ok(())
}

fn bad(path: &std::path::Path, problem: impl ToString) -> CliError {
    CliError::BadInput {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Tableau 10: distinct, colour-blind tolerant, readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const CHART_SIZE: (u32, u32) = (960, 300);

/// How a line is drawn.
#[derive(Clone, Copy, PartialEq)]
enum Stroke {
    /// A line through each run of defined values, a dot on each value.
    Solid,
    /// The same, dashed: an estimate, not a measurement.
    Dashed,
    /// A triangle on each value and no line (alerts).
    Marks,
}

/// One line of a chart: a name for the legend and a value per window slot
/// (`None` where the window is missing or the figure undefined).
struct Line {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
    stroke: Stroke,
}

impl Line {
    fn solid(name: impl Into<String>, color: RGBColor, values: Vec<Option<f64>>) -> Self {
        Self {
            name: name.into(),
            color,
            values,
            stroke: Stroke::Solid,
        }
    }
}

/// A shaded interval per window slot: an estimate's band.
struct Band {
    name: String,
    color: RGBColor,
    values: Vec<Option<(f64, f64)>>,
}

/// How a chart's y axis reads.
#[derive(Clone, Copy, PartialEq)]
enum Scale {
    /// 0..1: AP, precision, recall, coverage.
    Fraction,
    /// 0..max: counts.
    Count,
    /// 0..max, at least past the chart's rule: a drift score.
    Score,
}

struct Chart {
    /// `data-metric` of the section: stable, for tests and anchors.
    metric: &'static str,
    /// `data-version`, for the charts drawn once per model version.
    version: Option<String>,
    title: String,
    y_desc: &'static str,
    scale: Scale,
    lines: Vec<Line>,
    bands: Vec<Band>,
    /// A horizontal rule at this value, named in the legend (a threshold).
    rule: Option<(f64, String)>,
    note: Option<&'static str>,
}

impl Chart {
    fn new(
        metric: &'static str,
        title: impl Into<String>,
        y_desc: &'static str,
        scale: Scale,
        lines: Vec<Line>,
    ) -> Self {
        Self {
            metric,
            version: None,
            title: title.into(),
            y_desc,
            scale,
            lines,
            bands: Vec::new(),
            rule: None,
            note: None,
        }
    }

    fn note(mut self, note: &'static str) -> Self {
        self.note = Some(note);
        self
    }
}

/// COCO's -1 (undefined) as `None`.
fn defined(v: f64) -> Option<f64> {
    (v >= 0.0).then_some(v)
}

fn hex(RGBColor(r, g, b): RGBColor) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The report page for the windows of `granularity` (others are ignored).
pub fn render(
    windows: &[WindowView],
    granularity: Granularity,
    worst: usize,
) -> anyhow::Result<String> {
    let mut windows: Vec<&WindowView> = windows
        .iter()
        .filter(|w| w.metrics.window.granularity == granularity)
        .collect();
    windows.sort_by(|a, b| {
        (a.metrics.window.start, &a.metrics.model.version)
            .cmp(&(b.metrics.window.start, &b.metrics.model.version))
    });
    let mut versions: Vec<&str> = Vec::new();
    for w in &windows {
        if !versions.contains(&w.metrics.model.version.as_str()) {
            versions.push(&w.metrics.model.version);
        }
    }
    let slots = Slots::new(&windows, granularity);
    // One value per slot of `version`'s windows.
    let of = |version: &str, f: &dyn Fn(&WindowView) -> Option<f64>| {
        slots.series(&windows, |w| {
            (w.metrics.model.version == version).then(|| f(w)).flatten()
        })
    };
    let per_version = |f: &dyn Fn(&WindowMetrics) -> Option<f64>| -> Vec<Line> {
        versions
            .iter()
            .enumerate()
            .map(|(i, v)| Line::solid(*v, PALETTE[i % PALETTE.len()], of(v, &|w| f(&w.metrics))))
            .collect()
    };
    let classes: BTreeSet<&str> = windows
        .iter()
        .flat_map(|w| w.metrics.coco.per_class.iter())
        .filter(|(_, c)| c.ap50 >= 0.0)
        .map(|(name, _)| name.as_str())
        .collect();
    // One per-class chart per model version (a line per class and version
    // in one chart is unreadable); a class keeps its colour across them.
    let per_class = versions.iter().map(|v| Chart {
        version: Some(v.to_string()),
        ..Chart::new(
            "per_class_ap50",
            format!("AP50 per class, {v}"),
            "AP50",
            Scale::Fraction,
            classes
                .iter()
                .enumerate()
                .map(|(i, class)| {
                    let ap50 = |w: &WindowView| {
                        w.metrics
                            .coco
                            .per_class
                            .get(*class)
                            .and_then(|c| defined(c.ap50))
                    };
                    Line::solid(*class, PALETTE[i % PALETTE.len()], of(v, &ap50))
                })
                .collect(),
        )
        .note("A class appears in a window only when that window's labels have it.")
    });
    // The label-free estimate beside what the labels measured, per version.
    let estimated = versions.iter().map(|v| {
        let estimate = |w: &WindowView| w.estimated_ap50.map(|e| e.value);
        let (measured, guess) = (PALETTE[0], PALETTE[1]);
        Chart {
            version: Some(v.to_string()),
            bands: vec![Band {
                name: "estimate's band".into(),
                color: guess,
                values: slots.series_of(&windows, |w| {
                    (w.metrics.model.version == *v)
                        .then(|| w.estimated_ap50.map(|e| (e.low, e.high)))
                        .flatten()
                }),
            }],
            ..Chart::new(
                "estimated_ap50",
                format!("Estimated AP50 (label-free) and measured AP50, {v}"),
                "AP50",
                Scale::Fraction,
                vec![
                    Line::solid(
                        "measured AP50",
                        measured,
                        of(v, &|w| defined(w.metrics.coco.ap50)),
                    ),
                    Line {
                        stroke: Stroke::Dashed,
                        ..Line::solid("estimated AP50", guess, of(v, &estimate))
                    },
                ],
            )
            .note(
                "The estimate is fitted on this version's labelled windows shown here \
                 (at least 5), from the captures' profiles alone: mean top score, \
                 detections, NMS agreement. Its band is the 90th percentile of its \
                 leave-one-window-out error. An estimate, never a measurement.",
            )
        }
    });
    let threshold = -DEFAULT_ALPHA.log10();
    let drift = Chart {
        rule: Some((
            threshold,
            format!("alert threshold: {threshold:.0} (p = {DEFAULT_ALPHA} after Bonferroni)"),
        )),
        ..Chart::new(
            "drift_score",
            "Drift score against the reference (-log10 p)",
            "drift score",
            Scale::Score,
            versions
                .iter()
                .enumerate()
                .flat_map(|(i, v)| {
                    let color = PALETTE[i % PALETTE.len()];
                    let score = |w: &WindowView| w.drift.as_ref().map(|d| d.score);
                    let alert =
                        |w: &WindowView| w.drift.as_ref().filter(|d| d.alert).map(|d| d.score);
                    [
                        Line::solid(*v, color, of(v, &score)),
                        Line {
                            stroke: Stroke::Marks,
                            ..Line::solid(format!("{v}: alert"), color, of(v, &alert))
                        },
                    ]
                })
                .collect(),
        )
        .note(
            "Every capture, labelled or not, against the version's reference profile \
             (modelobs drift reference). An hour with fewer than 4 profiled captures is \
             tested with up to 2 hours before it. Alerting windows name their features in \
             `modelobs metrics`.",
        )
    };

    let mut charts = vec![
        Chart::new(
            "map",
            "mAP (AP at IoU 0.50:0.95)",
            "mAP",
            Scale::Fraction,
            per_version(&|w| defined(w.coco.ap)),
        ),
        Chart::new(
            "ap50",
            "AP50 (AP at IoU 0.5)",
            "AP50",
            Scale::Fraction,
            per_version(&|w| defined(w.coco.ap50)),
        ),
    ];
    charts.extend(estimated);
    charts.push(drift);
    charts.extend(per_class);
    charts.extend([
        Chart::new(
            "precision",
            "Precision at IoU 0.5 and the serving threshold",
            "precision",
            Scale::Fraction,
            per_version(&|w| w.at_serving_threshold.precision),
        ),
        Chart::new(
            "recall",
            "Recall at IoU 0.5 and the serving threshold",
            "recall",
            Scale::Fraction,
            per_version(&|w| w.at_serving_threshold.recall),
        ),
        Chart::new(
            "label_coverage",
            "Label coverage (labelled images / captures)",
            "coverage",
            Scale::Fraction,
            per_version(&|w| w.label_coverage),
        ),
        Chart::new(
            "images_labelled",
            "Images labelled per window",
            "images",
            Scale::Count,
            per_version(&|w| Some(f64::from(w.images_labelled))),
        ),
        Chart::new(
            "detections_per_image",
            "Detections per labelled image",
            "detections / image",
            Scale::Count,
            per_version(&|w| {
                let op = &w.at_serving_threshold;
                (w.images_labelled > 0)
                    .then(|| (op.tp + op.fp) as f64 / f64::from(w.images_labelled))
            }),
        )
        .note(
            "TP + FP at IoU 0.5 and the serving threshold, over the labelled images \
             (the drift score covers every capture's detections and top score).",
        ),
    ]);

    let mut html = String::new();
    let first = windows.first().map(|w| w.metrics.window.start);
    let last = windows.last().map(|w| w.metrics.window.end());
    let range = match (first, last) {
        (Some(a), Some(b)) => format!(
            "{} to {} UTC",
            a.format("%Y-%m-%d %H:%M"),
            b.format("%Y-%m-%d %H:%M")
        ),
        _ => "no windows".into(),
    };
    let labelled: u64 = windows
        .iter()
        .map(|w| u64::from(w.metrics.images_labelled))
        .sum();
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Detection quality by {g}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.1em; margin: 1.6em 0 0.3em; }}
.summary, .note {{ color: #555; }}
.note {{ font-size: 0.85em; margin: 0.2em 0; }}
ul.legend {{ list-style: none; padding: 0; margin: 0.2em 0 0 60px; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 0.85em; }}
ul.legend span {{ display: inline-block; width: 18px; height: 4px; margin-right: 6px; vertical-align: middle; }}
ul.legend span.dashed {{ height: 0; border-top: 3px dashed; }}
ul.legend span.mark {{ width: 10px; height: 10px; }}
ul.legend span.band {{ height: 10px; opacity: 0.25; }}
.empty {{ color: #888; font-style: italic; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }}
th:nth-child(2), td:nth-child(2), th:nth-child(3), td:nth-child(3) {{ text-align: left; }}
</style>
</head>
<body>
<h1>Detection quality by {g}</h1>
<p class="summary">{n} windows, {range}; model versions: {versions}; {labelled} images labelled.
All times UTC; each point is one window, plotted at its start.</p>
"#,
        g = granularity.as_str(),
        n = windows.len(),
        versions = if versions.is_empty() {
            "none".to_string()
        } else {
            escape(&versions.join(", "))
        },
    );
    for chart in &charts {
        let version = chart
            .version
            .as_deref()
            .map_or_else(String::new, |v| format!(" data-version=\"{}\"", escape(v)));
        let _ = write!(
            html,
            "<section class=\"chart\" data-metric=\"{}\"{version}>\n<h2>{}</h2>\n",
            chart.metric,
            escape(&chart.title)
        );
        let drawn: Vec<&Line> = chart
            .lines
            .iter()
            .filter(|l| l.values.iter().any(Option::is_some))
            .collect();
        if drawn.is_empty() {
            html.push_str("<p class=\"empty\">No data in these windows.</p>\n");
        } else {
            let bands: Vec<&Band> = chart
                .bands
                .iter()
                .filter(|b| b.values.iter().any(Option::is_some))
                .collect();
            html.push_str(&svg(chart, &drawn, &bands, &slots)?);
            html.push_str("\n<ul class=\"legend\">");
            let mut item = |class: &str, style: String, name: &str| {
                let _ = write!(
                    html,
                    "<li><span class=\"{class}\" style=\"{style}\"></span>{}</li>",
                    escape(name)
                );
            };
            for line in &drawn {
                let color = hex(line.color);
                match line.stroke {
                    Stroke::Solid => item("line", format!("background:{color}"), &line.name),
                    Stroke::Dashed => item("dashed", format!("color:{color}"), &line.name),
                    Stroke::Marks => item("mark", format!("background:{color}"), &line.name),
                }
            }
            for band in &bands {
                item(
                    "band",
                    format!("background:{}", hex(band.color)),
                    &band.name,
                );
            }
            if let Some((_, name)) = &chart.rule {
                item("dashed", "color:#888888".into(), name);
            }
            html.push_str("</ul>\n");
        }
        if let Some(note) = chart.note {
            let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(note));
        }
        html.push_str("</section>\n");
    }
    let measured: Vec<&WindowMetrics> = windows.iter().map(|w| &w.metrics).collect();
    html.push_str(&worst_table(&measured, granularity, worst));
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// The x axis: one slot per window length from the first start to the last,
/// so missing windows leave gaps instead of squeezing time.
struct Slots {
    first: Option<DateTime<Utc>>,
    count: usize,
    granularity: Granularity,
}

impl Slots {
    fn new(windows: &[&WindowView], granularity: Granularity) -> Self {
        let first = windows.first().map(|w| w.metrics.window.start);
        let count = match (first, windows.last()) {
            (Some(a), Some(b)) => self_index(a, b.metrics.window.start, granularity) + 1,
            _ => 0,
        };
        Self {
            first,
            count,
            granularity,
        }
    }

    fn index(&self, t: DateTime<Utc>) -> usize {
        self_index(self.first.expect("a window exists"), t, self.granularity)
    }

    fn series(
        &self,
        windows: &[&WindowView],
        value: impl Fn(&WindowView) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        self.series_of(windows, value)
    }

    fn series_of<T: Copy>(
        &self,
        windows: &[&WindowView],
        value: impl Fn(&WindowView) -> Option<T>,
    ) -> Vec<Option<T>> {
        let mut out = vec![None; self.count];
        for w in windows {
            if let Some(v) = value(w) {
                out[self.index(w.metrics.window.start)] = Some(v);
            }
        }
        out
    }

    fn label(&self, x: f64) -> String {
        let k = x.round();
        if (x - k).abs() > 1e-6 || k < 0.0 {
            return String::new();
        }
        let Some(first) = self.first else {
            return String::new();
        };
        let t = first + self.granularity.length() * (k as i32);
        match self.granularity {
            Granularity::Day => t.format("%b %d").to_string(),
            Granularity::Hour => t.format("%b %d %H:00").to_string(),
        }
    }
}

fn self_index(first: DateTime<Utc>, t: DateTime<Utc>, g: Granularity) -> usize {
    let step = g.length().num_seconds();
    ((t - first).num_seconds() / step).max(0) as usize
}

/// One chart as an `<svg>` element.
fn svg(chart: &Chart, lines: &[&Line], bands: &[&Band], slots: &Slots) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let x_range = -0.5..(slots.count.max(1) as f64 - 0.5);
        let max = lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b));
        let y_max = match chart.scale {
            Scale::Fraction => 1.0,
            Scale::Count => (max * 1.15).max(1.0),
            Scale::Score => {
                let rule = chart.rule.as_ref().map_or(1.0, |(at, _)| *at);
                (max * 1.15).max(rule * 1.5)
            }
        };
        let mut plot = ChartBuilder::on(&root)
            .margin_left(10)
            .margin_right(24)
            .margin_top(12)
            .margin_bottom(6)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, 0.0..y_max)
            .map_err(plot_error)?;
        let x_label = |x: &f64| slots.label(*x);
        let y_label = |y: &f64| match chart.scale {
            Scale::Fraction => format!("{y:.1}"),
            Scale::Count if y_max <= 10.0 => format!("{y:.1}"),
            Scale::Count | Scale::Score => format!("{y:.0}"),
        };
        let x_desc = format!("window start ({}, UTC)", slots.granularity.as_str());
        plot.configure_mesh()
            // Hour labels are twice as wide as day labels.
            .x_labels(match slots.granularity {
                Granularity::Day => slots.count.clamp(2, 12),
                Granularity::Hour => slots.count.clamp(2, 7),
            })
            .y_labels(6)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc(x_desc)
            .y_desc(chart.y_desc)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.1))
            .draw()
            .map_err(plot_error)?;
        for band in bands {
            // One shaded polygon per run of slots with an interval: along the
            // highs, back along the lows.
            for run in runs(&band.values) {
                let outline: Vec<(f64, f64)> = run
                    .iter()
                    .map(|&(x, (_, high))| (x, high.min(y_max)))
                    .chain(run.iter().rev().map(|&(x, (low, _))| (x, low.max(0.0))))
                    .collect();
                plot.draw_series(std::iter::once(Polygon::new(
                    outline,
                    band.color.mix(0.2).filled(),
                )))
                .map_err(plot_error)?;
            }
        }
        if let Some((at, _)) = chart.rule {
            plot.draw_series(DashedLineSeries::new(
                [(-0.5, at), (slots.count.max(1) as f64 - 0.5, at)],
                6,
                4,
                RGBColor(136, 136, 136).stroke_width(1),
            ))
            .map_err(plot_error)?;
        }
        for line in lines {
            let color = line.color;
            // A line through each run of defined values; a lone value is a dot.
            for run in runs(&line.values) {
                match line.stroke {
                    Stroke::Solid => plot
                        .draw_series(LineSeries::new(run, color.stroke_width(2)))
                        .map(|_| ()),
                    Stroke::Dashed => plot
                        .draw_series(DashedLineSeries::new(run, 8, 5, color.stroke_width(2)))
                        .map(|_| ()),
                    Stroke::Marks => Ok(()),
                }
                .map_err(plot_error)?;
            }
            let points = line
                .values
                .iter()
                .enumerate()
                .filter_map(|(x, v)| v.map(|v| (x as f64, v)));
            match line.stroke {
                Stroke::Solid | Stroke::Dashed => plot
                    .draw_series(points.map(|p| Circle::new(p, 3, color.filled())))
                    .map(|_| ()),
                Stroke::Marks => plot
                    .draw_series(points.map(|p| TriangleMarker::new(p, 7, color.filled())))
                    .map(|_| ()),
            }
            .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// The runs of consecutive defined slots, each as (x, value) points.
fn runs<T: Copy>(values: &[Option<T>]) -> Vec<Vec<(f64, T)>> {
    let mut out = vec![Vec::new()];
    for (x, v) in values.iter().enumerate() {
        match v {
            Some(v) => out.last_mut().expect("never empty").push((x as f64, *v)),
            None if !out.last().expect("never empty").is_empty() => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|run| !run.is_empty());
    out
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// The windows with the lowest AP50 (ties: lower mAP, then earlier), those
/// without ground truth left out.
fn worst_table(windows: &[&WindowMetrics], granularity: Granularity, n: usize) -> String {
    let mut ranked: Vec<&&WindowMetrics> = windows.iter().filter(|w| w.coco.ap50 >= 0.0).collect();
    ranked.sort_by(|a, b| {
        a.coco
            .ap50
            .total_cmp(&b.coco.ap50)
            .then(a.coco.ap.total_cmp(&b.coco.ap))
            .then(a.window.start.cmp(&b.window.start))
    });
    let mut html = String::from("<section id=\"worst-windows\">\n<h2>Worst windows by AP50</h2>\n");
    if ranked.is_empty() {
        html.push_str("<p class=\"empty\">No window has labelled objects yet.</p>\n</section>\n");
        return html;
    }
    html.push_str(
        "<table>\n<thead><tr><th>#</th><th>window (UTC)</th><th>model version</th>\
         <th>AP50</th><th>mAP</th><th>precision</th><th>recall</th>\
         <th>images labelled</th><th>label coverage</th></tr></thead>\n<tbody>\n",
    );
    let num = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    for (i, w) in ranked.iter().take(n).enumerate() {
        let start = match granularity {
            Granularity::Day => w.window.start.format("%Y-%m-%d"),
            Granularity::Hour => w.window.start.format("%Y-%m-%d %H:00"),
        };
        let op = &w.at_serving_threshold;
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{start}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            escape(&w.model.version),
            num(defined(w.coco.ap50)),
            num(defined(w.coco.ap)),
            num(op.precision),
            num(op.recall),
            w.images_labelled,
            num(w.label_coverage),
        );
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
    html
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{Duration, TimeZone};
    use modelobs_core::calibration::Estimate;
    use modelobs_core::drift::WindowDriftReport;
    use modelobs_core::eval::{ClassAp, CocoSummary, OperatingPoint};
    use modelobs_core::records::{ModelRef, Window};

    use super::*;

    struct Fixture {
        day: i64,
        version: &'static str,
        ap50: f64,
        ap: f64,
        images: u32,
        precision: Option<f64>,
    }

    fn at(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::days(day)
    }

    fn window(f: &Fixture) -> WindowMetrics {
        let mut per_class = BTreeMap::new();
        per_class.insert(
            "horse".to_string(),
            ClassAp {
                ap: f.ap,
                ap50: f.ap50,
            },
        );
        per_class.insert(
            "dog".to_string(),
            ClassAp {
                ap: f.ap,
                ap50: if f.ap50 < 0.0 { -1.0 } else { f.ap50 / 2.0 },
            },
        );
        let coco = CocoSummary {
            ap: f.ap,
            ap50: f.ap50,
            ap75: f.ap,
            ap_small: -1.0,
            ap_medium: f.ap,
            ap_large: f.ap,
            ar1: f.ap,
            ar10: f.ap,
            ar100: f.ap,
            ar_small: -1.0,
            ar_medium: f.ap,
            ar_large: f.ap,
            per_class,
        };
        WindowMetrics {
            window: Window {
                granularity: Granularity::Day,
                start: at(f.day),
            },
            model: ModelRef {
                name: "nanodet".into(),
                version: f.version.into(),
            },
            computed_at: at(f.day + 1),
            images_labelled: f.images,
            captures_in_window: u64::from(f.images) * 4,
            label_coverage: (f.images > 0).then_some(0.25),
            mean_label_lag_s: Some(60.0),
            coco,
            at_serving_threshold: OperatingPoint {
                iou: 0.5,
                score_threshold: 0.2,
                tp: u64::from(f.images) * 2,
                fp: u64::from(f.images),
                fn_: 1,
                precision: f.precision,
                recall: f.precision.map(|p| p * 0.9),
                f1: None,
                mean_iou: None,
            },
        }
    }

    fn view(metrics: WindowMetrics) -> WindowView {
        WindowView {
            metrics,
            drift: None,
            estimated_ap50: None,
            calibration: None,
            profiled_captures: 0,
        }
    }

    fn drift(score: f64) -> WindowDriftReport {
        WindowDriftReport {
            score,
            alert: score > 3.0,
            features: if score > 3.0 {
                vec!["luminance".into()]
            } else {
                vec![]
            },
            hours: 1,
            captures: 48,
            reference_captures: 217,
            reference: "dataset".into(),
            detail: vec![],
        }
    }

    /// The WindowMetrics fixtures, v1's with a label-free side: drift on days
    /// 0, 1, 3, 4 (alerting on 3 and 4), an estimate on days 0, 1, 3, 4 and 5
    /// (day 5 has no measured AP50); v2 has neither.
    fn fixtures() -> Vec<WindowView> {
        let mut views: Vec<WindowView> = measured().into_iter().map(view).collect();
        for v in views.iter_mut().filter(|v| {
            v.metrics.model.version == "v1" && v.metrics.window.granularity == Granularity::Day
        }) {
            let day = (v.metrics.window.start - at(0)).num_days();
            v.drift = (day != 5).then(|| drift([0.5, 1.0, 0.0, 6.0, 9.5, 0.0][day as usize]));
            let value = 0.8 - 0.1 * day as f64;
            v.estimated_ap50 = Some(Estimate {
                value,
                low: value - 0.1,
                high: value + 0.1,
            });
        }
        views
    }

    fn measured() -> Vec<WindowMetrics> {
        let f = |day, version, ap50, ap, images, precision| Fixture {
            day,
            version,
            ap50,
            ap,
            images,
            precision,
        };
        let mut windows: Vec<WindowMetrics> = [
            f(0, "v1", 0.90, 0.60, 10, Some(0.9)),
            f(1, "v1", 0.88, 0.58, 12, Some(0.85)),
            // day 2 missing: a gap in v1's lines
            f(3, "v1", 0.40, 0.20, 9, Some(0.5)),
            f(4, "v1", 0.30, 0.15, 11, Some(0.4)),
            // labelled images without objects: AP undefined, not a "worst" window
            f(5, "v1", -1.0, -1.0, 3, None),
            f(3, "v2", 0.85, 0.55, 5, Some(0.8)),
            f(4, "v2", 0.30, 0.10, 6, Some(0.7)),
        ]
        .iter()
        .map(window)
        .collect();
        // An hour window: not part of a day report.
        let mut hour = window(&f(4, "v1", 0.01, 0.01, 1, Some(0.1)));
        hour.window.granularity = Granularity::Hour;
        windows.push(hour);
        windows
    }

    /// Every tag matching `selector`, as (attribute lookup, inner text, inner html).
    fn tags<'a>(dom: &'a tl::VDom<'a>, selector: &str) -> Vec<&'a tl::HTMLTag<'a>> {
        dom.query_selector(selector)
            .expect("valid selector")
            .filter_map(|h| h.get(dom.parser()).and_then(|n| n.as_tag()))
            .collect()
    }

    fn attr(tag: &tl::HTMLTag, name: &str) -> String {
        tag.attributes()
            .get(name)
            .flatten()
            .map(|b| b.as_utf8_str().to_string())
            .unwrap_or_default()
    }

    fn count(dom: &tl::VDom, within: &tl::HTMLTag, selector: &str) -> usize {
        within
            .query_selector(dom.parser(), selector)
            .map_or(0, Iterator::count)
    }

    #[test]
    fn one_chart_per_metric_with_a_point_per_defined_window() {
        let html = render(&fixtures(), Granularity::Day, 10).unwrap();
        let dom = tl::parse(&html, tl::ParserOptions::default()).unwrap();
        let sections = tags(&dom, "section.chart");
        let metrics: Vec<String> = sections
            .iter()
            .map(|s| match attr(s, "data-version").as_str() {
                "" => attr(s, "data-metric"),
                v => format!("{} {v}", attr(s, "data-metric")),
            })
            .collect();
        assert_eq!(
            metrics,
            [
                "map",
                "ap50",
                "estimated_ap50 v1",
                "estimated_ap50 v2",
                "drift_score",
                "per_class_ap50 v1",
                "per_class_ap50 v2",
                "precision",
                "recall",
                "label_coverage",
                "images_labelled",
                "detections_per_image"
            ]
        );
        for s in &sections {
            let metric = attr(s, "data-metric");
            assert_eq!(count(&dom, s, "svg"), 1, "{metric}: one chart");
            let legend: Vec<String> = s
                .query_selector(dom.parser(), "li")
                .unwrap()
                .filter_map(|h| h.get(dom.parser()))
                .map(|n| n.inner_text(dom.parser()).to_string())
                .collect();
            // A point per window where the figure is defined: v1 has 4 AP
            // values (day 5 has none), v2 has 2; images exist for all 5 + 2.
            let (want_legend, points): (Vec<&str>, usize) = match metric.as_str() {
                // measured on days 0, 1, 3, 4; estimated on those and day 5
                "estimated_ap50" if attr(s, "data-version") == "v1" => (
                    vec!["measured AP50", "estimated AP50", "estimate's band"],
                    9,
                ),
                "estimated_ap50" => (vec!["measured AP50"], 2),
                "drift_score" => (
                    vec![
                        "v1",
                        "v1: alert",
                        "alert threshold: 3 (p = 0.001 after Bonferroni)",
                    ],
                    4,
                ),
                "per_class_ap50" if attr(s, "data-version") == "v1" => (vec!["dog", "horse"], 8),
                "per_class_ap50" => (vec!["dog", "horse"], 4),
                "images_labelled" | "label_coverage" | "detections_per_image" => {
                    (vec!["v1", "v2"], 7)
                }
                _ => (vec!["v1", "v2"], 6),
            };
            assert_eq!(legend, want_legend, "{metric}");
            assert_eq!(count(&dom, s, "circle"), points, "{metric}: points");
        }
        // v1's AP50 breaks at the missing day 2 (two runs), v2 is one run.
        let lines = sections[1]
            .query_selector(dom.parser(), "polyline")
            .unwrap()
            .filter_map(|h| h.get(dom.parser()).and_then(|n| n.as_tag()))
            .filter(|t| attr(t, "stroke-width") == "2")
            .count();
        assert_eq!(lines, 3, "data lines (the grid is drawn thinner)");
        // The band: one polygon per run of estimated days (0-1, 3-5); the
        // alerts: a triangle each (days 3 and 4).
        assert_eq!(count(&dom, sections[2], "polygon"), 2, "band runs");
        assert_eq!(count(&dom, sections[3], "polygon"), 0, "no estimate for v2");
        assert_eq!(count(&dom, sections[4], "polygon"), 2, "alert marks");
        // The hour window (AP50 0.01) is not in a day report.
        assert!(!html.contains("0.010"));
    }

    #[test]
    fn the_worst_windows_come_first_and_undefined_ones_not_at_all() {
        let html = render(&fixtures(), Granularity::Day, 4).unwrap();
        let dom = tl::parse(&html, tl::ParserOptions::default()).unwrap();
        let table = dom
            .get_element_by_id("worst-windows")
            .and_then(|h| h.get(dom.parser()))
            .and_then(|n| n.as_tag())
            .expect("the worst-windows section");
        let rows: Vec<Vec<String>> = table
            .query_selector(dom.parser(), "tr")
            .unwrap()
            .filter_map(|h| h.get(dom.parser()).and_then(|n| n.as_tag()))
            .map(|tr| {
                tr.query_selector(dom.parser(), "td")
                    .unwrap()
                    .filter_map(|h| h.get(dom.parser()))
                    .map(|n| n.inner_text(dom.parser()).to_string())
                    .collect::<Vec<String>>()
            })
            // the header row has <th>s, no <td>s
            .filter(|cells| !cells.is_empty())
            .collect();
        let summary: Vec<(&str, &str, &str, &str, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r[0].as_str(),
                    r[1].as_str(),
                    r[2].as_str(),
                    r[3].as_str(),
                    r[4].parse::<f64>().unwrap(),
                )
            })
            .collect();
        // AP50 ascending; the 0.30 tie goes to the lower mAP (v2, 0.10).
        assert_eq!(
            summary,
            [
                ("1", "2026-11-24", "v2", "0.300", 0.10),
                ("2", "2026-11-24", "v1", "0.300", 0.15),
                ("3", "2026-11-23", "v1", "0.400", 0.20),
                ("4", "2026-11-23", "v2", "0.850", 0.55),
            ]
        );
        assert_eq!(rows[0][7], "6", "images labelled");
        assert_eq!(rows[0][5], "0.700", "precision");
    }

    #[test]
    fn bare_window_metrics_files_still_read_without_the_label_free_charts() {
        let bare = serde_json::to_vec(&measured()).unwrap();
        let read: Vec<WindowView> = serde_json::from_slice(&bare).unwrap();
        assert_eq!(read, measured().into_iter().map(view).collect::<Vec<_>>());
        let html = render(&read, Granularity::Day, 10).unwrap();
        let dom = tl::parse(&html, tl::ParserOptions::default()).unwrap();
        let drift = tags(&dom, "section.chart")
            .into_iter()
            .find(|s| attr(s, "data-metric") == "drift_score")
            .unwrap();
        assert_eq!(count(&dom, drift, "p.empty"), 1);
    }

    #[test]
    fn no_windows_still_make_a_page_that_says_so() {
        let html = render(&[], Granularity::Hour, 10).unwrap();
        let dom = tl::parse(&html, tl::ParserOptions::default()).unwrap();
        let sections = tags(&dom, "section.chart");
        // No versions: no per-class or per-version estimate charts.
        assert_eq!(sections.len(), 8);
        for s in sections {
            assert_eq!(count(&dom, s, "svg"), 0);
            assert_eq!(count(&dom, s, "p.empty"), 1);
        }
        assert!(html.contains("No window has labelled objects yet."));
    }

    #[test]
    fn the_page_fetches_nothing() {
        let html = render(&fixtures(), Granularity::Day, 10).unwrap();
        for external in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
        // Day labels on the x axis, not raw slot numbers.
        assert!(
            html.contains("Nov 20") && html.contains("Nov 24"),
            "x labels"
        );
    }
}
