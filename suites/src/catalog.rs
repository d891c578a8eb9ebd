//! Every claim, in a stable order.

use crate::claim::Claim;
use crate::claims;

/// All claims of the catalog.
pub fn all() -> Vec<Claim> {
    let mut v = Vec::new();
    v.extend(claims::syn::claims());
    v.extend(claims::tools::claims());
    v.extend(claims::mysql::claims());
    v.extend(claims::rsync::claims());
    v.extend(claims::port::claims());
    v.extend(claims::tw::claims());
    v.extend(claims::backlog::claims());
    v
}

/// The claims whose id equals a filter or starts with `filter.` / contains it; all when
/// `filters` is empty. Unknown filters are returned as errors.
pub fn select(filters: &[String]) -> Result<Vec<Claim>, Vec<String>> {
    let all = all();
    if filters.is_empty() {
        return Ok(all);
    }
    let unknown: Vec<String> = filters
        .iter()
        .filter(|f| !all.iter().any(|c| c.id.contains(f.as_str())))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(all
        .into_iter()
        .filter(|c| filters.iter().any(|f| c.id.contains(f.as_str())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate claim ids");
        for c in &all {
            assert!(
                c.id.contains('.')
                    && c.id.chars().all(|ch| ch.is_ascii_lowercase()
                        || ch.is_ascii_digit()
                        || ".-".contains(ch)),
                "bad id {}",
                c.id
            );
            assert!(
                c.source.ends_with(".txt"),
                "{}: source must name a seed file",
                c.id
            );
            assert!(!c.statement.is_empty(), "{}: empty statement", c.id);
        }
    }

    #[test]
    fn unknown_filters_are_reported() {
        assert_eq!(
            select(&["no.such-claim".into()]).unwrap_err(),
            vec!["no.such-claim".to_string()]
        );
    }
}
