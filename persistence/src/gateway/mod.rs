//! HTTP gateways to other systems that grant awards (the domain's award distributor ports).

pub mod openai;

pub use openai::{GatewayConfigError, HttpQuotaGateway, OpenAiGatewaySettings};
