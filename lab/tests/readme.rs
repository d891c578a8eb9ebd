//! The README's `lab.server` row is generated from the lab kinds (each kind describes
//! itself once): a kind added or reworded without `scripts/update-readme --kinds` fails
//! here, naming the fix.

#[test]
fn the_readme_lab_server_row_is_the_kinds_own_text() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `lab.server` |"))
        .expect("README.md has a lab.server row");
    assert_eq!(
        row,
        netclaim_lab::kind::readme_row(),
        "README.md's lab.server row is not the kinds' text: run scripts/update-readme --kinds"
    );
}
