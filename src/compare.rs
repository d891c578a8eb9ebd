//! Comparing reports: two runs of one machine (before/after an upgrade), or one report per
//! kernel side by side. A claim *differs* when its verdict, exit code, errno or SYN count
//! differs, or its duration differs by more than max(250 ms, 10 %).

use std::fmt::Write as _;
use std::path::PathBuf;

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use netclaim_suites::Figures;
#[cfg(test)]
use netclaim_suites::Verdict;

use crate::report::{md_cell, xml, ClaimReport, Report};
use crate::svg;

/// Durations closer than this are the same figure.
const SAME_MS: u64 = 250;
/// … or closer than this fraction of the larger one.
const SAME_FRACTION: f64 = 0.10;

/// One claim across the reports.
#[derive(Debug)]
pub struct Row<'a> {
    /// The claim id.
    pub id: &'a str,
    /// The claim in each report, `None` where it was not run.
    pub cells: Vec<Option<&'a ClaimReport>>,
    /// What differs, empty when nothing does.
    pub differences: Vec<String>,
}

/// The claims × reports matrix.
#[derive(Debug)]
pub struct Matrix<'a> {
    /// Column labels (kernel release and file).
    pub columns: Vec<String>,
    /// One row per claim id, in first-seen order.
    pub rows: Vec<Row<'a>>,
}

impl<'a> Matrix<'a> {
    /// Builds the matrix of `reports` (loaded from `paths`).
    pub fn new(reports: &'a [Report], paths: &[PathBuf]) -> Self {
        let columns = reports
            .iter()
            .zip(paths)
            .map(|(r, p)| match r.mode.as_str() {
                "root" => format!("{} ({})", r.kernel, p.display()),
                mode => format!("{}, labs in a {mode} ({})", r.kernel, p.display()),
            })
            .collect();
        let mut ids: Vec<&str> = Vec::new();
        for r in reports {
            for c in &r.claims {
                if !ids.contains(&c.id.as_str()) {
                    ids.push(&c.id);
                }
            }
        }
        let rows = ids
            .into_iter()
            .map(|id| {
                let cells: Vec<Option<&ClaimReport>> = reports
                    .iter()
                    .map(|r| r.claims.iter().find(|c| c.id == id))
                    .collect();
                let differences = differences(&cells);
                Row {
                    id,
                    cells,
                    differences,
                }
            })
            .collect();
        Self { columns, rows }
    }

    /// Rows whose claims differ.
    pub fn changed(&self) -> impl Iterator<Item = &Row<'a>> {
        self.rows.iter().filter(|r| !r.differences.is_empty())
    }

    /// Terminal table; with `only_changed`, only rows that differ.
    pub fn table(&self, color: bool, only_changed: bool) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !color {
            t.force_no_tty();
        }
        let mut header = vec!["claim".to_owned()];
        header.extend(self.columns.iter().cloned());
        header.push("differs".into());
        t.set_header(header);
        for row in &self.rows {
            if only_changed && row.differences.is_empty() {
                continue;
            }
            let mut cells = vec![Cell::new(row.id)];
            for c in &row.cells {
                let mut cell = Cell::new(cell_text(*c));
                if color && !row.differences.is_empty() {
                    cell = cell.fg(Color::Yellow);
                }
                cells.push(cell);
            }
            cells.push(Cell::new(row.differences.join("; ")));
            t.add_row(cells);
        }
        let n = self.changed().count();
        format!(
            "{t}\n{n} of {} claims differ between the reports",
            self.rows.len()
        )
    }

    /// Markdown matrix; differing rows are marked with ⚠.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| claim |");
        for c in &self.columns {
            let _ = write!(s, " {} |", md_cell(c));
        }
        s.push_str(" differs |\n|---|");
        for _ in &self.columns {
            s.push_str("---|");
        }
        s.push_str("---|\n");
        for row in &self.rows {
            let mark = if row.differences.is_empty() {
                ""
            } else {
                "⚠ "
            };
            let _ = write!(s, "| {mark}`{}` |", row.id);
            for c in &row.cells {
                let _ = write!(s, " {} |", md_cell(&cell_text(*c)));
            }
            let _ = writeln!(s, " {} |", md_cell(&row.differences.join("; ")));
        }
        let _ = writeln!(
            s,
            "\n{} of {} claims differ.",
            self.changed().count(),
            self.rows.len()
        );
        s
    }

    /// A standalone HTML page: the matrix with differing rows highlighted and each claim's
    /// SYN timelines side by side.
    pub fn html(&self) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>netclaim comparison</title>\n<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}tr.differs{background:#fff3cd}.holds{color:#1a7f37}.refuted{color:#9a6700}.error{color:#cf222e}.not-applicable,.skipped{color:#57606a}</style></head><body>\n<h1>netclaim: claims × kernels</h1>\n",
        );
        let _ = writeln!(
            s,
            "<p>{} of {} claims differ.</p>\n<table><tr><th>claim</th>",
            self.changed().count(),
            self.rows.len()
        );
        for c in &self.columns {
            let _ = write!(s, "<th>{}</th>", xml(c));
        }
        s.push_str("<th>differs</th></tr>\n");
        for row in &self.rows {
            let class = if row.differences.is_empty() {
                ""
            } else {
                " class=\"differs\""
            };
            let _ = write!(s, "<tr{class}><td><code>{}</code></td>", xml(row.id));
            for c in &row.cells {
                match c {
                    Some(c) => {
                        let _ = write!(
                            s,
                            "<td><b class=\"{v}\">{v}</b><br>{}",
                            xml(&c.observed.summary()),
                            v = c.verdict
                        );
                        for t in &c.timelines {
                            s.push_str("<br>");
                            s.push_str(&svg::timeline(t, 360));
                        }
                        s.push_str("</td>");
                    }
                    None => s.push_str("<td>(not run)</td>"),
                }
            }
            let _ = writeln!(s, "<td>{}</td></tr>", xml(&row.differences.join("; ")));
        }
        s.push_str("</table></body></html>\n");
        s
    }
}

