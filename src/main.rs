//! `netclaim`: verify documented Linux TCP behaviour in throwaway network namespaces.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod out;

mod channel;
mod compare;
mod exit;
mod interrupt;
mod judge;
mod provenance;
mod report;
mod runner;
mod select;
mod settle;
mod svg;
mod vm;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use netclaim_suites::Ctx;
use nix::sys::signal::Signal;

use crate::compare::Matrix;
use crate::interrupt::on_interrupt;
use crate::out::{errln, out, outln};
use crate::report::{prepare_out, write_out, Format, Machine, Report};
use crate::select::{abbreviate, catalog_with, select, ClaimFiles};

const AFTER_HELP: &str = "\
Exit codes:
  0    every claim reached a verdict (holds, refuted or not-applicable) and none drifted
  1    at least one claim ended in `error` (the harness failed; see its reason), or
       stdout could not be written
  2    bad input: unknown or empty claim filter, only long-tier claims selected without
       --long, --jobs 0, a claim file `check` refuses, an input file that is not a
       regular file or is over its size cap (claim files 4 MiB, reports and recordings
       64 MiB), an unreadable/malformed report, a --baseline sharing no claim with the
       run, unwritable --out
  3    verdicts drifted from --baseline; `compare`: the reports differ
  4    some claims were skipped (a tool or root privilege is missing)
  5    some claims were inconclusive: a timing check missed its window by less than the
       measured slowness of this machine (emulation, load); rerun on an idler machine
  129  interrupted by SIGHUP (130: SIGINT, 143: SIGTERM); tools were killed and reaped
       and labs torn down before exiting

