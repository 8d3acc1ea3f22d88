//! The same hello-world on tokio's current-thread runtime, as the project's
//! functions run: reported beside the anchor, so that the share of the
//! runtime flavour in each ratio is visible.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fasttrack_bench_hello::serve().await
}
