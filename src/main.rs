//! `netclaim`: verify documented Linux TCP behaviour in throwaway network namespaces.

mod compare;
mod provenance;
mod report;
mod runner;
mod svg;
mod vm;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use netclaim_suites::{catalog, Ctx, Verdict};
use nix::sys::signal::{SigSet, Signal};

use crate::compare::Matrix;
use crate::report::{Machine, Report};

/// Exit codes (also in `--help` and the README).
mod exit {
    /// Every claim reached a verdict (holds, refuted or not-applicable); no drift.
    pub const OK: u8 = 0;
    /// At least one claim ended in `error`: the harness failed.
    pub const ERROR: u8 = 1;
    /// Bad input: an unknown filter, an unreadable or malformed report, an unwritable
    /// --out directory (clap's own usage errors also exit 2).
    pub const USAGE: u8 = 2;
    /// Verdicts drifted from --baseline, or `compare` found differences.
    pub const DRIFT: u8 = 3;
    /// Some claims were skipped (missing tool or privilege); the rest reached a verdict.
    pub const SKIPPED: u8 = 4;
    /// Some claims were inconclusive: a timing check missed its window by less than the
    /// measured slowness of the machine (emulation, load); nothing else went wrong.
    pub const INCONCLUSIVE: u8 = 5;
}

const AFTER_HELP: &str = "\
Exit codes:
  0    every claim reached a verdict (holds, refuted or not-applicable) and none drifted
  1    at least one claim ended in `error` (the harness failed; see its reason)
  2    bad input: unknown claim filter, unreadable/malformed report, unwritable --out
  3    verdicts drifted from --baseline; `compare`: the reports differ
  4    some claims were skipped (a tool or root privilege is missing)
  5    some claims were inconclusive: a timing check missed its window by less than the
       measured slowness of this machine (emulation, load); rerun on an idler machine
  130  interrupted by SIGINT (143: SIGTERM); labs were torn down before exiting

A refuted claim is a finding about this kernel or tool, not a failure: exit 0.
Labs are network namespaces named netclaim-<pid>-<n> (visible in `ip netns list` while
they live); the host's own namespace is never changed.";

