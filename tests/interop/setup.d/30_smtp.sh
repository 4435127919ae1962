# swaks speaks SMTP with STARTTLS, PIPELINING and AUTH.
need_cmd swaks swaks
