//! Shared build script of every crate that links libtorch: embeds `$LIBTORCH/lib` as an rpath so
//! binaries, tests and benches find libtorch at run time without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
