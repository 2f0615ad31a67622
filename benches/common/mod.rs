//! Helpers of the converge bench (not a bench target themselves).

pub mod operator;
pub mod plane;
pub mod scrape;
pub mod tracker;
