#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    scanpay::server::run().await;
}

#[cfg(not(feature = "ssr"))]
pub fn main() {
    // The binary is the server; the browser half is built as the library (feature "hydrate").
}
