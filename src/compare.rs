//! Comparing reports: two runs of one machine (before/after an upgrade), or one report per
//! kernel side by side.
//!
//! Only what a claim asserts can differ: its verdict, and the exit code, errno, SYN count
//! and duration where its statement or its prediction names them (a claim that asserts no
//! timing has no duration to compare). A duration differs when the runs are further apart
//! than the spread the claim accepts (its widest timing window, at least max(250 ms,
//! 10 %)) plus both runs' measured error (how late each machine ran timers and processes
//! while it measured). An inconclusive verdict is shown as such, never as a
//! change. Every difference says where it comes from: the differing sysctl defaults the
//! claim involves (with the reason each differs: memory, build option, boot parameter,
//! runtime setting, kernel version), or the kernel's behaviour when none is involved.

use std::fmt::Write as _;
use std::path::Path;

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use netclaim_suites::{CheckState, Verdict};

use crate::provenance::{self, Side, MODULE_LOADED};
use crate::report::{md_cell, xml, ClaimReport, Report};
use crate::svg;

/// Durations closer than this are the same figure …
const SAME_MS: f64 = 250.0;
/// … or closer than this fraction of the larger one (before the runs' measured errors).
const SAME_FRACTION: f64 = 0.10;

/// One claim across the reports.
#[derive(Debug)]
pub struct Row<'a> {
    /// The claim id.
    pub id: &'a str,
    /// The claim in each report, `None` where it was not run.
    pub cells: Vec<Option<&'a ClaimReport>>,
    /// What differs, each with where it comes from; empty when nothing does.
    pub differences: Vec<String>,
    /// What is worth knowing but is no difference (an inconclusive verdict).
    pub notes: Vec<String>,
}

/// One sysctl default across the reports, where it differs.
#[derive(Debug)]
pub struct Default_ {
    /// The knob.
    pub knob: String,
    /// Its value in each report (`None`: the kernel lacks it).
    pub values: Vec<Option<String>>,
    /// Why each report differs from the first, where it does.
    pub sources: Vec<String>,
    /// Whether it differs only because a module was loaded on one machine.
    pub module_only: bool,
}

/// The claims × reports matrix.
#[derive(Debug)]
pub struct Matrix<'a> {
    /// Column labels.
    pub columns: Vec<String>,
    /// One row per claim id, in first-seen order.
    pub rows: Vec<Row<'a>>,
    /// The sysctl defaults that differ.
    pub defaults: Vec<Default_>,
    /// Per column, the reports it stands for (indices into the reports given, with their
    /// labels): one each, or, from [`GROUP_FROM`] reports on, every report of the same
    /// kernel and mode that is the same as the column's first.
    pub groups: Vec<Vec<(usize, String)>>,
    /// Inconclusive verdicts per column, over every report of its group.
    inconclusive: Vec<usize>,
}

/// From this many reports on, reports with the same results share one column (twenty
/// nodes of one fleet are two or three columns, not twenty).
pub const GROUP_FROM: usize = 3;

impl<'a> Matrix<'a> {
    /// Builds the matrix of `reports`, labelled by `labels`: one column per report, or,
    /// from [`GROUP_FROM`] reports on, one per group of reports that are the same: the
    /// same kernel release and mode, and, by the rules of a comparison of the two, no
    /// claim or sysctl default that differs from the group's first and no inconclusive
    /// verdict where the first has none (an inconclusive node is a column of its own).
    pub fn new(reports: &'a [Report], labels: &[String]) -> Self {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..reports.len() {
            let alike = |g: &Vec<usize>| {
                let (first, this) = (&reports[g[0]], &reports[i]);
                if reports.len() < GROUP_FROM
                    || first.kernel != this.kernel
                    || first.mode != this.mode
                {
                    return false;
                }
                let pair = Self::each(vec![first, this], &["a".into(), "b".into()]);
                !pair.differs() && pair.rows.iter().all(|r| r.notes.is_empty())
            };
            match groups.iter_mut().find(|g| alike(g)) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let names: Vec<String> = groups
            .iter()
            .map(|g| {
                let members: Vec<&str> = g.iter().map(|i| labels[*i].as_str()).collect();
                match members.len() {
                    1 => members[0].to_owned(),
                    n => format!("{}: {n} reports", shorten_to(&members, 3)),
                }
            })
            .collect();
        let mut matrix = Self::each(groups.iter().map(|g| &reports[g[0]]).collect(), &names);
        matrix.inconclusive = groups
            .iter()
            .map(|g| g.iter().map(|i| inconclusive_in(&reports[*i])).sum())
            .collect();
        matrix.groups = groups
            .into_iter()
            .map(|g| g.into_iter().map(|i| (i, labels[i].clone())).collect())
            .collect();
        matrix
    }