fn cell_text(c: Option<&ClaimReport>) -> String {
    match c {
        None => "(not run)".into(),
        Some(c) => {
            let figures = c.observed.summary();
            if figures.is_empty() {
                c.verdict.to_string()
            } else {
                format!("{}: {figures}", c.verdict)
            }
        }
    }
}

fn differences(cells: &[Option<&ClaimReport>]) -> Vec<String> {
    let present: Vec<&ClaimReport> = cells.iter().flatten().copied().collect();
    let mut out = Vec::new();
    if present.len() < cells.len() {
        out.push("not run everywhere".into());
    }
    let Some(first) = present.first() else {
        return out;
    };
    if present.iter().any(|c| c.verdict != first.verdict) {
        out.push(format!(
            "verdict {}",
            present
                .iter()
                .map(|c| c.verdict.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        ));
    }
    let field = |name: &str, get: &dyn Fn(&Figures) -> Option<String>| {
        let values: Vec<Option<String>> = present.iter().map(|c| get(&c.observed)).collect();
        (values.iter().any(|v| *v != values[0])).then(|| {
            format!(
                "{name} {}",
                values
                    .iter()
                    .map(|v| v.clone().unwrap_or_else(|| "-".into()))
                    .collect::<Vec<_>>()
                    .join(" → ")
            )
        })
    };
    out.extend(field("exit code", &|f| f.exit_code.map(|v| v.to_string())));
    out.extend(field("errno", &|f| f.errno.map(|v| v.to_string())));
    out.extend(field("SYNs", &|f| f.syn_count.map(|v| v.to_string())));
    let durations: Vec<u64> = present
        .iter()
        .filter_map(|c| c.observed.duration_ms)
        .collect();
    if let (Some(min), Some(max)) = (durations.iter().min(), durations.iter().max()) {
        let allowed = SAME_MS.max((*max as f64 * SAME_FRACTION) as u64);
        if max - min > allowed {
            out.push(format!(
                "duration {}",
                durations
                    .iter()
                    .map(|d| format!("{:.2} s", *d as f64 / 1000.0))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
    }
    out
}

/// Claims whose verdict differs from `baseline` (claims only one side ran are ignored).
pub fn drift(baseline: &Report, now: &Report) -> Vec<String> {
    now.claims
        .iter()
        .filter_map(|c| {
            let old = baseline.claims.iter().find(|b| b.id == c.id)?;
            (old.verdict != c.verdict).then(|| {
                format!(
                    "{}: {} in the baseline (Linux {}), {} now: {}",
                    c.id,
                    old.verdict,
                    baseline.kernel,
                    c.verdict,
                    if c.reason.is_empty() {
                        c.observed.summary()
                    } else {
                        c.reason.clone()
                    }
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, verdict: Verdict, duration_ms: u64, exit: Option<i32>) -> ClaimReport {
        ClaimReport {
            id: id.into(),
            source: "s.txt".into(),
            origin: "built-in".into(),
            statement: String::new(),
            lab: String::new(),
            action: String::new(),
            verdict,
            reason: String::new(),
            duration_ms,
            claimed: Figures::default(),
            expected: Figures::default(),
            observed: Figures {
                duration_ms: Some(duration_ms),
                exit_code: exit,
                ..Figures::default()
            },
            claim_checks: Vec::new(),
            model_checks: Vec::new(),
            model_agrees: true,
            evidence: String::new(),
            timelines: Vec::new(),
            measurement: None,
        }
    }

    fn report(kernel: &str, claims: Vec<ClaimReport>) -> Report {
        Report {
            netclaim: "0".into(),
            kernel: kernel.into(),
            hz: 250,
            mode: "root".into(),
            sysctl_defaults: Default::default(),
            tools: Default::default(),
            wall_ms: 0,
            longest_claim_ms: 0,
            longest_claim: None,
            wall_over_longest: None,
            timing: None,
            claims,
        }
    }

    #[test]
    fn small_duration_jitter_is_not_a_difference_but_a_verdict_change_is() {
        let a = report(
            "6.1",
            vec![
                claim("x.a", Verdict::Holds, 127_000, None),
                claim("x.b", Verdict::Holds, 3_000, Some(7)),
            ],
        );
        let b = report(
            "6.18",
            vec![
                claim("x.a", Verdict::Refuted, 131_000, None),
                claim("x.b", Verdict::Holds, 3_100, Some(28)),
            ],
        );
        let reports = [a, b];
        let paths = [PathBuf::from("a.json"), PathBuf::from("b.json")];
        let m = Matrix::new(&reports, &paths);
        assert_eq!(m.rows[0].differences, vec!["verdict holds → refuted"]);
        assert_eq!(m.rows[1].differences, vec!["exit code 7 → 28"]);
        assert_eq!(drift(&reports[0], &reports[1]).len(), 1);
    }

    #[test]
    fn a_large_duration_change_is_a_difference() {
        let reports = [
            report("a", vec![claim("x", Verdict::Holds, 3_000, None)]),
            report("b", vec![claim("x", Verdict::Holds, 7_000, None)]),
        ];
        let paths = [PathBuf::from("a"), PathBuf::from("b")];
        let m = Matrix::new(&reports, &paths);
        assert_eq!(m.rows[0].differences, vec!["duration 3.00 s → 7.00 s"]);
    }
}
