//! The report's chart: CPU and instructions per message of every client as ratios to the floor,
//! one group of bars per throughput scenario, on a logarithmic axis. Plain SVG text, no
//! dependencies.

use super::{Data, CLIENTS};
use std::fmt::Write as _;

const SCENARIOS: &[(&str, &str)] = &[("recv", "Receive"), ("reqresp", "Request/response")];
const WIDTH: f64 = 960.0;
const LABEL: f64 = 330.0;
const BAR: f64 = 11.0;
const CPU_COLOUR: &str = "#4e79a7";
const INSTR_COLOUR: &str = "#f28e2b";

/// One bar: a ratio to the floor, or `None` (not measured); `hatched` for a client that
/// dropped messages (its ratio would flatter it, so it is drawn without a length).
struct Bar {
    ratio: Option<f64>,
    hatched: bool,
}

struct Row {
    name: &'static str,
    cpu: Bar,
    instr: Bar,
}

fn rows(data: &Data, scenario: &str) -> Vec<Row> {
    let floor_cpu = data
        .get(scenario, "floor")
        .filter(|r| !r.drops())
        .map(|r| r.m("cpu_s") / r.m("count"));
    let floor_ir = data.instr(scenario, "floor").map(|i| i.ir);
    CLIENTS
        .iter()
        .filter(|(id, _)| *id != "floor")
        .filter_map(|&(id, name)| {
            let runs = data.get(scenario, id);
            let instr = data.instr(scenario, id);
            if runs.is_none() && instr.is_none() {
                return None;
            }
            let cpu_drops = runs.is_some_and(|r| r.drops());
            let instr_drops = instr.is_some_and(|i| i.drops());
            Some(Row {
                name,
                cpu: Bar {
                    ratio: runs
                        .filter(|_| !cpu_drops)
                        .zip(floor_cpu)
                        .map(|(r, f)| r.m("cpu_s") / r.m("count") / f),
                    hatched: cpu_drops,
                },
                instr: Bar {
                    ratio: instr
                        .filter(|_| !instr_drops)
                        .zip(floor_ir)
                        .map(|(i, f)| i.ir / f),
                    hatched: instr_drops,
                },
            })
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn svg(data: &Data) -> String {
    let groups: Vec<(&str, Vec<Row>)> = SCENARIOS
        .iter()
        .map(|&(id, title)| (title, rows(data, id)))
        .filter(|(_, rows)| !rows.is_empty())
        .collect();
    let max = groups
        .iter()
        .flat_map(|(_, rows)| rows.iter())
        .flat_map(|r| [r.cpu.ratio, r.instr.ratio])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(2.0f64, f64::max);
    let decades = max.log10().ceil().max(1.0);
    let plot = WIDTH - LABEL - 30.0;
    let x = |ratio: f64| LABEL + plot * (ratio.max(1.0).log10() / decades);

    let mut body = String::new();
    let mut y = 60.0;
    for (title, rows) in &groups {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{}</text>"#,
            esc(title)
        );
        y += 12.0;
        for row in rows {
            let _ = writeln!(
                body,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                y + BAR + 3.0,
                esc(row.name)
            );
            for (bar, colour) in [(&row.cpu, CPU_COLOUR), (&row.instr, INSTR_COLOUR)] {
                match (bar.ratio, bar.hatched) {
                    (Some(r), _) if r.is_finite() => {
                        let _ = writeln!(
                            body,
                            r#"<rect x="{LABEL}" y="{y}" width="{:.1}" height="{BAR}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                            (x(r) - LABEL).max(1.0),
                            x(r) + 4.0,
                            y + BAR - 2.0,
                            if r >= 10.0 {
                                format!("{r:.0}×")
                            } else {
                                format!("{r:.2}×")
                            }
                        );
                    }
                    (_, true) => {
                        let _ = writeln!(
                            body,
                            r#"<rect x="{LABEL}" y="{y}" width="{:.1}" height="{BAR}" fill="url(#hatch)" stroke="{colour}"/><text x="{:.1}" y="{:.1}" font-size="10">dropped messages: not comparable</text>"#,
                            plot * 0.25,
                            LABEL + plot * 0.25 + 4.0,
                            y + BAR - 2.0
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            body,
                            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#777">not measured</text>"##,
                            LABEL + 4.0,
                            y + BAR - 2.0
                        );
                    }
                }
                y += BAR + 1.0;
            }
            y += 8.0;
        }
        y += 14.0;
    }
    let height = y + 20.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="2"/></pattern></defs>"##
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">Cost per message as a multiple of the floor (raw tokio-tungstenite = 1×, log scale, lower is better)</text>"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="10" y="32" width="12" height="10" fill="{CPU_COLOUR}"/><text x="26" y="41">client CPU time (wall-clock run, load-dependent)</text><rect x="360" y="32" width="12" height="10" fill="{INSTR_COLOUR}"/><text x="376" y="41">instructions (callgrind, deterministic)</text>"#
    );
    // Grid: 1×, 10×, 100×, ...
    for d in 0..=decades as u32 {
        let gx = LABEL + plot * (d as f64 / decades);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="50" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}×</text>"##,
            height - 30.0,
            height - 16.0,
            10u64.pow(d)
        );
    }
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}
