# nixlib's tests: { expr; expected; } pairs, run by
#   nix-instantiate --eval --strict --json nixlib/tests.nix
# which prints the failures ([] when all pass); scripts/test checks that.
let
  nixlib = import ./. { };
  url = import ./url.nix;
  lock = import ./lock.nix { inherit url; };
  audit = import ./audit.nix;
  gitattributes = import ./gitattributes.nix;

  node = locked: inputs: { inherit locked inputs; };
  gh = owner: repo: rev: {
    type = "github";
    inherit owner repo rev;
    narHash = "sha256-AAAA";
  };
  lockOf = nodes: {
    version = 7;
    root = "root";
    nodes = nodes;
  };
  sample = lockOf {
    root = {
      inputs = {
        sdk = "sdk";
        chat = "chat";
        waku = "waku";
        nixpkgs = [ "sdk" "nixpkgs" ];
      };
    };
    sdk = node (gh "logos-co" "logos-cpp-sdk" "1") { nixpkgs = "nixpkgs"; };
    nixpkgs = node (gh "NixOS" "nixpkgs" "n1") { };
    waku = node (gh "logos-co" "logos-waku-module" "2") { sdk = [ "sdk" ]; };
    chat = node (gh "logos-co" "logos-chat-module" "3") {
      sdk = [ "sdk" ];
      waku = [ "waku" ];
    };
  };
  cyclic = lockOf {
    root.inputs = {
      a = "a";
      b = "b";
    };
    a = node (gh "o" "a" "1") { b = [ "b" ]; };
    b = node (gh "o" "b" "1") { a = [ "a" ]; };
  };
  local = lockOf {
    root.inputs = {
      x = "x";
      y = "y";
      nixpkgs = "nixpkgs";
    };
    x = node {
      type = "path";
      path = "/home/dev/x";
      narHash = "sha256-A";
    } { };
    y = node {
      type = "git";
      url = "file:///srv/y";
      rev = "1";
      narHash = "sha256-B";
    } { nixpkgs = "nixpkgs_2"; };
    nixpkgs = node (gh "NixOS" "nixpkgs" "n1") { };
    nixpkgs_2 = node (gh "NixOS" "nixpkgs" "n2") { };
  };
  rules = fs: map (f: "${f.severity} ${f.rule} ${f.subject}") fs;

  # An audit log of three events, written by lambda-check.
  line = seq: prev: body: digestless: "${digestless},\"digest\":\"sha256:${builtins.hashString "sha256" "${digestless}}"}\"}";
  ev =
    seq: prev:
    let
      d = "{\"seq\":${toString seq},\"prev\":\"${prev}\",\"time\":\"2026-11-27T12:00:00Z\",\"stage\":\"snapshot\",\"actor\":\"t\",\"inputs\":[],\"result\":\"ok\"";
    in
    {
      text = line seq prev "" d;
      digest = "sha256:" + builtins.hashString "sha256" "${d}}";
    };
  e1 = ev 1 audit.genesis;
  e2 = ev 2 e1.digest;
  e3 = ev 3 e2.digest;
  goodLog = "${e1.text}\n${e2.text}\n${e3.text}\n";

  tests = [
    {
      name = "normalizeUrl: the forms of one repository are one";
      expr = map url.normalizeUrl [
        "git@github.com:logos-co/logos-liblogos.git"
        "https://GitHub.com/logos-co/logos-liblogos/"
        "github:logos-co/logos-liblogos/main"
        "ssh://git@github.com/logos-co/logos-liblogos.git"
        "git+https://github.com/logos-co/logos-liblogos?ref=master"
      ];
      expected = [
        "github.com/logos-co/logos-liblogos"
        "github.com/logos-co/logos-liblogos"
        "github.com/logos-co/logos-liblogos"
        "github.com/logos-co/logos-liblogos"
        "github.com/logos-co/logos-liblogos"
      ];
    }
    {
      name = "normalizeUrl: local paths keep their case";
      expr = map url.normalizeUrl [ "git+file:///Srv/Remotes/a.git?ref=main" "/Srv/Remotes/a.git" ];
      expected = [ "/Srv/Remotes/a" "/Srv/Remotes/a" ];
    }
    {
      name = "parseGitmodules";
      expr = url.parseGitmodules ''
        [submodule "repos/logos-cpp-sdk"]
        	path = repos/logos-cpp-sdk
        	url = git@github.com:logos-co/logos-cpp-sdk.git
        	branch = main
        [core]
        	bare = false
        [submodule "waku"]
          path = repos/logos-waku-module
          url = https://github.com/logos-co/logos-waku-module
      '';
      expected = {
        "repos/logos-cpp-sdk" = {
          name = "repos/logos-cpp-sdk";
          path = "repos/logos-cpp-sdk";
          url = "git@github.com:logos-co/logos-cpp-sdk.git";
          branch = "main";
        };
        "repos/logos-waku-module" = {
          name = "waku";
          path = "repos/logos-waku-module";
          url = "https://github.com/logos-co/logos-waku-module";
          branch = null;
        };
      };
    }
    {
      name = "lockGraph: follows resolved, X needs Y";
      expr = lock.lockGraph sample;
      expected = {
        chat = [ "sdk" "waku" ];
        nixpkgs = [ ];
        sdk = [ "nixpkgs" ];
        waku = [ "sdk" ];
      };
    }
    {
      name = "a clean lock has no findings";
      expr = lock.lockFindings { lock = sample; };
      expected = [ ];
    }
    {
      name = "cycles are found with their members";
      expr = rules (lock.lockFindings { lock = cyclic; });
      expected = [ "deny graph-cycle inputs a b" ];
    }
    {
      name = "cycles: several, each once";
      expr = lock.cycles {
        a = [ "b" ];
        b = [ "c" "d" ];
        c = [ "a" ];
        d = [ ];
        e = [ "e" ];
      };
      expected = [ [ "a" "b" "c" ] [ "e" ] ];
    }
    {
      name = "local sources and two nixpkgs";
      expr = rules (lock.lockFindings { lock = local; });
      expected = [ "deny local-override input x" "deny local-override input y" "warn nixpkgs-follows nixpkgs" ];
    }
    {
      name = "local sources allowed, excluded inputs skipped";
      expr = rules (lock.lockFindings {
        lock = local;
        allowLocal = false;
        exclude = [ "x" "y" ];
      });
      expected = [ "warn nixpkgs-follows nixpkgs" ];
    }
    {
      name = "audit: a good chain";
      expr = audit.verifyAuditLog goodLog;
      expected = {
        ok = true;
        events = 3;
        head = e3.digest;
        problem = null;
      };
    }
    {
      name = "audit: an edited line is named";
      expr = (audit.verifyAuditLog (builtins.replaceStrings [ "\"seq\":2,\"prev\":\"${e1.digest}\",\"time\":\"2026-11-27T12:00:00Z\",\"stage\":\"snapshot\"" ] [ "\"seq\":2,\"prev\":\"${e1.digest}\",\"time\":\"2026-11-27T12:00:00Z\",\"stage\":\"snapshoT\"" ] goodLog)).problem;
      expected = {
        line = 2;
        reason = "its digest is not the digest of its content: the line was edited";
      };
    }
    {
      name = "audit: a deleted line breaks the chain";
      expr = (audit.verifyAuditLog "${e1.text}\n${e3.text}\n").problem.line;
      expected = 2;
    }
    {
      name = "audit: a torn last line";
      expr = (audit.verifyAuditLog "${e1.text}\n${e2.text}").problem.reason;
      expected = "the log ends in the middle of a line";
    }
    {
      name = "gitattributes: patterns as git matches them";
      expr = map gitattributes.globRegex [ "fixtures/**" "*.bin" "/docs/" "a/**/b" "**/x.c" ];
      expected = [ "fixtures/.*" "(.*/)?[^/]*\\.bin" "docs" "a/(.*/)?b" "(.*/)?x\\.c" ];
    }
    {
      name = "configJSON adds the schema version";
      expr = builtins.fromJSON (nixlib.configJSON {
        verify.deadline = "10s";
        schemaVersion = 7;
      });
      expected = {
        schemaVersion = 1;
        verify.deadline = "10s";
      };
    }
    {
      name = "mkProposalJobs of an absent directory is empty";
      expr = (nixlib.mkProposalJobs { proposals = "/nonexistent/proposals"; }).matrix;
      expected = [ ];
    }
    {
      name = "mkWorkspaceChecks: a check per stage, derivations";
      expr =
        let
          c = nixlib.mkWorkspaceChecks {
            src = ./testdata/workspace;
            system = "x86_64-linux";
            auditLog = builtins.toFile "audit.jsonl" goodLog;
          };
        in
        {
          names = builtins.attrNames c;
          types = map (n: c.${n}.type) (builtins.attrNames c);
          findings = builtins.fromJSON c.lambda-check-policy.findingsJSON;
        };
      expected = {
        names = [ "lambda-check-audit" "lambda-check-policy" ];
        types = [ "derivation" "derivation" ];
        findings = [
          {
            rule = "lock-drift";
            severity = "warn";
            subject = "submodule repos/logos-waku-module";
            message = "repos/logos-waku-module is not checked out in the flake's source, so its gitlink cannot be compared with flake.lock";
            hint = "check with the submodules: nix flake check '.?submodules=1'";
          }
        ];
      };
    }
    {
      name = "templates: flakes with a description";
      expr = map (t: builtins.isString (import ../templates/${t}/flake.nix).description) [ "default" "nixos" ];
      expected = [ true true ];
    }
    {
      name = "templates: the workspace template's checks evaluate with nixlib";
      expr =
        let
          outputs = (import ../templates/default/flake.nix).outputs {
            self = ./testdata/workspace;
            lambda-check = {
              lib = nixlib;
              packages.x86_64-linux.default = "lambda-check";
              packages.aarch64-linux.default = "lambda-check";
            };
          };
        in
        map (c: c.type) (builtins.attrValues outputs.checks.x86_64-linux);
      expected = [ "derivation" ];
    }
  ];
  failures = builtins.filter (t: t.expr != t.expected) tests;
in
map (t: {
  inherit (t) name expr expected;
}) failures
