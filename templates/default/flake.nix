{
  description = "A Logos workspace checked by lambda-check";

  inputs = {
    lambda-check.url = "github:lambda-os/lambda-check";
    nixpkgs.follows = "lambda-check/nixpkgs";

    # The workspace's repositories, as logos-workspace pins them; each is
    # also a submodule under repos/ (lambda-check compares the two pins).
    logos-cpp-sdk.url = "github:logos-co/logos-cpp-sdk";
    logos-liblogos.url = "github:logos-co/logos-liblogos";
    logos-liblogos.inputs.logos-cpp-sdk.follows = "logos-cpp-sdk";
  };

  outputs =
    { self, lambda-check, ... }@inputs:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
    in
    {
      # nix flake check '.?submodules=1' fails on a deny finding:
      # inputs locked to local paths, dependency cycles, a submodule whose
      # gitlink and flake.lock pin drifted apart, a tampered audit log.
      # (Without ?submodules=1 the checkouts are absent and drift is a
      # warning that says so.)
      checks = forAllSystems (
        system:
        lambda-check.lib.mkWorkspaceChecks {
          src = self;
          inherit inputs system;
          # A copy of the node's audit log committed for review, if any:
          # auditLog = ./audit/audit.jsonl;
        }
      );

      # lambda-check itself, for 'nix run .#lambda-check -- cycle'.
      packages = forAllSystems (system: {
        lambda-check = lambda-check.packages.${system}.default;
      });
    };
}
