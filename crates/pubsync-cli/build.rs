// Embedded migrations go stale unless cargo knows to rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
