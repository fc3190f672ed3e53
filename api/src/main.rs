//! `big-market`: the GraphQL API server and its operational commands.

use clap::Parser;

use api::cli::{Cli, Command};
use api::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    let telemetry = api::telemetry::init_with(&settings.log, &settings.telemetry)?;
    let outcome = run(cli.command, settings).await;
    telemetry.shutdown();
    outcome
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            api::startup::Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Relay => api::startup::run_relay(&settings).await,
        Command::RebuildProjections => api::startup::rebuild_projections(&settings).await,
        Command::Migrate => api::startup::migrate(&settings).await,
        Command::Token(args) => {
            use api::auth::Role;
            let (subject, role) = match (args.user, args.service) {
                (Some(user), _) => (user, Role::User),
                (None, Some(app)) => (app, Role::Service),
                (None, None) => ("admin".to_owned(), Role::Admin),
            };
            println!("{}", api::auth::issue(&settings.auth, &subject, role)?);
            Ok(())
        }
        Command::TrustDocuments(args) => api::graphql::persisted::trust_documents(&settings, &args.files).await,
        Command::ExportSchema => {
            print!("{}", api::graphql::sdl());
            Ok(())
        }
    }
}
