pub(crate) mod fast_hash;
pub mod mpsc;
