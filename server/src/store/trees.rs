//! The named trees (tables). Adding a tree is a schema-compatible change; renaming one is not.

/// Every tree the store opens. The discriminant indexes the open handles, so variants are
/// only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Schema version and other singletons.
    Meta,
    /// human id -> Human
    Humans,
    /// email -> human id
    HumanEmail,
    /// org id -> Org
    Orgs,
    /// domain -> org id
    OrgDomain,
    /// agent id -> Agent
    Agents,
    /// address -> agent id
    AgentAddress,
    /// key id -> ApiKey
    ApiKeys,
    /// sha256(token) -> key id
    ApiKeyHash,
    /// seq (u64 BE) -> audit Entry
    Audit,
    /// agent id \0 seq -> () : an agent's own audit entries without scanning the whole log
    AuditByAgent,
    /// agent id -> sealed agent key (KEK)
    VaultAgentKeys,
    /// agent id \0 name -> credential record
    VaultCredentials,
    /// owner \0 purpose -> sealed key material (DKIM, identity keys)
    KeyCustody,
    /// message id -> message metadata
    Messages,
    /// Schema 2 and before: message id -> raw RFC 5322 bytes. Schema 3 keeps bodies in the
    /// blob store ([`Tree::BlobRefs`]); the migration empties this tree.
    MessageBlobs,
    /// agent \0 folder \0 uid (BE) -> message id
    FolderUids,
    /// agent \0 received (BE) \0 message id -> () : newest-first listing of all but Trash
    MailTimeline,
    /// agent \0 folder -> folder state (uidvalidity, uidnext, counts)
    Folders,
    /// agent \0 modseq (BE) -> change : the change feed for IMAP CONDSTORE and webhooks
    MailChanges,
    /// message id -> queue record; recipient states inside
    Queue,
    /// due time (BE) \0 message id -> () : the queue schedule
    QueueSchedule,
    /// message id -> derived content (bodies, extracted text, codes, links, headers); none
    /// for the agent's own Sent and Drafts copies, which derive it when read
    MessageContent,
    /// agent \0 folder \0 received (BE) \0 message id -> () : newest-first listing of a folder
    FolderTimeline,
    /// agent \0 Message-ID -> thread id
    MailThreads,
    /// Schema 1 only: queue id -> signed raw message. Schema 2 keeps one copy, the Sent
    /// copy's blob, held by [`Tree::BlobHolds`]; the migration moves these over.
    QueueBlobs,
    /// message id -> () : a raw message the outbound queue still needs; purging the message
    /// from its mailbox keeps the blob until the hold is released
    BlobHolds,
    /// message id -> blob id (SHA-256, 32 bytes): where the message's raw bytes live in the
    /// blob store (`store::blob`). Schema 3 on; replaces [`Tree::MessageBlobs`], whose raw
    /// values the 2 -> 3 migration moves out.
    BlobRefs,
    /// blob id -> number of [`Tree::BlobRefs`] entries naming it (u64 BE); absent at zero,
    /// when the blob file is deleted.
    BlobCounts,
    /// agent \0 term \0 received (BE) \0 message id -> () : full-text postings, one per
    /// distinct term of a message (`mailbox::search`). Schema 4 on.
    SearchPostings,
    /// message id -> the message's terms: what a purge removes from [`Tree::SearchPostings`],
    /// and what a search checks a candidate's other words against.
    SearchDocs,
    /// agent \0 received (BE) \0 message id -> () : indexed messages not yet merged into
    /// posting blocks (`mailbox::search::merge`).
    SearchPending,
    /// agent \0 received (BE) \0 message id -> () : purged messages whose positions the
    /// merger has yet to remove from the blocks.
    SearchDead,
    /// agent|org \0 owner id \0 allow|block \0 entry -> sender list entry
    /// (`mailbox::senders`)
    SenderLists,
    /// agent \0 thread id \0 received (BE) \0 message id -> () : a thread's messages in
    /// arrival order (`mailbox::threads`)
    ThreadMessages,
    /// agent \0 draft id -> draft (`queue::drafts`)
    Drafts,
    /// due ms (BE) agent \0 draft id -> () : scheduled drafts, fired by the queue worker
    DraftSchedule,
    /// recipient domain -> the MTA-STS policy last fetched for it (id, text, expiry), so the
    /// outbound cache survives restarts as RFC 8461 §5.1 asks. Missing in older data
    /// directories: an empty tree, no migration.
    MtaStsPolicies,
    /// seq (u64 BE) -> event record: the outbox (`store::outbox`), written in the same
    /// transaction as the change each event describes; dispatchers read it in order.
    Events,
    /// webhook id -> webhook record (`events::webhooks`).
    Webhooks,
    /// webhook id \0 event seq (BE) -> delivery state: attempts, outcome, next try.
    WebhookDeliveries,
    /// dmarc|tls \0 reporter org \0 report id -> a received report, parsed (`reports`);
    /// the key is the dedup key
    ReportsReceived,
    /// day (YYYY-MM-DD) \0 header-from domain \0 seq (BE) -> one inbound DMARC evaluation,
    /// the material of the aggregate reports we send (`reports::record`)
    ReportsDmarcEvents,
    /// day \0 policy domain \0 policy type \0 mx host \0 result -> count (u64 BE): outbound
    /// TLS outcomes, the material of the TLS-RPT reports we send
    ReportsTlsCounters,
    /// named counters and markers of the reports service (parse failures, last send day)
    ReportsState,
    /// agent id -> the agent's own send policy (`policy`); absent: the org default
    SendPolicies,
    /// agent id -> its send counters in the current hour and day windows (`policy::admit`),
    /// updated in the transaction that queues each message
    SendCounters,
    /// agent \0 address (lower case) -> () : addresses the agent has exchanged mail with
    /// (sent to, or received authenticated mail from): "first contact" is any other
    SendContacts,
    /// org id \0 address (lower case) -> suppression entry (`policy::suppress`): addresses
    /// no agent of the org may send to
    Suppressions,
    /// message id -> approval (`policy::approvals`): a held send waiting for a human, and
    /// what was decided
    Approvals,
    /// agent \0 message id -> () : the agent's pending approvals
    ApprovalsPending,
    /// expiry ms (BE) \0 message id -> () : pending approvals by the time they expire
    ApprovalExpiry,
    /// report id -> a bounce or complaint report received (`queue::feedback`), linked to
    /// the message it is about or kept unlinked for an admin
    FeedbackReports,
    /// message id \0 report id -> () : the reports linked to a sent message
    FeedbackByMessage,
    /// agent id -> circuit breaker state (`policy::breaker`): recent outcomes, a pause
    BreakerState,
    /// Message-ID (lower case, no brackets) -> message id of a message an agent sent: how
    /// a complaint quoting only the original's Message-ID finds it (`queue::feedback`)
    SentMessageIds,
    /// agent id -> screening settings (`mailbox::screening`): first contacts to Screened
    Screening,
    /// human id -> the human's console password (argon2id PHC string) and when it was set
    /// (`identity::passwords`)
    HumanPasswords,
    /// SHA-256(session id) -> console session: human, stage, CSRF token, times
    /// (`identity::sessions`); the id itself is only in the browser's cookie
    ConsoleSessions,
    /// client id -> OAuth client registered by RFC 7591 dynamic registration (`identity::oauth`)
    OAuthClients,
    /// SHA-256(code or token) -> OAuth grant: an authorization code, a refresh token or an
    /// access token, bound to one agent, its scopes and the consenting human
    OAuthGrants,
    /// lease name -> (holder node, expiry): work several nodes sharing one store could pick
    /// up at once, held by one (`store::lease`)
    Leases,
    /// agent id \0 human id -> owner record: the humans who own an agent (`identity::owners`)
    AgentOwners,
    /// agent id \0 connection id -> connected account metadata, no secret
    /// (`connections`); its tokens are a vault credential of kind `oauth`
    Connections,
    /// SHA-256(state) -> pending OAuth grant of a connection (single use, expiring)
    ConnectionGrants,
    /// agent \0 UTC day (BE) of the message's queueing -> the recipients of the agent's
    /// messages queued that day, by outcome (`reputation::tally`): kept in the transactions
    /// that write queue records, so a reputation score reads days, not the whole queue
    ReputationTally,
    /// SHA-256(invite code) -> a pending owner invite (`identity::invites`): single use,
    /// expiring; redeemed for the invited human's own API key
    OwnerInvites,
    /// `cert` -> the ACME certificate chain served by every node, its names and validity;
    /// `lease` -> which node is ordering; `http01` \0 token -> a pending HTTP-01 answer
    /// (`tls::acme::shared`). The keys are sealed in [`Tree::KeyCustody`].
    AcmeState,
}

