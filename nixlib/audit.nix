# The audit log's chain, checked in pure Nix: every line's digest is the
# sha256 of the line without its `,"digest":"..."` member, its seq the next
# number and its prev the digest of the line before (the same rules as
# 'lambda-check audit verify'). Signed checkpoints need ed25519, which Nix
# does not have: check them with the binary.
let
  inherit (builtins)
    elemAt
    filter
    foldl'
    fromJSON
    hashString
    isString
    length
    match
    split
    stringLength
    substring
    tryEval
    ;

  genesis = "sha256:" + "0000000000000000000000000000000000000000000000000000000000000000";

  checkLine =
    state: line:
    if state.problem != null then
      state
    else
      let
        n = state.n + 1;
        m = match "(.*),\"digest\":\"(sha256:[0-9a-f]{64})\"}" line;
        parsed = tryEval (fromJSON line);
        ev = parsed.value;
        body = "${elemAt m 0}}";
        fail = why: state // { problem = { line = n; reason = why; }; };
      in
      if m == null then
        fail "not an audit event: no digest at its end"
      else if !parsed.success then
        fail "not JSON"
      else if "sha256:" + hashString "sha256" body != elemAt m 1 then
        fail "its digest is not the digest of its content: the line was edited"
      else if ev.seq or null != n then
        fail "seq ${toString (ev.seq or "none")} where ${toString n} was due: a line was inserted, deleted or reordered"
      else if ev.prev or null != state.prev then
        fail "prev is not the digest of the line before: the chain is broken here"
      else
        state
        // {
          inherit n;
          prev = elemAt m 1;
        };

  # verifyAuditLog (readFile ./audit.jsonl) ==
  #   { ok = true; events = 42; head = "sha256:..."; problem = null; }
  # or ok = false with problem = { line; reason; }.
  verifyAuditLog =
    text:
    let
      ls = filter (l: isString l && l != "") (split "\n" text);
      torn = text != "" && substring (stringLength text - 1) 1 text != "\n";
      r = foldl' checkLine {
        n = 0;
        prev = genesis;
        problem = null;
      } ls;
      problem =
        if r.problem == null && torn then
          {
            line = length ls;
            reason = "the log ends in the middle of a line";
          }
        else
          r.problem;
    in
    {
      ok = problem == null;
      events = r.n;
      head = r.prev;
      inherit problem;
    };
in
{
  inherit verifyAuditLog genesis;
}