    /// One column per report of `reports`, labelled by `labels`.
    fn each(reports: Vec<&'a Report>, labels: &[String]) -> Self {
        let columns: Vec<String> = reports
            .iter()
            .zip(labels)
            .map(|(r, l)| match r.mode.as_str() {
                "root" | "" => format!("{} ({l})", r.kernel),
                "none" => format!("{}, no labs ({l})", r.kernel),
                mode => format!("{}, labs in a {mode} ({l})", r.kernel),
            })
            .collect();
        let defaults = differing_defaults(&reports, &columns);
        let mut ids: Vec<&str> = Vec::new();
        for r in &reports {
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
                let (mut differences, notes) = differences(&cells, labels);
                if !differences.is_empty() {
                    let why = involved_defaults(&cells, &defaults, &reports);
                    differences.push(why);
                }
                Row {
                    id,
                    cells,
                    differences,
                    notes,
                }
            })
            .collect();
        Self {
            inconclusive: reports.iter().map(|r| inconclusive_in(r)).collect(),
            groups: (0..reports.len())
                .zip(labels)
                .map(|(i, l)| vec![(i, l.clone())])
                .collect(),
            columns,
            rows,
            defaults,
        }
    }

    /// Rows whose claims differ.
    pub fn changed(&self) -> impl Iterator<Item = &Row<'a>> {
        self.rows.iter().filter(|r| !r.differences.is_empty())
    }

    /// Defaults that differ between the kernels (not merely a module's load state).
    fn real_defaults(&self) -> impl Iterator<Item = &Default_> {
        self.defaults.iter().filter(|d| !d.module_only)
    }

    /// Whether the reports differ in anything real: a claim, or a default.
    pub fn differs(&self) -> bool {
        self.changed().next().is_some() || self.real_defaults().next().is_some()
    }

    /// Inconclusive verdicts per column (over every report of its group), in column
    /// order.
    pub fn inconclusive_counts(&self) -> Vec<usize> {
        self.inconclusive.clone()
    }

    /// The columns that stand for more than one report, each with every report's label
    /// (a header names only the first few), or `None` when each column is one report.
    fn groups_text(&self) -> Option<String> {
        let grouped: Vec<String> = self
            .groups
            .iter()
            .zip(&self.columns)
            .filter(|(g, _)| g.len() > 1)
            .map(|(g, c)| {
                let labels: Vec<&str> = g.iter().map(|(_, l)| l.as_str()).collect();
                format!("{c}: {}", labels.join(", "))
            })
            .collect();
        (!grouped.is_empty()).then(|| {
            format!(
                "{} reports in {} columns: a column stands for every report of its kernel \
                 that is the same as its first (no claim and no sysctl default differs \
                 between the two, none inconclusive); figures shown are the first's. {}",
                self.groups.iter().map(Vec::len).sum::<usize>(),
                self.columns.len(),
                grouped.join(". ")
            )
        })
    }

    fn summary(&self) -> String {
        let per: Vec<String> = self
            .columns
            .iter()
            .zip(self.inconclusive_counts())
            .map(|(c, n)| format!("{n} in {c}"))
            .collect();
        format!(
            "{} of {} claims differ between the reports; {} sysctl defaults differ ({} more \
             only by a module's load state); inconclusive verdicts: {}",
            self.changed().count(),
            self.rows.len(),
            self.real_defaults().count(),
            self.defaults.len() - self.real_defaults().count(),
            per.join(", ")
        )
    }

    /// An empty terminal table headed `first`, the columns, then `last`.
    fn terminal_table(&self, color: bool, first: &str, last: &str) -> Table {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !color {
            t.force_no_tty();
        }
        let mut header = vec![first.to_owned()];
        header.extend(self.columns.iter().cloned());
        header.push(last.into());
        t.set_header(header);
        t
    }

    /// Terminal table; with `only_changed`, only rows that differ.
    pub fn table(&self, color: bool, only_changed: bool) -> String {
        let mut t = self.terminal_table(color, "claim", "differs (and why)");
        for row in &self.rows {
            if only_changed && row.differences.is_empty() {
                continue;
            }
            let mut cells = vec![Cell::new(row.id)];
            for c in &row.cells {
                let mut cell = Cell::new(cell_text(*c));
                if color && !row.differences.is_empty() {
                    cell = cell.fg(Color::Yellow);
                } else if color && c.is_some_and(|c| c.verdict == Verdict::Inconclusive) {
                    cell = cell.fg(Color::Magenta);
                }
                cells.push(cell);
            }
            cells.push(Cell::new(row_text(row)));
            t.add_row(cells);
        }
        let mut s = format!("{t}\n");
        if !self.defaults.is_empty() {
            let mut d = self.terminal_table(color, "sysctl default", "why");
            for (knob, values, why) in self.default_rows() {
                let mut cells = vec![knob];
                cells.extend(values);
                cells.push(why);
                d.add_row(cells);
            }
            let _ = writeln!(s, "{d}");
            let _ = writeln!(s, "{}", self.module_only_line());
        }
        if let Some(groups) = self.groups_text() {
            let _ = writeln!(s, "{groups}");
        }
        s + &self.summary()
    }

    /// The rows of the differing defaults: knob, value per column, why. A run of at least
    /// [`GROUPED`] knobs that one machine lacks because of a build option (a subsystem
    /// built in on one side) is one row, `prefix* (N knobs)`.
    fn default_rows(&self) -> Vec<(String, Vec<String>, String)> {
        let defs: Vec<&Default_> = self.real_defaults().collect();
        let presence = |d: &Default_| d.values.iter().map(Option::is_some).collect::<Vec<_>>();
        let mut rows = Vec::new();
        let mut i = 0;
        while i < defs.len() {
            let d = defs[i];
            let mut j = i + 1;
            // Only a subsystem one side builds in (a build option): a knob missing because
            // of the kernel version stays on its own row.
            let subsystem = d.sources.iter().all(|s| s.contains("build configuration"));
            while j < defs.len()
                && subsystem
                && defs[j].sources == d.sources
                && presence(defs[j]) == presence(d)
                && presence(d).contains(&false)
            {
                j += 1;
            }
            let why = d.sources.join("; ");
            if j - i >= GROUPED {
                let prefix = common_prefix(defs[i..j].iter().map(|d| d.knob.as_str()));
                let values = d
                    .values
                    .iter()
                    .map(|v| if v.is_some() { "present" } else { "(absent)" }.to_owned())
                    .collect();
                rows.push((format!("{prefix}* ({} knobs)", j - i), values, why));
                i = j;
            } else {
                rows.push((
                    d.knob.clone(),
                    d.values.iter().map(value_text).collect(),
                    why,
                ));
                i += 1;
            }
        }
        rows
    }

    fn module_only_line(&self) -> String {
        let knobs: Vec<&str> = self
            .defaults
            .iter()
            .filter(|d| d.module_only)
            .map(|d| d.knob.as_str())
            .collect();
        if knobs.is_empty() {
            return String::new();
        }
        format!(
            "Present on some machines only because a module was loaded there when the defaults \
             were read (not a kernel difference): {}",
            shorten(&knobs)
        )
    }

    /// A Markdown table head: `first`, the columns, then `last`.
    fn markdown_head(&self, first: &str, last: &str) -> String {
        let mut s = format!("| {first} |");
        for c in &self.columns {
            let _ = write!(s, " {} |", md_cell(c));
        }
        let _ = write!(s, " {last} |\n|---|");
        for _ in &self.columns {
            s.push_str("---|");
        }
        s.push_str("---|\n");
        s
    }

    /// Markdown matrix; differing rows are marked with ⚠, then the differing defaults.
    pub fn markdown(&self) -> String {
        let mut s = self.markdown_head("claim", "differs (and why)");
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
            let _ = writeln!(s, " {} |", md_cell(&row_text(row)));
        }
        if !self.defaults.is_empty() {
            s.push('\n');
            s.push_str(&self.markdown_head("sysctl default", "why"));
            for (knob, values, why) in self.default_rows() {
                let _ = write!(s, "| `{knob}` |");
                for v in &values {
                    let _ = write!(s, " {} |", md_cell(v));
                }
                let _ = writeln!(s, " {} |", md_cell(&why));
            }
            let line = self.module_only_line();
            if !line.is_empty() {
                let _ = writeln!(s, "\n{line}");
            }
        }
        if let Some(groups) = self.groups_text() {
            let _ = writeln!(s, "\n{}", md_cell(&groups));
        }
        let _ = writeln!(s, "\n{}.", self.summary());
        s
    }

    /// A standalone HTML page: the matrix with differing rows highlighted and each claim's
    /// SYN timelines side by side, then the differing defaults.
    pub fn html(&self) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>netclaim comparison</title>\n<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}tr.differs{background:#fff3cd}.holds{color:#1a7f37}.refuted{color:#9a6700}.inconclusive{color:#8250df}.error{color:#cf222e}.not-applicable,.skipped{color:#57606a}</style></head><body>\n<h1>netclaim: claims × kernels</h1>\n",
        );
        let _ = writeln!(
            s,
            "<p>{}</p>\n<table><tr><th>claim</th>",
            xml(&self.summary())
        );
        for c in &self.columns {
            let _ = write!(s, "<th>{}</th>", xml(c));
        }
        s.push_str("<th>differs (and why)</th></tr>\n");
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
                        if c.verdict == Verdict::Inconclusive {
                            let _ = write!(s, "<br><small>{}</small>", xml(&c.reason));
                        }
                        for t in &c.timelines {
                            s.push_str("<br>");
                            s.push_str(&svg::timeline(t, 360));
                        }
                        s.push_str("</td>");
                    }
                    None => s.push_str("<td>(not run)</td>"),
                }
            }
            let _ = writeln!(s, "<td>{}</td></tr>", xml(&row_text(row)));
        }
        s.push_str("</table>\n");
        if !self.defaults.is_empty() {
            s.push_str("<h2>sysctl defaults that differ</h2>\n<table><tr><th>default</th>");
            for c in &self.columns {
                let _ = write!(s, "<th>{}</th>", xml(c));
            }
            s.push_str("<th>why</th></tr>\n");
            for (knob, values, why) in self.default_rows() {
                let _ = write!(s, "<tr><td><code>{}</code></td>", xml(&knob));
                for v in &values {
                    let _ = write!(s, "<td>{}</td>", xml(v));
                }
                let _ = writeln!(s, "<td>{}</td></tr>", xml(&why));
            }
            let _ = writeln!(s, "</table>\n<p>{}</p>", xml(&self.module_only_line()));
        }
        if let Some(groups) = self.groups_text() {
            let _ = writeln!(s, "<p>{}</p>", xml(&groups));
        }
        s.push_str("</body></html>\n");
        s
    }
}

