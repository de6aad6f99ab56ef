//! `lanyard`, the command line of Lanyard: log in to a control plane, list
//! clusters, manage who has access (admins), merge a cluster's kubeconfig
//! into the user's, and serve as kubectl's exec plugin that mints and caches
//! short-lived cluster tokens. `lanyard dev …` serves the local run.
//!
//! | module | |
//! |---|---|
//! | [`cli`] | the command tree (clap) |
//! | [`commands`] | what each command does |
//! | [`config`] | the config file and the session |
//! | [`session`] | the session the commands use, renewed silently with the refresh token |
//! | [`oidc`] | OpenID Connect with the identity provider: discovery, PKCE, code, refresh and device grants |
//! | [`loopback`] | the loopback redirect listener of `lanyard login` |
//! | [`api`] | the control plane's HTTP API |
//! | [`output`] | tables and JSON |
//! | [`kubeconfig`] | merging into and removing from a kubeconfig file |
//! | [`token_cache`] | the exec plugin's token cache |
//! | [`fsutil`] | atomic 0600 writes |
//! | [`error`] | typed errors and exit codes |

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod kubeconfig;
pub mod loopback;
pub mod oidc;
pub mod output;
pub mod session;
pub mod token_cache;
