//! The worker: the face engine (detection, alignment, embedding, matching) and the
//! job handlers that carry photos from storage through the engine into records.

pub mod batch_archive;
pub mod classroom;
pub mod device_check;
pub mod drawing;
pub mod engine;
pub mod evaluation;
pub mod fixtures;
pub mod golden;
pub mod jobs;
pub mod reembedding;
pub mod schema;
pub mod seed;
pub mod service;
pub mod throughput;
pub mod webhooks;
