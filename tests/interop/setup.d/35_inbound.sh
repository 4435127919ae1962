# Postfix's smtp-source / smtp-sink load the inbound MTA (postfix itself is never started:
# the package's own service start is refused in containers, and nothing here enables it).
need_cmd smtp-source postfix
# A loopback DNS server (dnslib) answers for the signing domains; dkimpy (with PyNaCl for
# ed25519) signs, authheaders + pyspf (over dnspython) give the reference verdicts.
need_py dnslib dnslib
need_py dkim dkimpy
need_py nacl pynacl
need_py authheaders authheaders
need_py spf pyspf
need_py dns dnspython
