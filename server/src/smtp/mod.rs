//! SMTP front-ends (DESIGN.md §5).
//!
//! `inbound` is the server side: MX on port 25 and submission on 587/465. It knows nothing of
//! the store, mailboxes or identities; it talks to them through [`inbound::Backend`], which the
//! application implements over its services. The outbound client lives beside it (`outbound`,
//! added separately), and the two never import each other.

pub mod inbound;
