//! The commands: each module runs one branch of the command tree
//! ([`crate::cli`]) and returns a typed error; [`run`] dispatches.

pub mod auth;
pub mod cluster;
pub mod dev;
pub mod kubeconfig;
pub mod sso;
pub mod token;

use lanyard_core::dev::SessionClaims;

use crate::cli::{Cli, Cluster, Command, Credential, Dev};
use crate::error::Result;

pub fn run(cli: Cli) -> Result<()> {
    let format = cli.output;
    match cli.command {
        Command::Login(args) => auth::login(args, format),
        Command::Logout => auth::logout(format),
        Command::Whoami { local } => auth::whoami(local, format),
        Command::Cluster(Cluster::List) => cluster::list(format),
        Command::Cluster(Cluster::Delete { cluster, yes }) => cluster::delete(&cluster, yes, format),
        Command::Cluster(Cluster::Credential(Credential::Rotate { cluster, previous_valid_for })) => {
            cluster::rotate_credential(&cluster, previous_valid_for, format)
        }
        Command::Cluster(Cluster::Access(cmd)) => cluster::access(cmd, format),
        Command::Cluster(Cluster::Kubeconfig(cmd)) => kubeconfig::run(cmd, format),
        Command::Cluster(Cluster::Token { control_plane, cluster }) => token::run(&control_plane, &cluster),
        Command::Dev(Dev::Init { state }) => dev::init(&state),
        Command::Dev(Dev::SigningKeys { state, public }) => dev::signing_keys(&state, public),
        Command::Dev(Dev::Token { email, org, admin, name, ttl, state }) => {
            dev::token(&state, SessionClaims { email, org, admin, name, ttl_secs: ttl })
        }
        Command::Dev(Dev::Seed { url, org, state, wait_secs, session_file }) => {
            dev::seed(&url, &org, &state, wait_secs, session_file.as_deref())
        }
    }
}
