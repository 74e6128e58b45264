//! The vocabulary every layer shares: orders, their rows and outcomes, pay results, products.
//! Pure types and rules; nothing here does I/O.

mod listing;
mod operator;
mod order;
pub mod recon;
mod refund;

pub use listing::*;
pub use operator::*;
pub use order::*;
pub use refund::*;

/// A product of the catalogue, as the store reads it.
#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_fen: i64,
    pub stock: i64,
    /// The same in Simplified Chinese, where the catalogue has it.
    pub name_zh: Option<String>,
    pub description_zh: Option<String>,
}
