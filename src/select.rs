//! Which claims a command runs: the built-in catalog, the user's claim files, the
//! filters and the long tier.

use std::path::PathBuf;

use anyhow::{bail, Result};
use netclaim_suites::catalog;

/// Claim files to add to the built-in catalog.
#[derive(clap::Args, Default, Clone)]
pub(crate) struct ClaimFiles {
    /// A claim file, or a directory of *.toml claim files (repeatable). Without a FILTER
    /// only these claims run; see --with-built-in.
    #[arg(long = "claims", value_name = "PATH")]
    pub(crate) claims: Vec<PathBuf>,
    /// With --claims and no FILTER: run the built-in claims too.
    #[arg(long)]
    pub(crate) with_built_in: bool,
    /// Include the long tier: claims that take minutes (tcp_retries2 at its default runs
    /// about 15 minutes). A long claim also runs when a FILTER is its exact id.
    #[arg(long)]
    pub(crate) long: bool,
}

/// The catalog with the claim files in `files`; every problem of every file is an
/// error (bad input), each with its file:line:column.
pub(crate) fn catalog_with(files: &ClaimFiles) -> Result<Vec<netclaim_suites::Claim>> {
    catalog_with_paths(&files.claims)
}

/// The built-in catalog with the claim files (or directories of them) at `paths`.
pub(crate) fn catalog_with_paths(paths: &[PathBuf]) -> Result<Vec<netclaim_suites::Claim>> {
    catalog::with_files(paths).map_err(|errors| {
        anyhow::anyhow!(
            "{} problem(s) in the claim files; nothing was run:\n{}",
            errors.len(),
            errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The claims matching `filters`; an error naming the filters that match nothing. With
/// claim files and no filter, only the files' claims (unless --with-built-in).
pub(crate) fn select(
    filters: &[String],
    files: &ClaimFiles,
) -> Result<Vec<netclaim_suites::Claim>> {
    if let Some(blank) = filters.iter().find(|f| f.trim().is_empty()) {
        bail!(
            "empty claim filter {blank:?}: give part of a claim id (`netclaim list` shows \
             them), or no filter to run every claim"
        );
    }
    let mut all = catalog_with(files)?;
    let only_files = !files.claims.is_empty() && filters.is_empty() && !files.with_built_in;
    if only_files {
        all.retain(|c| c.user_file().is_some());
        // The files' claims act as the filter: when all of them are long-tier, selecting
        // none is the same mistake as a filter that matches only long claims.
        if !files.long
            && all
                .iter()
                .all(|c| c.tier() == netclaim_suites::spec::Tier::Long)
        {
            let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
            bail!(
                "every claim of the claim files is in the long tier ({}): add --long to run \
                 them, or give a claim's exact id as a filter",
                abbreviate(&ids)
            );
        }
    }
    catalog::select_from(all, filters, files.long).map_err(|unknown| {
        let (long, none): (Vec<String>, Vec<String>) = unknown
            .into_iter()
            .partition(|u| u.contains("(only long-tier"));
        let mut parts = Vec::new();
        if !none.is_empty() {
            parts.push(format!(
                "no claim id contains {}: run `netclaim list` to see the ids",
                none.iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !long.is_empty() {
            parts.push(format!("no default-tier claim matches {}", long.join("; ")));
        }
        anyhow::anyhow!("{}", parts.join("; "))
    })
}

/// "a, b, c and 12 more".
pub(crate) fn abbreviate(ids: &[&str]) -> String {
    const SHOWN: usize = 5;
    let head = ids
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match ids.len().saturating_sub(SHOWN) {
        0 if ids.is_empty() => "no claim".into(),
        0 => head,
        more => format!("{head} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Is this claim from a user's file?" was four tests in four places; a built-in
    // claim file (TOML) counted as a user's in one of them.
    #[test]
    fn only_the_claims_of_the_users_files_are_from_a_users_file() {
        let file = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/claims/app-db-timeout.toml"
        ));
        let claims = catalog_with_paths(std::slice::from_ref(&file)).expect("the example reads");
        let (mine, built_in): (Vec<&netclaim_suites::Claim>, Vec<_>) =
            claims.iter().partition(|c| c.user_file().is_some());
        let ids: Vec<&str> = mine.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["mine.app-db-timeout"]);
        assert_eq!(mine[0].user_file(), Some(file.as_path()));
        assert!(built_in.iter().any(|c| c.origin() == "built-in"));
        assert!(built_in.iter().any(|c| c.origin().ends_with(".toml)")));
        let only_files = ClaimFiles {
            claims: vec![file],
            with_built_in: false,
            long: false,
        };
        let selected = select(&[], &only_files).expect("selected");
        assert_eq!(selected.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    }
}
