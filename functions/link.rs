//! The build script of every Lambda function (and of the cold-start anchor,
//! `bench/hello-world`, so that it is built the same way): links the binary
//! as a position-dependent executable.
//!
//! A position-independent executable is relocated by the dynamic loader at
//! every start: 16.7k relocations in a route function, and a copy-on-write
//! fault on each page of its 270 KB of pointer tables. Without PIE the
//! addresses are fixed at link time; a cold start's init took 0.2 to 0.3 ms
//! less (docs/performance.md, "Linking without PIE"). The executable's own
//! image then loads at a fixed address, as Go's Linux executables do by
//! default; the C library, the stack, the heap and mappings stay randomized.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