#[derive(Parser)]
#[command(
    name = "netclaim",
    version,
    about = "Verify documented Linux TCP behaviour in throwaway network namespaces",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the claims: id, source document and statement.
    List {
        /// Only claims whose id contains one of these.
        filters: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run claims (all, or those whose id contains a FILTER) and print their verdicts.
    Run(RunArgs),
    /// Compare reports (two runs, or one per kernel): a claims × reports matrix.
    Compare {
        /// report.json files written by `netclaim run --out DIR` or `--format json`.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
        format: CompareFormat,
        /// Show every claim, not only those that differ (table format).
        #[arg(long)]
        all: bool,
    },
    /// Remove lab namespaces left behind by runs that were killed (SIGKILL).
    Clean,
    /// Run the catalog under another kernel in a throwaway VM (virtme-ng) and bring its report.json back.
    Vm(vm::VmArgs),
    /// Compare kernels: this machine's and each given one (default: every /boot/vmlinuz-*)
    /// in its own VM, merged into one claims × kernels table. Exit 0, 1, 4 or 5 as for
    /// `run` (the kernels differing is the expected outcome, not an exit code).
    Kernels(vm::KernelsArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Only claims whose id contains one of these (e.g. `syn.retries-1`, `curl`).
    filters: Vec<String>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also write report.json, junit.xml, report.md and timelines/<claim>.svg here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Exit 3 when a verdict differs from this earlier report.json.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// How many claims run at once (default: all; they mostly wait on kernel timers).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Bind-mount each lab at /run/netns/netclaim-<pid>-<n> while it lives, so
    /// `ip netns exec` can inspect it (same as NETCLAIM_NAME_LABS=1). Off by default: an
    /// unnamed lab cannot outlive the run, even after SIGKILL.
    #[arg(long)]
    name_labs: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Junit,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompareFormat {
    Table,
    Markdown,
    Html,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List { filters, json } => list(&filters, json),
        Command::Run(args) => run(args),
        Command::Compare {
            reports,
            format,
            all,
        } => compare(&reports, format, all),
        Command::Clean => clean(),
        Command::Vm(args) => vm::run(args),
        Command::Kernels(args) => vm::kernels(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("netclaim: error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// The claims matching `filters`; an error naming the filters that match nothing.
pub(crate) fn select(filters: &[String]) -> Result<Vec<netclaim_suites::Claim>> {
    catalog::select(filters).map_err(|unknown| {
        anyhow::anyhow!(
            "no claim id contains {}: run `netclaim list` to see the ids",
            unknown
                .iter()
                .map(|u| format!("{u:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn list(filters: &[String], json: bool) -> Result<u8> {
    let claims = select(filters)?;
    if json {
        let v: Vec<serde_json::Value> = claims
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "source": c.source, "statement": c.statement,
                    "lab": c.lab, "action": c.action,
                    "tools": c.needs.tools, "estimate_s": c.estimate.as_secs(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::OK);
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["claim", "source", "statement", "~s"]);
    for c in &claims {
        t.add_row(vec![
            c.id.to_owned(),
            c.source.to_owned(),
            c.statement.to_owned(),
            c.estimate.as_secs().to_string(),
        ]);
    }
    println!("{t}\n{} claims", claims.len());
    Ok(exit::OK)
}

/// Checks that `dir` can take the report files before any claim runs.
fn prepare_out(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("timelines")).with_context(|| {
        format!(
            "cannot create --out directory {}: choose a writable directory",
            dir.display()
        )
    })?;
    let probe = dir.join(".netclaim-write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "--out directory {} is not writable: choose a writable directory",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn write_out(dir: &Path, report: &Report) -> Result<()> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("report.json", &report.json())?;
    write("junit.xml", &report.junit())?;
    write("report.md", &report.markdown())?;
    for c in report.claims.iter().filter(|c| !c.timelines.is_empty()) {
        write(
            &format!("timelines/{}.svg", c.id),
            &svg::document(&c.id, &c.timelines),
        )?;
    }
    Ok(())
}

/// Sweeps labs left by killed runs, saying what it removed.
fn sweep_stale() {
    if netclaim_harness::privilege::check().is_err() {
        return;
    }
    let swept = netclaim_harness::netns::sweep_stale();
    if !swept.removed.is_empty() {
        eprintln!(
            "netclaim: removed {} lab namespace(s) left by runs that no longer exist: {}",
            swept.removed.len(),
            swept.removed.join(", ")
        );
    }
    for f in swept.failed {
        eprintln!("netclaim: warning: could not remove a stale lab: {f}");
    }
}

fn clean() -> Result<u8> {
    if let Err(reason) = netclaim_harness::privilege::check() {
        bail!("{reason}");
    }
    let swept = netclaim_harness::netns::sweep_stale();
    if swept.removed.is_empty() && swept.vanished.is_empty() && swept.failed.is_empty() {
        println!("nothing to clean: no netclaim-* namespace without a live owner");
    }
    for s in &swept.removed {
        println!("removed {s}");
    }
    for s in &swept.vanished {
        println!("{s}: already removed by another netclaim process");
    }
    for f in &swept.failed {
        eprintln!("netclaim: could not remove: {f}");
    }
    Ok(if swept.failed.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Blocks SIGINT and SIGTERM in every thread (threads started later inherit the mask)
/// and handles them on one thread: `cleanup`, then exit 128 + signal.
pub(crate) fn on_interrupt(cleanup: fn(Signal)) -> Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().context("blocking SIGINT/SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            cleanup(sig);
            let _ = std::io::stderr().flush();
            std::process::exit(128 + sig as i32);
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// `run`'s interrupt: remove this run's lab names, if labs are named. Exiting then ends
/// every thread; tools and daemons inside the labs die with them (parent-death signal),
/// and the namespaces with their last reference.
fn tear_down_labs(sig: Signal) {
    eprintln!("\nnetclaim: {sig}: stopping claims and tearing down their labs");
    let swept = netclaim_harness::netns::sweep_own();
    if netclaim_harness::netns::naming() {
        eprintln!(
            "netclaim: removed {} lab name(s) under {}",
            swept.removed.len(),
            netclaim_harness::netns::NETNS_RUN_DIR
        );
    }
    for f in swept.failed {
        eprintln!("netclaim: warning: {f}");
    }
}

fn run(args: RunArgs) -> Result<u8> {
    let claims = select(&args.filters)?;
    let baseline = args
        .baseline
        .as_deref()
        .map(Report::load)
        .transpose()
        .context("--baseline")?;
    if let Some(dir) = &args.out {
        prepare_out(dir)?;
    }
    if let Err(reason) = netclaim_harness::privilege::check() {
        eprintln!("netclaim: every claim will be skipped: {reason}");
    }
    on_interrupt(tear_down_labs)?;
    sweep_stale();
    if args.name_labs {
        netclaim_harness::netns::set_naming(true);
    }
    if netclaim_harness::netns::naming() && !args.quiet {
        eprintln!(
            "netclaim: labs are named under {} while they run (ip netns exec <name> …)",
            netclaim_harness::netns::NETNS_RUN_DIR
        );
    }

    // The wall time covers everything a user waits for, machine facts included.
    let started = Instant::now();
    let ctx = Ctx::detect();
    let machine = Machine::detect(&ctx);
    if !args.quiet {
        eprintln!(
            "netclaim: running {} claim(s) on Linux {} (HZ={}), each in its own network namespace",
            claims.len(),
            ctx.kernel,
            ctx.hz
        );
    }
    let jobs = args.jobs.unwrap_or(claims.len());
    let finished = runner::run(&claims, &ctx, jobs, args.quiet);
    let report = Report::new(machine, &finished, started.elapsed());

    let tty = std::io::stdout().is_terminal();
    match args.format {
        Format::Table => println!("{}", report.table(tty)),
        Format::Json => println!("{}", report.json()),
        Format::Junit => print!("{}", report.junit()),
        Format::Markdown => print!("{}", report.markdown()),
    }
    if !matches!(args.format, Format::Table) && !args.quiet {
        eprintln!("{}", report.summary());
    }
    if let Some(dir) = &args.out {
        write_out(dir, &report)?;
        if !args.quiet {
            eprintln!(
                "netclaim: wrote report.json, junit.xml, report.md and timelines/ to {}",
                dir.display()
            );
        }
    }

    let drift = baseline
        .as_ref()
        .map(|b| compare::drift(b, &report))
        .unwrap_or_default();
    for d in &drift {
        eprintln!("netclaim: drift: {d}");
    }
    let verdicts: Vec<Verdict> = report.claims.iter().map(|c| c.verdict).collect();
    Ok(if verdicts.contains(&Verdict::Error) {
        exit::ERROR
    } else if !drift.is_empty() {
        exit::DRIFT
    } else if verdicts.contains(&Verdict::Skipped) {
        exit::SKIPPED
    } else if verdicts.contains(&Verdict::Inconclusive) {
        exit::INCONCLUSIVE
    } else {
        exit::OK
    })
}

fn compare(paths: &[PathBuf], format: CompareFormat, all: bool) -> Result<u8> {
    let reports = paths
        .iter()
        .map(|p| Report::load(p))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = paths.iter().map(|p| compare::label(p)).collect();
    let matrix = Matrix::new(&reports, &labels);
    match format {
        CompareFormat::Table => println!("{}", matrix.table(std::io::stdout().is_terminal(), !all)),
        CompareFormat::Markdown => print!("{}", matrix.markdown()),
        CompareFormat::Html => print!("{}", matrix.html()),
    }
    Ok(if matrix.differs() {
        exit::DRIFT
    } else {
        exit::OK
    })
}
