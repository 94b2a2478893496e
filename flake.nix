{
  description = "lambda-check: the control plane of a Logos node's workspace";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # Linux only: the runtime checks use Linux process control.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = "0.1.0+" + (self.shortRev or self.dirtyShortRev or "dirty");
    in
    {
      packages = forAllSystems (pkgs: {
        lambda-check = pkgs.callPackage ./package.nix { inherit version; };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.lambda-check;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      });

      overlays.default = final: prev: {
        lambda-check = final.callPackage ./package.nix { inherit version; };
      };

      # Pure Nix functions for workspace flakes, CI and Hydra (nixlib/).
      lib = import ./nixlib { inherit lib; };

      nixosModules.default = lib.modules.importApply ./nixos/module.nix { inherit self; };
      nixosModules.lambda-check = self.nixosModules.default;

      checks = forAllSystems (pkgs: import ./checks { inherit pkgs self nixpkgs; });

      templates = {
        default = {
          path = ./templates/default;
          description = "A Logos workspace flake whose `nix flake check` enforces lambda-check's policy, gitlink ↔ flake.lock drift and the audit chain";
        };
        nixos = {
          path = ./templates/nixos;
          description = "A NixOS host running the lambda-check cycle on a timer, least-privileged, with secrets as credentials";
        };
      };

      hydraJobs = {
        inherit (self) packages;
        checks = lib.genAttrs [ "x86_64-linux" ] (system: self.checks.${system});
      };

      formatter = forAllSystems (pkgs: pkgs.nixfmt);

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.go
            pkgs.gopls
            pkgs.gotools
            pkgs.git
            pkgs.nix
            pkgs.dbus
            pkgs.chromium
            pkgs.util-linux
          ];
        };
      });
    };
}
