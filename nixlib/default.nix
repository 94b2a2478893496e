# lambda-check's Nix library: pure functions (builtins only) for workspace
# flakes, CI and Hydra. `lib` (nixpkgs' lib) is accepted for callers that
# have it and never required.
#
#   lambda-check.lib.mkWorkspaceChecks { src = self; inherit inputs; system = "x86_64-linux"; }
#   lambda-check.lib.mkProposalJobs { proposals = ./.lambda-check/proposals; }
#   lambda-check.lib.mkConfig { settings = { verify.deadline = "10s"; }; }
#
# Everything here is documented in docs/nix.md; tests are in ./tests.nix
# (nix-instantiate --eval --strict nixlib/tests.nix).
{
  lib ? null,
}:
let
  url = import ./url.nix;
  lock = import ./lock.nix { inherit url; };
  audit = import ./audit.nix;
  gitattributes = import ./gitattributes.nix;
  checks = import ./checks.nix {
    inherit
      url
      lock
      audit
      gitattributes
      ;
  };
  proposals = import ./proposals.nix;
  config = import ./config.nix;
in
{
  inherit (checks) mkWorkspaceChecks workspaceFindings;
  inherit (proposals) mkProposalJobs;
  inherit (config) mkConfig configJSON;
  inherit (lock) lockFindings lockGraph cycles;
  inherit (audit) verifyAuditLog;
  inherit (url) normalizeUrl parseGitmodules;
}
