//! The anchor, as public benchmarks build it: `#[tokio::main]`, tokio's
//! multi-threaded runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    fasttrack_bench_hello::serve().await
}
