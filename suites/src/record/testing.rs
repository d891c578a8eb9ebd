//! What the engine's unit tests share: a claim file's claim from a few lines, sysctls in
//! force.

use std::collections::BTreeMap;

use crate::spec::ClaimSpec;

pub(crate) fn spec_of(rest: &str) -> ClaimSpec {
    crate::spec::parse(
        &format!("[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\n{rest}"),
        &crate::spec::Origin::BuiltIn("t.toml"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
    .remove(0)
    .spec
}

pub(crate) fn in_force(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
