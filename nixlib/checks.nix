# Flake checks for a workspace: the stages that need nothing but the
# workspace's source, run at evaluation and reported by a derivation that
# fails with the findings, so `nix flake check`, Hydra and CI enforce them.
{
  url,
  lock,
  audit,
  gitattributes,
}:
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    fromJSON
    length
    listToAttrs
    map
    pathExists
    readDir
    readFile
    toJSON
    ;

  # Infrastructure inputs: not workspace repositories.
  defaultExclude = [
    "nixpkgs"
    "flake-utils"
    "flake-parts"
    "flake-compat"
    "systems"
    "rust-overlay"
    "lambda-check"
  ];

  # workspaceFindings { src; inputs ? { }; allowLocal ? false; exclude ? ...; }
  # is every finding the source shows:
  #   - what flake.lock alone shows (local sources, cycles, several nixpkgs);
  #   - lock-drift: a submodule whose checkout (the tree its gitlink names,
  #     present when the flake is fetched with ?submodules=1) is not the
  #     tree flake.lock pins for the input of the same repository. The
  #     comparison is of contents: the checkout is added to the store as
  #     "source" and compared with the input's store path, which is the
  #     same path exactly when the trees are the same.
  #   - a note (warn) for each repository whose checkout is absent, as in a
  #     flake fetched without ?submodules=1.
  workspaceFindings =
    {
      src,
      inputs ? { },
      allowLocal ? false,
      exclude ? defaultExclude,
    }:
    let
      root = if builtins.isPath src then toString src else "${src}";
      lockFile = fromJSON (readFile (root + "/flake.lock"));
      gitmodules = if pathExists (root + "/.gitmodules") then url.parseGitmodules (readFile (root + "/.gitmodules")) else { };
      rootInputs = filter (n: !(elem n exclude)) (attrNames (lockFile.nodes.${lockFile.root}.inputs or { }));
      nodeOf = n: lock.resolve lockFile lockFile.nodes.${lockFile.root}.inputs.${n};
      subBySource = listToAttrs (
        map (p: {
          name = url.normalizeUrl gitmodules.${p}.url;
          value = gitmodules.${p};
        }) (attrNames gitmodules)
      );
      matched = filter (x: x.sub != null) (
        map (n: {
          input = n;
          node = lockFile.nodes.${nodeOf n};
          sub = subBySource.${lock.sourceOf lockFile.nodes.${nodeOf n}} or null;
        }) (filter (n: nodeOf n != null) rootInputs)
      );
      checkoutOf = m: root + "/" + m.sub.path;
      present = m: pathExists (checkoutOf m) && readDir (checkoutOf m) != { };
      drift = concatMap (
        m:
        if !(present m) then
          [
            (lock.finding "lock-drift" "warn" "submodule ${m.sub.path}"
              "${m.sub.path} is not checked out in the flake's source, so its gitlink cannot be compared with flake.lock"
              "check with the submodules: nix flake check '.?submodules=1'"
            )
          ]
        else if !(inputs ? ${m.input}) then
          [ ]
        else if
          let
            # The checkout is inside the (already fetched) source.
            dir = builtins.unsafeDiscardStringContext (checkoutOf m);
          in
          builtins.path {
            path = /. + dir;
            name = "source";
            # What the git fetcher leaves out (export-ignore) is left out.
            filter = gitattributes.exportFilter dir;
          } != inputs.${m.input}.outPath
        then
          [
            (lock.finding "lock-drift" "deny" "submodule ${m.sub.path}"
              "the gitlink of ${m.sub.path} is not the revision flake.lock pins for input ${m.input} (${m.node.locked.rev or "?"}): the two pins of the same repository have drifted apart"
              "move one pin to the other: 'lambda-check propose' writes a change that moves both together"
            )
          ]
        else
          [ ]
      ) matched;
    in
    lock.lockFindings {
      lock = lockFile;
      inherit allowLocal exclude;
    }
    ++ drift;

  # report: findings as text lines.
  report =
    findings:
    concatStringsSep "\n" (
      map (f: "${f.severity}  ${f.rule}  ${f.subject}: ${f.message}\n      hint: ${f.hint}") findings
    );

  # check: a derivation that succeeds with the report as its output, or
  # fails printing it when any finding is a deny. /bin/sh is in every Nix
  # sandbox on Linux, so no nixpkgs is needed.
  check =
    {
      name,
      system,
      findings,
      what,
    }:
    let
      denies = filter (f: f.severity == "deny") findings;
    in
    derivation {
      inherit name system;
      builder = "/bin/sh";
      findingsText = report findings;
      findingsJSON = toJSON findings;
      summary =
        if denies == [ ] then
          "lambda-check: ${what}: pass (${toString (length findings)} warnings)"
        else
          "lambda-check: ${what}: fail (${toString (length denies)} deny, ${toString (length findings - length denies)} warn)";
      failed = if denies == [ ] then "" else "1";
      args = [
        "-c"
        ''
          echo "$summary"
          [ -n "$findingsText" ] && echo "$findingsText"
          [ -z "$failed" ] || exit 1
          echo "$findingsJSON" > "$out"
        ''
      ];
    };

  # mkWorkspaceChecks { src; system; inputs ? { }; auditLog ? null; ... }:
  # flake checks for a workspace:
  #   lambda-check-policy  what workspaceFindings finds; fails on a deny;
  #   lambda-check-audit   when auditLog (a committed audit.jsonl) is given:
  #                        its chain, line by line.
  mkWorkspaceChecks =
    {
      src,
      system,
      inputs ? { },
      auditLog ? null,
      allowLocal ? false,
      exclude ? defaultExclude,
    }:
    {
      lambda-check-policy = check {
        name = "lambda-check-policy";
        what = "policy";
        inherit system;
        findings = workspaceFindings {
          inherit
            src
            inputs
            allowLocal
            exclude
            ;
        };
      };
    }
    // (
      if auditLog == null then
        { }
      else
        {
          lambda-check-audit =
            let
              r = audit.verifyAuditLog (readFile auditLog);
            in
            check {
              name = "lambda-check-audit";
              what = "audit chain (${toString r.events} events)";
              inherit system;
              findings =
                if r.ok then
                  [ ]
                else
                  [
                    (lock.finding "audit-chain" "deny" "audit log line ${toString r.problem.line}" r.problem.reason
                      "'lambda-check audit verify' shows the line; the log was changed after it was written"
                    )
                  ];
            };
        }
    );
in
{
  inherit
    workspaceFindings
    mkWorkspaceChecks
    defaultExclude
    report
    ;
}