A refuted claim is a finding about this kernel or tool, not a failure: exit 0.
A closed stdout or stderr (`netclaim run | head`) only silences that stream: the run
goes on to its end, writes --out and exits as above.
Labs are network namespaces of their own, unnamed unless --name-labs (then visible in
`ip netns list` as netclaim-<pid>-<n> while they live); the host's own namespace is
never changed.";

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
        #[command(flatten)]
        files: ClaimFiles,
    },
    /// Validate claim files without running anything (no root needed): syntax, keys,
    /// sysctl names, placeholders, ids unique beside the built-in claims.
    Check {
        /// Claim files, or directories of *.toml claim files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
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
    /// Judge a recorded run again with this catalog and its models, without root: a
    /// report.json or recording.json written by `netclaim run --out DIR`. Exit 0 when
    /// every verdict is the recorded one, 3 when some changed, 4 when some record no
    /// longer reads, 1 when --out or stdout could not be written
    Judge {
        /// The report or recording.
        #[arg(value_name = "FILE")]
        path: PathBuf,
        /// The claim files the run used (`run --claims PATH`): a claim file or a directory
        /// of *.toml (repeatable), so that their claims are judged again too.
        #[arg(long = "claims", value_name = "PATH")]
        claims: Vec<PathBuf>,
        /// What to print on stdout: `table` compares the verdicts then and now; the others
        /// are the report of the claims as judged now, as `run` prints it.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also write the report of the claims as judged now here: report.json,
        /// recording.json, junit.xml, report.md and timelines/<claim>.svg (a claim that
        /// could not be judged again is `skipped` in them, saying why).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
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
    #[command(flatten)]
    files: ClaimFiles,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also write report.json, junit.xml, report.md and timelines/<claim>.svg here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Exit 3 when a verdict differs from this earlier report.json.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// How many claims run at once, at least 1 (default: all; they mostly wait on kernel
    /// timers).
    #[arg(long, short, value_parser = parse_jobs)]
    jobs: Option<usize>,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// After the table, print every claim's checks and evidence (command output, SYN
    /// timeline). Claims from --claims files get them without it.
    #[arg(long, short)]
    details: bool,
    /// Bind-mount each lab at /run/netns/netclaim-<pid>-<n> while it lives, so
    /// `ip netns exec` can inspect it (same as NETCLAIM_NAME_LABS=1). Off by default: an
    /// unnamed lab cannot outlive the run, even after SIGKILL.
    #[arg(long)]
    name_labs: bool,
    /// When `vm` or `kernels` started this run: how it coordinates with them.
    #[command(flatten)]
    parent: channel::ParentArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompareFormat {
    Table,
    Markdown,
    Html,
}

/// `--jobs`: a whole number of at least 1.
fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would run nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: give a whole number of at least 1")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let argv: Vec<String> = std::env::args().collect();
    netclaim_harness::privilege::set_command(argv.join(" "));
    // A full run holds ~150 descriptors at its peak; lift the soft limit as far as the
    // hard limit allows. A limit still too low ends claims in `error`, naming it.
    netclaim_harness::resource::raise_nofile();
    // Labs without root: a user namespace of this process's own, entered now, while the
    // process is still single-threaded (see harness::userns). Only the commands that
    // build labs or sweep need it; a failure is reported by privilege::check later.
    if matches!(cli.command, Command::Run(_) | Command::Clean) {
        let _ = netclaim_harness::userns::enter_if_unprivileged();
    }
    let result = match cli.command {
        Command::List {
            filters,
            json,
            files,
        } => list(&filters, json, &files),
        Command::Check { paths } => check(&paths),
        Command::Run(args) => run(args),
        Command::Compare {
            reports,
            format,
            all,
        } => compare(&reports, format, all),
        Command::Judge {
            path,
            claims,
            format,
            out,
        } => judge::run(&path, &claims, format, out.as_deref()),
        Command::Clean => clean(),
        Command::Vm(args) => vm::run(args),
        Command::Kernels(args) => vm::kernels(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("netclaim: error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

fn list(filters: &[String], json: bool, files: &ClaimFiles) -> Result<u8> {
    let claims = select(filters, files)?;
    if json {
        let v: Vec<serde_json::Value> = claims
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "source": c.source, "statement": c.statement,
                    "lab": c.lab, "action": c.action, "origin": c.origin(),
                    "catalog": c.catalog().name(), "tier": c.tier().as_str(),
                    "tools": c.needs.tools, "estimate_s": c.estimate.as_secs(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::OK);
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["claim", "source", "statement", "from", "tier", "~s"]);
    for c in &claims {
        t.add_row(vec![
            c.id.to_owned(),
            c.source.to_owned(),
            c.statement.to_owned(),
            c.origin(),
            c.tier().as_str().to_owned(),
            c.estimate.as_secs().to_string(),
        ]);
    }
    use netclaim_suites::catalog::Catalog;
    let count = |catalog: Catalog| claims.iter().filter(|c| c.catalog() == catalog).count();
    let long = claims
        .iter()
        .filter(|c| c.tier() == netclaim_suites::spec::Tier::Long)
        .count();
    outln!(
        "{t}\n{} claims: {} from the seeds catalog (five write-ups), {} from the kernel-docs catalog (ip-sysctl.rst, tcp(7), socket(7), ip(7), connect(2)), {} from the network catalog (over a wire with delay, loss or a scripted peer), {} from claim files; {long} in the long tier{}",
        claims.len(),
        count(Catalog::Seeds),
        count(Catalog::KernelDocs),
        count(Catalog::Network),
        count(Catalog::File),
        if files.long { "" } else { " (shown with --long)" }
    );
    Ok(exit::OK)
}

/// `netclaim check`: every file's problems, or what each file holds.
fn check(paths: &[PathBuf]) -> Result<u8> {
    let files = ClaimFiles {
        claims: paths.to_vec(),
        with_built_in: false,
        long: true,
    };
    let claims = catalog_with(&files)?;
    let mut by_file: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for c in &claims {
        if let Some(p) = c.user_file() {
            by_file
                .entry(p.display().to_string())
                .or_default()
                .push(c.id);
        }
    }
    for (file, ids) in &by_file {
        outln!("{file}: {} claim(s) OK: {}", ids.len(), ids.join(", "));
    }
    Ok(exit::OK)
}

/// Sweeps what killed runs left (lab names, temporary files), saying what it removed.
fn sweep_stale() {
    if netclaim_harness::privilege::check().is_err() {
        return;
    }
    let swept = netclaim_harness::sweep::stale();
    if !swept.removed.is_empty() {
        errln!(
            "netclaim: removed {} lab name(s) and temporary file(s) left by runs that no longer exist: {}",
            swept.removed.len(),
            swept.removed.join(", ")
        );
    }
    for f in swept.failed {
        errln!("netclaim: warning: could not remove what a killed run left: {f}");
    }
}

fn clean() -> Result<u8> {
    if let Err(reason) = netclaim_harness::privilege::check() {
        bail!("{reason}");
    }
    let swept = netclaim_harness::sweep::stale();
    if swept.is_empty() {
        outln!("nothing to clean: no netclaim lab name or temporary file without its live owner");
    }
    for s in &swept.removed {
        outln!("removed {s}");
    }
    for s in &swept.vanished {
        outln!("{s}: already removed by another netclaim process");
    }
    for f in &swept.failed {
        errln!("netclaim: could not remove: {f}");
    }
    Ok(if swept.failed.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// `run`'s interrupt. What follows it (see [`on_interrupt`]) kills and reaps the tools
/// and removes lab names; exiting then ends every thread, and each namespace goes with
/// its last reference.
fn tear_down_labs(sig: Signal) {
    errln!("\nnetclaim: {sig}: stopping claims and tearing down their labs");
}

/// Checks a baseline against the claims about to run: sharing none is bad input (the
/// drift check would be vacuous); claims it lacks are named.
fn check_baseline(path: &Path, baseline: &Report, claims: &[netclaim_suites::Claim]) -> Result<()> {
    let (known, new): (Vec<&str>, Vec<&str>) = claims
        .iter()
        .map(|c| c.id)
        .partition(|id| baseline.claims.iter().any(|b| b.id == *id));
    if known.is_empty() {
        let theirs: Vec<&str> = baseline.claims.iter().map(|c| c.id.as_str()).collect();
        bail!(
            "--baseline {} shares no claim with this run: it has {} ({}), this run selects {}: \
             select claims the baseline has, or run without --baseline",
            path.display(),
            theirs.len(),
            abbreviate(&theirs),
            abbreviate(&new)
        );
    }
    if !new.is_empty() {
        errln!(
            "netclaim: {} claim(s) of this run are not in the baseline, so cannot drift: {}",
            new.len(),
            abbreviate(&new)
        );
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<u8> {
    let claims = select(&args.filters, &args.files)?;
    let parent = args.parent.open()?;
    let baseline = match &args.baseline {
        Some(path) => {
            let b = Report::load(path).context("--baseline")?;
            check_baseline(path, &b, &claims)?;
            Some(b)
        }
        None => None,
    };
    if let Some(dir) = &args.out {
        prepare_out(dir)?;
    }
    if let Err(reason) = netclaim_harness::privilege::check() {
        errln!("netclaim: every claim will be skipped: {reason}");
    }
    on_interrupt(tear_down_labs)?;
    sweep_stale();
    let mode = netclaim_harness::userns::mode();
    if mode.rootless() {
        if args.name_labs {
            bail!(
                "--name-labs needs root: the labs of a user namespace cannot be mounted under \
                 {} (the host's mount namespace); drop --name-labs, or run as root",
                netclaim_harness::netns::NETNS_RUN_DIR
            );
        }
        if netclaim_harness::netns::naming() {
            errln!(
                "netclaim: {} is ignored in a user namespace: labs cannot be named under {}",
                netclaim_harness::netns::NAMING_ENV,
                netclaim_harness::netns::NETNS_RUN_DIR
            );
            netclaim_harness::netns::set_naming(false);
        }
        if !args.quiet {
            errln!(
                "netclaim: no root: labs run in a {} (see the README's modes)",
                mode.describe()
            );
        }
    }
    if args.name_labs {
        netclaim_harness::netns::set_naming(true);
    }
    if netclaim_harness::netns::naming() && !args.quiet {
        errln!(
            "netclaim: labs are named under {} while they run (ip netns exec <name> …)",
            netclaim_harness::netns::NETNS_RUN_DIR
        );
    }

    // The wall time covers everything a user waits for, machine facts included.
    let started = Instant::now();
    let ctx = Ctx::detect();
    if !args.quiet {
        errln!(
            "netclaim: running {} claim(s) on Linux {} (HZ={}), each in its own network namespace",
            claims.len(),
            ctx.kernel,
            ctx.hz
        );
    }
    let jobs = args.jobs.unwrap_or(claims.len());
    // The machine's facts (a fresh namespace's sysctls, tool versions, build options)
    // are read beside the claims, not before them: under emulation every tool's
    // `--version` costs a process start, which would hold up the two-minute claims.
    let (machine, finished) = std::thread::scope(|s| {
        let machine = s.spawn(|| Machine::detect(&ctx));
        let finished = runner::run(&claims, &ctx, jobs, args.quiet, &parent);
        (machine.join(), finished)
    });
    let machine = machine.map_err(|_| anyhow::anyhow!("reading the machine's facts panicked"))?;
    let report = Report::new(machine, &finished, started.elapsed());

    // Files first: they are the record, whatever becomes of stdout.
    let mut wrote = true;
    if let Some(dir) = &args.out {
        match write_out(dir, &report) {
            Ok(()) if !args.quiet => errln!(
                "netclaim: wrote report.json, junit.xml, report.md and timelines/ to {}",
                dir.display()
            ),
            Ok(()) => {}
            Err(e) => {
                errln!("netclaim: error: {e:#}");
                wrote = false;
            }
        }
    }
    let tty = std::io::stdout().is_terminal();
    match args.format {
        Format::Table => {
            out::table(tty, |color| report.table(color));
            // Claims from the user's files: the report's entries are the claims', in order.
            let details = report.details(|c| {
                args.details
                    || claims
                        .iter()
                        .any(|claim| claim.id == c.id && claim.user_file().is_some())
            });
            if !details.is_empty() {
                out!("\n{details}");
            }
        }
        Format::Json => outln!("{}", report.json()),
        Format::Junit => out!("{}", report.junit()),
        Format::Markdown => out!("{}", report.markdown()),
    }
    if !matches!(args.format, Format::Table) && !args.quiet {
        errln!("{}", report.summary());
    }
    if let Some(e) = out::stdout_failure() {
        errln!("netclaim: error: writing the report to stdout failed: {e}");
        wrote = false;
    }

    let drift = baseline
        .as_ref()
        .map(|b| compare::drift(b, &report))
        .unwrap_or_default();
    for d in &drift {
        errln!("netclaim: drift: {d}");
    }
    Ok(exit::of_run(
        report.claims.iter().map(|c| c.verdict),
        !wrote,
        !drift.is_empty(),
    ))
}

fn compare(paths: &[PathBuf], format: CompareFormat, all: bool) -> Result<u8> {
    let reports = paths
        .iter()
        .map(|p| Report::load(p))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = paths.iter().map(|p| compare::label(p)).collect();
    let matrix = Matrix::new(&reports, &labels);
    match format {
        CompareFormat::Table => out::table(std::io::stdout().is_terminal(), |color| {
            matrix.table(color, !all)
        }),
        CompareFormat::Markdown => out!("{}", matrix.markdown()),
        CompareFormat::Html => out!("{}", matrix.html()),
    }
    Ok(if matrix.differs() {
        exit::DRIFT
    } else {
        exit::OK
    })
}