/// Knobs that one machine lacks for the same reason are one row from this many on.
const GROUPED: usize = 4;

/// The longest common prefix of `names`.
fn common_prefix<'s>(mut names: impl Iterator<Item = &'s str>) -> String {
    let Some(first) = names.next() else {
        return String::new();
    };
    let mut len = first.len();
    for n in names {
        len = first
            .char_indices()
            .zip(n.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(len);
    }
    first[..len].to_owned()
}

fn value_text(v: &Option<String>) -> String {
    v.as_deref().map_or("(absent)".into(), |v| {
        v.split_whitespace().collect::<Vec<_>>().join(" ")
    })
}

fn shorten(items: &[&str]) -> String {
    shorten_to(items, 6)
}

/// The first `shown` of `items`, and how many more there are.
fn shorten_to(items: &[&str], shown: usize) -> String {
    if items.len() <= shown {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..shown].join(", "),
            items.len() - shown
        )
    }
}

fn row_text(row: &Row) -> String {
    row.differences
        .iter()
        .chain(&row.notes)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
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

/// The largest measured error of `c`'s timing checks, both sides, ms (0 without timing
/// checks).
fn timing_error_ms(c: &ClaimReport) -> f64 {
    c.claim_checks
        .iter()
        .chain(&c.model_checks)
        .filter_map(|k| k.timing.as_ref())
        .map(|t| t.error_ms + t.early_error_ms)
        .fold(0.0, f64::max)
}

/// The widest window of `c`'s timing checks, ms: the spread the claim itself accepts
/// (rsync counts whole seconds, a chain of kernel timers accumulates wheel slack).
fn widest_window_ms(c: &ClaimReport) -> f64 {
    c.claim_checks
        .iter()
        .chain(&c.model_checks)
        .filter_map(|k| k.timing.as_ref())
        .map(|t| t.window_ms[1] - t.window_ms[0])
        .fold(0.0, f64::max)
}

/// What differs across `cells` (with `labels` naming the columns), and what is only worth
/// a note.
fn differences(cells: &[Option<&ClaimReport>], labels: &[String]) -> (Vec<String>, Vec<String>) {
    let present: Vec<(&str, &ClaimReport)> = cells
        .iter()
        .zip(labels)
        .filter_map(|(c, l)| c.map(|c| (l.as_str(), c)))
        .collect();
    let mut out = Vec::new();
    let mut notes = Vec::new();
    if present.len() < cells.len() {
        out.push("not run everywhere".into());
    }
    if present.is_empty() {
        return (out, notes);
    }
    // Verdicts: an inconclusive one is no verdict to compare with.
    let inconclusive: Vec<&str> = present
        .iter()
        .filter(|(_, c)| c.verdict == Verdict::Inconclusive)
        .map(|(l, _)| *l)
        .collect();
    if !inconclusive.is_empty() {
        notes.push(format!(
            "inconclusive on {} (a timing within the measured error)",
            inconclusive.join(", ")
        ));
    }
    let decided: Vec<&ClaimReport> = present
        .iter()
        .map(|(_, c)| *c)
        .filter(|c| c.verdict != Verdict::Inconclusive)
        .collect();
    if decided.iter().any(|c| c.verdict != decided[0].verdict) {
        out.push(format!(
            "verdict {}",
            present
                .iter()
                .map(|(_, c)| c.verdict.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        ));
    } else if !inconclusive.is_empty() {
        // An inconclusive verdict hides what its other checks decided: a statement check
        // that passes in one run and fails beyond its error in another still differs
        // (syn.retries-sweep on 6.1: n=1 inconclusive, n=3 15.3 s where 6.12 takes 19.5 s).
        out.extend(decided_check_differences(&present));
    }
    // Figures, where the claim asserts them (in any report's statement or prediction).
    let asserted = |get: &dyn Fn(&netclaim_suites::Figures) -> bool| {
        present
            .iter()
            .any(|(_, c)| get(&c.claimed) || get(&c.expected))
    };
    let field = |name: &str, get: &dyn Fn(&netclaim_suites::Figures) -> Option<String>| {
        let values: Vec<Option<String>> = present.iter().map(|(_, c)| get(&c.observed)).collect();
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
    if asserted(&|f| f.exit_code.is_some()) {
        out.extend(field("exit code", &|f| f.exit_code.map(|v| v.to_string())));
    }
    if asserted(&|f| f.errno.is_some()) {
        out.extend(field("errno", &|f| f.errno.map(|v| v.to_string())));
    }
    if asserted(&|f| f.syn_count.is_some()) {
        out.extend(field("SYNs", &|f| f.syn_count.map(|v| v.to_string())));
    }
    // Durations: only for a claim that states or predicts one; apart by more than the
    // spread a run may show (the claim's widest timing window, at least max(250 ms,
    // 10 %)) plus what each run measured as its own error.
    if asserted(&|f| f.duration_ms.is_some()) {
        let timed: Vec<(f64, f64, f64)> = present
            .iter()
            .filter_map(|(_, c)| {
                c.observed
                    .duration_ms
                    .map(|d| (d as f64, timing_error_ms(c), widest_window_ms(c)))
            })
            .collect();
        let apart = timed.iter().enumerate().any(|(i, a)| {
            timed[i + 1..].iter().any(|b| {
                let spread = SAME_MS.max(a.0.max(b.0) * SAME_FRACTION).max(a.2).max(b.2);
                (a.0 - b.0).abs() > spread + a.1 + b.1
            })
        });
        if apart {
            out.push(format!(
                "duration {}",
                timed
                    .iter()
                    .map(|(d, _, _)| format!("{:.2} s", d / 1000.0))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
    }
    (out, notes)
}

/// The statement checks (by name, present in every run) that pass in some runs and fail
/// beyond their measured error in others.
fn decided_check_differences(present: &[(&str, &ClaimReport)]) -> Vec<String> {
    let Some((_, first)) = present.first() else {
        return Vec::new();
    };
    first
        .claim_checks
        .iter()
        .filter_map(|check| {
            let states: Vec<(&str, CheckState)> = present
                .iter()
                .map(|(l, c)| {
                    let same = c.claim_checks.iter().find(|k| k.what == check.what)?;
                    Some((*l, same.state()))
                })
                .collect::<Option<_>>()?;
            let on = |want: CheckState| {
                states
                    .iter()
                    .filter(|(_, s)| *s == want)
                    .map(|(l, _)| *l)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (pass, fail) = (on(CheckState::Pass), on(CheckState::Fail));
            (!pass.is_empty() && !fail.is_empty())
                .then(|| format!("{}: met on {pass}, not on {fail}", check.what))
        })
        .collect()
}

/// The sysctl defaults that differ across `reports` (named `labels`), each with why it
/// differs from the first report. A knob a report's kernel shows only in its initial
/// namespace is shown with that value, marked.
fn differing_defaults(reports: &[&Report], labels: &[String]) -> Vec<Default_> {
    let Some(first) = reports.first() else {
        return Vec::new();
    };
    // Reports from before defaults were recorded, or without privilege, have none.
    if reports.iter().any(|r| r.sysctl_defaults.is_empty()) {
        return Vec::new();
    }
    let mut knobs: Vec<&String> = reports
        .iter()
        .flat_map(|r| r.sysctl_defaults.keys())
        .collect();
    knobs.sort();
    knobs.dedup();
    let side = |i: usize, knob: &str| Side {
        name: &labels[i],
        kernel: &reports[i].kernel,
        value: reports[i].sysctl_defaults.get(knob).map(String::as_str),
        facts: &reports[i].provenance,
    };
    let norm = |v: Option<&String>| v.map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
    knobs
        .into_iter()
        .filter_map(|knob| {
            let values: Vec<Option<String>> = reports
                .iter()
                .map(|r| {
                    r.sysctl_defaults.get(knob).cloned().or_else(|| {
                        r.provenance
                            .initial_namespace_only
                            .get(knob)
                            .map(|v| format!("{v} (initial namespace only)"))
                    })
                })
                .collect();
            let base = norm(first.sysctl_defaults.get(knob));
            let sources: Vec<String> = (1..reports.len())
                .filter(|i| norm(reports[*i].sysctl_defaults.get(knob)) != base)
                .map(|i| {
                    format!(
                        "{} vs {}: {}",
                        labels[0],
                        labels[i],
                        provenance::source(knob, &side(0, knob), &side(i, knob))
                    )
                })
                .collect();
            (!sources.is_empty()).then(|| Default_ {
                knob: knob.clone(),
                module_only: sources.iter().all(|s| s.contains(MODULE_LOADED)),
                values,
                sources,
            })
        })
        .collect()
}

/// Why a claim differs: the differing defaults it involves (named in its statement, lab,
/// action, expectation or evidence), or the kernel's behaviour when none is involved.
fn involved_defaults(
    cells: &[Option<&ClaimReport>],
    defaults: &[Default_],
    reports: &[&Report],
) -> String {
    let text: String = cells
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {} {} {} {}",
                c.statement,
                c.lab,
                c.action,
                c.expected.value.as_deref().unwrap_or_default(),
                c.evidence_text()
            )
        })
        .collect();
    let involved: Vec<String> = defaults
        .iter()
        .filter(|d| !d.module_only)
        .filter(|d| {
            // A knob's last part names it in evidence ("tcp_syn_linear_timeouts=4") when it
            // is distinctive; "10" (net.netfilter.nf_log.10) is not.
            let short = d.knob.rsplit('.').next().unwrap_or(&d.knob);
            let distinctive = short.len() >= 8 && short.contains('_');
            text.contains(&d.knob) || (distinctive && text.contains(short))
        })
        .map(|d| {
            format!(
                "because {} differs: {} ({})",
                d.knob,
                d.values
                    .iter()
                    .map(value_text)
                    .collect::<Vec<_>>()
                    .join(" → "),
                d.sources.join("; ")
            )
        })
        .collect();
    if involved.is_empty() {
        let kernels: Vec<&str> = reports.iter().map(|r| r.kernel.as_str()).collect();
        let mut unique = kernels.clone();
        unique.dedup();
        if unique.len() == 1 {
            format!(
                "same kernel (Linux {}) and no default involved differs: the machines or the \
                 tools differ",
                unique[0]
            )
        } else {
            format!(
                "kernel behaviour (Linux {}): no sysctl default the claim involves differs",
                kernels.join(" vs ")
            )
        }
    } else {
        involved.join("; ")
    }
}

/// How many of `report`'s verdicts are inconclusive.
fn inconclusive_in(report: &Report) -> usize {
    report
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Inconclusive)
        .count()
}

/// A column label for the report at `path`: its directory's name for a `report.json`
/// (`vm61/report.json` → `vm61`), else the path.
pub fn label(path: &Path) -> String {
    match (path.file_name(), path.parent().and_then(|p| p.file_name())) {
        (Some(f), Some(dir)) if f == "report.json" => dir.to_string_lossy().into_owned(),
        _ => path.display().to_string(),
    }
}

/// Claims whose verdict differs from `baseline` (claims only one side ran are ignored, and
/// so are inconclusive verdicts on either side: they decide nothing).
pub fn drift(baseline: &Report, now: &Report) -> Vec<String> {
    now.claims
        .iter()
        .filter_map(|c| {
            let old = baseline.claims.iter().find(|b| b.id == c.id)?;
            let decided =
                old.verdict != Verdict::Inconclusive && c.verdict != Verdict::Inconclusive;
            (decided && old.verdict != c.verdict).then(|| {
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
    use netclaim_suites::{Check, Figures, Outcome, Timing};

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
            model_agrees: true,
            outcome: Outcome {
                expected: Figures {
                    duration_ms: Some(duration_ms),
                    exit_code: exit,
                    ..Figures::default()
                },
                observed: Figures {
                    duration_ms: Some(duration_ms),
                    exit_code: exit,
                    ..Figures::default()
                },
                claim_checks: vec![timing_check(0.0)],
                ..Outcome::default()
            },
        }
    }

    fn timing_check(error_ms: f64) -> Check {
        Check {
            what: "give-up time".into(),
            expected: String::new(),
            observed: String::new(),
            ok: true,
            timing: Some(Timing {
                window_ms: [0.0, 1.0],
                observed_ms: 0.5,
                error_ms,
                early_error_ms: 0.0,
                error_from: String::new(),
            }),
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
            slowness: None,
            provenance: Default::default(),
            claims,
        }
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    /// Twenty nodes of a fleet: seventeen alike, three on a kernel where one claim is
    /// refuted and whose durations wander within their errors.
    fn fleet() -> (Vec<Report>, Vec<String>) {
        let reports = (0..20)
            .map(|i| {
                let canary = [4, 11, 17].contains(&i);
                report(
                    if canary { "6.19" } else { "6.18" },
                    vec![
                        claim(
                            "x.a",
                            if canary {
                                Verdict::Refuted
                            } else {
                                Verdict::Holds
                            },
                            131_000 + i * 10,
                            None,
                        ),
                        claim("x.b", Verdict::Holds, 3_000 + i, Some(28)),
                    ],
                )
            })
            .collect();
        let labels = (0..20).map(|i| format!("node-{i:02}")).collect();
        (reports, labels)
    }

    #[test]
    fn twenty_nodes_are_one_column_per_group_of_alike_reports() {
        let (reports, labels) = fleet();
        let m = Matrix::new(&reports, &labels);
        assert_eq!(m.columns.len(), 2, "{:?}", m.columns);
        assert_eq!(m.groups[0].len(), 17);
        assert_eq!(
            m.groups[1].iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [4, 11, 17]
        );
        assert_eq!(
            m.columns[0],
            "6.18 (node-00, node-01, node-02 and 14 more: 17 reports)"
        );
        assert_eq!(m.columns[1], "6.19 (node-04, node-11, node-17: 3 reports)");
        assert!(m.differs());
        assert_eq!(m.rows[0].differences[0], "verdict holds → refuted");
        assert!(m.rows[1].differences.is_empty(), "{:?}", m.rows[1]);
        // Every node is named in the text under the table (a header names only three),
        // in every format: node-19 is in no header.
        let groups = m.groups_text().unwrap_or_default();
        for l in &labels {
            assert!(groups.contains(l.as_str()), "{l} missing: {groups}");
        }
        let table = m.table(false, false);
        for out in [&table, &m.markdown(), &m.html()] {
            assert!(out.contains("node-19"), "{out}");
        }
        assert!(table.contains("20 reports in 2 columns"), "{table}");
    }

    #[test]
    fn alike_reports_are_one_column_and_no_difference() {
        let (mut reports, labels) = fleet();
        for r in &mut reports {
            r.kernel = "6.18".into();
            r.claims[0].verdict = Verdict::Holds;
        }
        let m = Matrix::new(&reports, &labels);
        assert_eq!(m.columns.len(), 1);
        assert!(!m.differs());
        // A node with an inconclusive verdict is a column of its own, which the note
        // names; so is one on another kernel, with nothing else different.
        reports[7].claims[1].verdict = Verdict::Inconclusive;
        reports[9].kernel = "6.19".into();
        let m = Matrix::new(&reports, &labels);
        assert_eq!(m.columns.len(), 3, "{:?}", m.columns);
        assert_eq!(m.columns[1], "6.18 (node-07)");
        assert_eq!(m.columns[2], "6.19 (node-09)");
        assert_eq!(
            m.rows[1].notes,
            ["inconclusive on node-07 (a timing within the measured error)"]
        );
        assert_eq!(m.inconclusive_counts(), [0, 1, 0]);
        assert!(!m.differs());
        // Two reports are never grouped: `compare A B` shows both.
        let m = Matrix::new(&reports[..2], &labels[..2]);
        assert_eq!(m.columns, ["6.18 (node-00)", "6.18 (node-01)"]);
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
        let m = Matrix::new(&reports, &labels(2));
        assert_eq!(m.rows[0].differences[0], "verdict holds → refuted");
        assert_eq!(m.rows[1].differences[0], "exit code 7 → 28");
        // Each difference says where it comes from.
        assert_eq!(
            m.rows[1].differences[1],
            "kernel behaviour (Linux 6.1 vs 6.18): no sysctl default the claim involves differs"
        );
        assert_eq!(drift(&reports[0], &reports[1]).len(), 1);
    }

    #[test]
    fn a_large_duration_change_is_a_difference() {
        let reports = [
            report("a", vec![claim("x", Verdict::Holds, 3_000, None)]),
            report("b", vec![claim("x", Verdict::Holds, 7_000, None)]),
        ];
        let m = Matrix::new(&reports, &labels(2));
        assert_eq!(m.rows[0].differences[0], "duration 3.00 s → 7.00 s");
    }

    // Issue 10 item 10: mysql.no-socket took 0.07 s in one run and 0.33 s in the other;
    // it asserts no timing, so the runs do not differ (compare exited 3 before).
    #[test]
    fn a_duration_the_claim_does_not_assert_is_no_difference() {
        let untimed = |ms| {
            let mut c = claim("mysql.no-socket", Verdict::Holds, ms, Some(1));
            c.claim_checks.clear();
            c.expected.duration_ms = None;
            c
        };
        let reports = [
            report("6.18", vec![untimed(70)]),
            report("6.18", vec![untimed(330)]),
        ];
        let m = Matrix::new(&reports, &labels(2));
        assert!(m.rows[0].differences.is_empty(), "{:?}", m.rows[0]);
        assert!(!m.differs());
    }

    /// A claim of `ms` whose one timing check has a window `width` ms wide and a measured
    /// error of `error` ms.
    fn timed(ms: u64, width: f64, error: f64) -> ClaimReport {
        let mut c = claim("x", Verdict::Holds, ms, None);
        let mut k = timing_check(error);
        if let Some(t) = k.timing.as_mut() {
            t.window_ms = [1995.0, 1995.0 + width];
        }
        c.claim_checks = vec![k];
        c
    }

    /// The differences between two reports of one claim each.
    fn between(a: ClaimReport, b: ClaimReport) -> Vec<String> {
        let reports = [report("a", vec![a]), report("b", vec![b])];
        Matrix::new(&reports, &labels(2)).rows[0]
            .differences
            .clone()
    }

    #[test]
    fn durations_apart_by_less_than_the_measured_errors_are_the_same() {
        // 3.0 s vs 3.9 s: 900 ms apart, the noise allows 390 ms, plus 600 ms measured.
        assert!(between(timed(3_000, 1.0, 0.0), timed(3_900, 1.0, 600.0)).is_empty());
        // Without that error the same figures differ.
        assert_eq!(
            between(timed(3_000, 1.0, 0.0), timed(3_900, 1.0, 0.0))[0],
            "duration 3.00 s → 3.90 s"
        );
    }

    // rsync counts whole seconds: its window for --timeout=2 is 1.4 s wide, and a run 840 ms
    // longer than another is within what the claim itself accepts.
    #[test]
    fn durations_within_the_claims_own_window_are_the_same() {
        assert!(between(timed(3_000, 1405.0, 0.0), timed(3_840, 1405.0, 0.0)).is_empty());
        assert_eq!(
            between(timed(3_000, 400.0, 0.0), timed(3_840, 400.0, 0.0))[0],
            "duration 3.00 s → 3.84 s"
        );
    }

    #[test]
    fn knobs_one_machine_lacks_for_one_reason_are_one_row() {
        let mut a = report("6.18", vec![]);
        let mut b = report("6.1", vec![]);
        a.provenance
            .config
            .insert("CONFIG_NF_CONNTRACK".into(), "y".into());
        b.provenance
            .config
            .insert("CONFIG_NF_CONNTRACK".into(), "m".into());
        for k in ["acct", "buckets", "checksum", "events"] {
            a.sysctl_defaults
                .insert(format!("net.netfilter.nf_conntrack_{k}"), "1".into());
        }
        a.sysctl_defaults
            .insert("net.ipv4.tcp_syn_linear_timeouts".into(), "4".into());
        b.sysctl_defaults
            .insert("net.core.somaxconn".into(), "4096".into());
        a.sysctl_defaults
            .insert("net.core.somaxconn".into(), "4096".into());
        let reports = [a, b];
        let m = Matrix::new(&reports, &labels(2));
        let rows = m.default_rows();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].0, "net.ipv4.tcp_syn_linear_timeouts");
        assert_eq!(rows[1].0, "net.netfilter.nf_conntrack_* (4 knobs)");
        assert_eq!(rows[1].1, vec!["present", "(absent)"]);
    }

    // syn.retries-sweep on 6.1 in a TCG guest: n=1 came 102 ms late, within its error
    // (inconclusive), while n=3 met the classic 15 s that 6.12 and this machine miss.
    #[test]
    fn an_inconclusive_verdict_still_shows_the_checks_that_differ() {
        let sweep = |verdict, n1: CheckState, n3_ok: bool| {
            let mut c = claim("syn.retries-sweep", verdict, 0, None);
            let mut first = timing_check(match n1 {
                CheckState::Inconclusive => 200.0,
                _ => 0.0,
            });
            first.what = "n=1: give-up time".into();
            if n1 != CheckState::Pass {
                first.ok = false;
                if let Some(t) = first.timing.as_mut() {
                    t.observed_ms = 1.1;
                }
            }
            let mut third = timing_check(0.0);
            third.what = "n=3: give-up time".into();
            third.ok = n3_ok;
            if let Some(t) = third.timing.as_mut() {
                t.observed_ms = if n3_ok { 0.5 } else { 4.0 };
            }
            c.claim_checks = vec![first, third];
            c
        };
        let reports = [
            report(
                "6.18",
                vec![sweep(Verdict::Refuted, CheckState::Pass, false)],
            ),
            report(
                "6.1",
                vec![sweep(Verdict::Inconclusive, CheckState::Inconclusive, true)],
            ),
            report(
                "6.12",
                vec![sweep(Verdict::Refuted, CheckState::Pass, false)],
            ),
        ];
        let m = Matrix::new(&reports, &labels(3));
        assert_eq!(
            m.rows[0].differences[0],
            "n=3: give-up time: met on r1, not on r0, r2"
        );
        assert_eq!(
            m.rows[0].notes,
            vec!["inconclusive on r1 (a timing within the measured error)"]
        );
    }

    #[test]
    fn an_inconclusive_verdict_is_a_note_not_a_change() {
        let reports = [
            report("a", vec![claim("x", Verdict::Holds, 3_000, None)]),
            report("b", vec![claim("x", Verdict::Inconclusive, 3_000, None)]),
            report("c", vec![claim("x", Verdict::Holds, 3_000, None)]),
        ];
        let m = Matrix::new(&reports, &labels(3));
        assert!(m.rows[0].differences.is_empty(), "{:?}", m.rows[0]);
        assert_eq!(
            m.rows[0].notes,
            vec!["inconclusive on r1 (a timing within the measured error)"]
        );
        assert_eq!(m.inconclusive_counts(), vec![0, 1, 0]);
        assert!(drift(&reports[0], &reports[1]).is_empty());
    }

    #[test]
    fn a_difference_names_the_differing_default_it_involves() {
        let mut a = report(
            "6.18",
            vec![claim("syn.x", Verdict::Refuted, 131_000, None)],
        );
        let mut b = report("6.1", vec![claim("syn.x", Verdict::Holds, 127_000, None)]);
        a.claims[0].evidence = vec!["in force: tcp_syn_linear_timeouts=4".into()];
        a.sysctl_defaults
            .insert("net.ipv4.tcp_syn_linear_timeouts".into(), "4".into());
        a.sysctl_defaults
            .insert("net.core.somaxconn".into(), "4096".into());
        b.sysctl_defaults
            .insert("net.core.somaxconn".into(), "4096".into());
        let reports = [a, b];
        let m = Matrix::new(&reports, &labels(2));
        assert_eq!(m.defaults.len(), 1);
        assert_eq!(
            m.rows[0].differences[1],
            "because net.ipv4.tcp_syn_linear_timeouts differs: 4 → (absent) (6.18 (r0) vs 6.1 (r1): kernel \
             version: Linux 6.18 has the knob, Linux 6.1 does not)"
        );
    }
}