impl Tree {
    pub const ALL: [Tree; 68] = [
        Tree::Meta,
        Tree::Humans,
        Tree::HumanEmail,
        Tree::Orgs,
        Tree::OrgDomain,
        Tree::Agents,
        Tree::AgentAddress,
        Tree::ApiKeys,
        Tree::ApiKeyHash,
        Tree::Audit,
        Tree::AuditByAgent,
        Tree::VaultAgentKeys,
        Tree::VaultCredentials,
        Tree::KeyCustody,
        Tree::Messages,
        Tree::MessageBlobs,
        Tree::FolderUids,
        Tree::MailTimeline,
        Tree::Folders,
        Tree::MailChanges,
        Tree::Queue,
        Tree::QueueSchedule,
        Tree::MessageContent,
        Tree::FolderTimeline,
        Tree::MailThreads,
        Tree::QueueBlobs,
        Tree::BlobHolds,
        Tree::BlobRefs,
        Tree::BlobCounts,
        Tree::SearchPostings,
        Tree::SearchDocs,
        Tree::SearchPending,
        Tree::SearchDead,
        Tree::SenderLists,
        Tree::ThreadMessages,
        Tree::Drafts,
        Tree::DraftSchedule,
        Tree::MtaStsPolicies,
        Tree::Events,
        Tree::Webhooks,
        Tree::WebhookDeliveries,
        Tree::ReportsReceived,
        Tree::ReportsDmarcEvents,
        Tree::ReportsTlsCounters,
        Tree::ReportsState,
        Tree::SendPolicies,
        Tree::SendCounters,
        Tree::SendContacts,
        Tree::Suppressions,
        Tree::Approvals,
        Tree::ApprovalsPending,
        Tree::ApprovalExpiry,
        Tree::FeedbackReports,
        Tree::FeedbackByMessage,
        Tree::BreakerState,
        Tree::SentMessageIds,
        Tree::Screening,
        Tree::HumanPasswords,
        Tree::ConsoleSessions,
        Tree::OAuthClients,
        Tree::OAuthGrants,
        Tree::Leases,
        Tree::AgentOwners,
        Tree::Connections,
        Tree::ConnectionGrants,
        Tree::ReputationTally,
        Tree::OwnerInvites,
        Tree::AcmeState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Humans => "humans",
            Tree::HumanEmail => "human_email",
            Tree::Orgs => "orgs",
            Tree::OrgDomain => "org_domain",
            Tree::Agents => "agents",
            Tree::AgentAddress => "agent_address",
            Tree::ApiKeys => "api_keys",
            Tree::ApiKeyHash => "api_key_hash",
            Tree::Audit => "audit",
            Tree::AuditByAgent => "audit_by_agent",
            Tree::VaultAgentKeys => "vault_agent_keys",
            Tree::VaultCredentials => "vault_credentials",
            Tree::KeyCustody => "key_custody",
            Tree::Messages => "messages",
            Tree::MessageBlobs => "message_blobs",
            Tree::FolderUids => "folder_uids",
            Tree::MailTimeline => "mail_timeline",
            Tree::Folders => "folders",
            Tree::MailChanges => "mail_changes",
            Tree::Queue => "queue",
            Tree::QueueSchedule => "queue_schedule",
            Tree::MessageContent => "message_content",
            Tree::FolderTimeline => "folder_timeline",
            Tree::MailThreads => "mail_threads",
            Tree::QueueBlobs => "queue_blobs",
            Tree::BlobHolds => "blob_holds",
            Tree::BlobRefs => "blob_refs",
            Tree::BlobCounts => "blob_counts",
            Tree::SearchPostings => "search_postings",
            Tree::SearchDocs => "search_docs",
            Tree::SearchPending => "search_pending",
            Tree::SearchDead => "search_dead",
            Tree::SenderLists => "sender_lists",
            Tree::ThreadMessages => "thread_messages",
            Tree::Drafts => "drafts",
            Tree::DraftSchedule => "draft_schedule",
            Tree::MtaStsPolicies => "mta_sts_policies",
            Tree::Events => "events",
            Tree::Webhooks => "webhooks",
            Tree::WebhookDeliveries => "webhook_deliveries",
            Tree::ReportsReceived => "reports_received",
            Tree::ReportsDmarcEvents => "reports_dmarc_events",
            Tree::ReportsTlsCounters => "reports_tls_counters",
            Tree::ReportsState => "reports_state",
            Tree::SendPolicies => "send_policies",
            Tree::SendCounters => "send_counters",
            Tree::SendContacts => "send_contacts",
            Tree::Suppressions => "suppressions",
            Tree::Approvals => "approvals",
            Tree::ApprovalsPending => "approvals_pending",
            Tree::ApprovalExpiry => "approval_expiry",
            Tree::FeedbackReports => "feedback_reports",
            Tree::FeedbackByMessage => "feedback_by_message",
            Tree::BreakerState => "breaker_state",
            Tree::SentMessageIds => "sent_message_ids",
            Tree::Screening => "screening",
            Tree::HumanPasswords => "human_passwords",
            Tree::ConsoleSessions => "console_sessions",
            Tree::OAuthClients => "oauth_clients",
            Tree::OAuthGrants => "oauth_grants",
            Tree::Leases => "leases",
            Tree::AgentOwners => "agent_owners",
            Tree::Connections => "connections",
            Tree::ConnectionGrants => "connection_grants",
            Tree::ReputationTally => "reputation_tally",
            Tree::OwnerInvites => "owner_invites",
            Tree::AcmeState => "acme_state",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_and_names_unique() {
        for (i, t) in Tree::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        let mut names: Vec<_> = Tree::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Tree::ALL.len());
    }
}
