# Used by every suite: HTTP, JSON and load generation.
need_cmd curl curl
need_cmd jq jq
need_cmd wrk wrk
