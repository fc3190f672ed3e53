//! Command-line interface of the `big-market` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// big-market: raffle and marketing-campaign backend (GraphQL, CQRS, sharded MySQL).
#[derive(Debug, Parser)]
#[command(name = "big-market", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to `big-market.toml` when it exists; every value can
    /// also be set with `BIG_MARKET_<SECTION>__<KEY>` environment variables.
    #[arg(long, short, env = "BIG_MARKET_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GraphQL API server (with the outbox relay and consumers unless disabled).
    Serve,
    /// Run only the outbox relay and the consumers (several may run at once).
    Relay,
    /// Create (if missing) and migrate the config and shard databases; re-runnable.
    Migrate,
    /// Drop and rebuild every user read model in Redis from all shards (safe while serving).
    RebuildProjections,
    /// Print the GraphQL schema (SDL) to stdout.
    ExportSchema,
    /// Print a bearer token that `serve` with the same configuration and working directory
    /// accepts (HS256, valid `auth.token_ttl_secs`); with no configuration it signs with the
    /// development secret, creating it if `serve` has not run yet.
    Token(TokenArgs),
    /// Register trusted GraphQL documents in Redis for every instance (the only documents that
    /// run with `http.trusted_documents = "enforce"`, admin tokens excepted): manifests
    /// (`.json`: graphql-codegen's `persisted-documents.json`, an object of SHA-256 → text, or
    /// an Apollo persisted query manifest) and `.graphql` files (one document each, the whole
    /// text). All or none; prints each document's `sha256:` id.
    TrustDocuments(TrustDocumentsArgs),
}

/// The files `big-market trust-documents` registers.
#[derive(Debug, clap::Args)]
pub struct TrustDocumentsArgs {
    /// Manifests (`.json`) and GraphQL documents (any other file).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Whose token `big-market token` prints: exactly one of the options.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TokenArgs {
    /// A user token for this user id (acts only as that user).
    #[arg(long)]
    pub user: Option<String>,
    /// An operator token (role `admin`, subject `admin`).
    #[arg(long)]
    pub admin: bool,
    /// A trusted-backend token (role `service`) for this application id.
    #[arg(long, value_name = "APP_ID")]
    pub service: Option<String>,
}
