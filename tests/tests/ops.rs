//! Operations suite (issue 17): the CLI against a running server over the admin socket and
//! against a stopped one, backup and restore, `legate doctor`, and upgrades keeping data.

#[path = "ops/admin_socket.rs"]
mod admin_socket;
#[path = "ops/backup.rs"]
mod backup;
#[path = "ops/console.rs"]
mod console;
#[path = "ops/console_pages.rs"]
mod console_pages;
#[path = "ops/doctor.rs"]
mod doctor;
#[path = "ops/oauth.rs"]
mod oauth;
#[path = "ops/upgrade.rs"]
mod upgrade;
