//! `sqlx::migrate!` embeds `migrations/` at compile time, but on stable Rust a
//! proc macro cannot tell cargo which files it read: without this, a new
//! migration file alone would not rebuild the crate, and the binaries would
//! ship without it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
