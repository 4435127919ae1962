//! DMARC aggregate and TLS-RPT reports: sent to legate over real SMTP in the shapes Google and
//! Microsoft send them, summarised over REST; bombs refused while the server keeps serving;
//! and the reports legate generates from what it recorded.

mod reports {
    mod generated;
    mod received;
    mod sent;
}
