# A loopback postfix receives our mail and relays its own to us; smtp-sink/smtp-source (in
# postfix) are the sink and load source of bench/smtp_outbound.sh.
need_cmd postfix postfix
need_cmd smtp-sink postfix
# dkimpy verifies both DKIM signatures; PyNaCl gives it ed25519.
need_py dkim dkimpy
need_py nacl pynacl
# swaks submits with STARTTLS and AUTH PLAIN.
need_cmd swaks swaks
# The DANE test of the outbound suite (tests/tests/outbound/dane.rs) signs a zone with Knot.
need_cmd knotd knot
