//! # big-market domain
//!
//! Pure business logic of the raffle platform: value objects, the strategy draw engine
//! (armory, pre-draw rule chain, post-draw rule tree), and the ports (traits) through which
//! the application reaches storage, randomness and time. This crate does no IO: adapters
//! live in `persistence`, the GraphQL edge in `api`.

pub mod activity;
pub mod award;
pub mod credit;
pub mod error;
pub mod events;
pub mod ids;
pub mod outbox;
pub mod ports;
pub mod stock;
pub mod strategy;
pub mod switches;

pub use error::ErrorCode;
