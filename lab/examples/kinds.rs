//! Prints the README's `lab.server` key-table row, generated from the lab kinds
//! (`scripts/update-readme --kinds` splices it in).
fn main() {
    println!("{}", netclaim_lab::kind::readme_row());
}
