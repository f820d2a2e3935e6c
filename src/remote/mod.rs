//! TRANSPORT: the only layer that speaks SSH (ssh2). The engine sees it
//! through the [`Connector`] and [`Connection`] traits.

pub mod facts;
pub mod jump;
pub mod knownhosts;
pub mod reach;
pub mod script;
pub mod session;
pub mod shell;

pub use reach::{Password, Reach};
pub use session::{
    ConnectError, ConnectOptions, Connection, Connector, ExecError, Output, SshConnector,
};
