# DNS wizard suite: a real authoritative server (Knot DNS) serves the zones rendered by
# `legate dns plan`; kdig inspects them; dkimpy, pyspf and authheaders judge mail between two
# legate servers using those zones.
need_cmd knotd knot
need_cmd knotc knot
need_cmd kdig knot-dnsutils
need_py dkim dkimpy
need_py spf pyspf
need_py dns dnspython
need_py authheaders authheaders
need_py nacl pynacl
