//! Shared code of the fuzz targets: the engine driver and the seed corpora.

pub mod engine;
pub mod seeds;
