//! `big-market`: the GraphQL API server and its operational commands.

use clap::Parser;

use api::cli::{Cli, Command};
use api::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    api::telemetry::init(&settings.log);
    match cli.command {
        Command::Serve => {
            api::startup::Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Relay => api::startup::run_relay(&settings).await,
        Command::RebuildProjections => api::startup::rebuild_projections(&settings).await,
        Command::Migrate => api::startup::migrate(&settings).await,
        Command::ExportSchema => {
            print!("{}", api::graphql::sdl());
            Ok(())
        }
    }
}
