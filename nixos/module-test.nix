# Evaluates the NixOS module with nixpkgs' lib alone (the NixOS options
# it sets are stubbed) and returns what each case should show; run by
# scripts/check-module. Not part of any build.
{ lib }:
let
  anything = lib.mkOption {
    type = lib.types.anything;
    default = { };
  };
  stubs = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      users = anything;
      environment = anything;
      systemd = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      services.prometheus = anything;
      nix = anything;
    };
  };
  package = {
    type = "derivation";
    name = "lambda-check";
    outPath = "/nix/store/00000000000000000000000000000000-lambda-check";
    meta.mainProgram = "lambda-check";
  };
  pkgs = {
    stdenv.hostPlatform.system = "x86_64-linux";
    runCommand = name: _: _: "/nix/store/00000000000000000000000000000000-${name}";
    writeShellScriptBin = name: text: { inherit name text; };
    buildPackages = { };
    git = "git";
    lambda-check = package;
  };
  eval =
    settings: extra:
    (lib.evalModules {
      specialArgs = { inherit pkgs; };
      modules = [
        stubs
        (import ./module.nix { })
        {
          config.services.lambda-check = {
            enable = true;
            workspace = "/srv/logos-workspace";
            inherit settings;
          }
          // extra;
          config.nix.package = "nix";
        }
      ];
    }).config;
  failed = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  secretAsPath = failed (eval { heal.key = ./module.nix; } { });
  secretInStore = failed (eval { audit.checkpointKey = "/nix/store/abc-checkpoint.key"; } { });
  fine = eval {
    heal.key = "/run/credentials/lambda-check.service/healer";
  } {
    metrics.enable = true;
    dashboard.enable = true;
  };
  unit = fine.systemd.services.lambda-check.serviceConfig;
in
{
  secretAsPathRefused = builtins.length secretAsPath == 1 && lib.hasInfix "heal.key" (builtins.head secretAsPath);
  secretInStoreRefused = builtins.length secretInStore == 1 && lib.hasInfix "audit.checkpointKey" (builtins.head secretInStore);
  fineAccepted = failed fine == [ ];
  namespaces = unit.RestrictNamespaces == [ "user" "pid" ];
  metricsWired = fine.services.prometheus.exporters.node.enabledCollectors == [ "textfile" ];
  dashboardWritable = builtins.elem "/var/lib/lambda-check-www" unit.ReadWritePaths;
  timerFromEnd = fine.systemd.timers.lambda-check.timerConfig ? OnUnitInactiveSec;
}
