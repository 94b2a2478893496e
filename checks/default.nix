# The project's own flake checks (nix flake check on the lambda-check
# repository, Hydra's checks jobs, the GitHub workflow).
{
  pkgs,
  self,
  nixpkgs,
}:
let
  inherit (pkgs) lib;
  system = pkgs.stdenv.hostPlatform.system;
  package = self.packages.${system}.default;

  # A NixOS configuration with the module, for the unit files.
  nixos = nixpkgs.lib.nixosSystem {
    inherit system;
    modules = [
      self.nixosModules.default
      {
        boot.loader.grub.enable = false;
        fileSystems."/".device = "/dev/null";
        system.stateVersion = "25.05";
        services.lambda-check = {
          enable = true;
          workspace = "/srv/logos-workspace";
          credentials.telegram-token = "/run/secrets/telegram-token";
          settings = {
            verify.deadline = "10s";
            notify.channels = [
              {
                name = "ops";
                type = "telegram";
                chatId = "-1001";
                tokenFile = "/run/credentials/lambda-check.service/telegram-token";
              }
            ];
          };
        };
      }
    ];
  };
  units = nixos.config.systemd.units;
in
{
  package = package;

  # The Go test suite (unit, end-to-end scripts, fuzz seeds), go vet and
  # gofmt, from the vendored modules. Tests that need nix, chromium or a
  # D-Bus daemon skip inside the sandbox (CI=true is not set here); the
  # GitHub workflow runs them with .ci/run.
  go-test = package.overrideAttrs (old: {
    pname = "lambda-check-tests";
    doCheck = true;
    nativeCheckInputs = [
      pkgs.git
      pkgs.util-linux
    ];
    checkPhase = ''
      runHook preCheck
      export HOME=$TMPDIR
      unformatted=$(gofmt -l cmd internal)
      if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
      go vet ./...
      go test -count=1 ./...
      runHook postCheck
    '';
  });

  # nixlib's { expr; expected; } tests, with a store of their own.
  nixlib = pkgs.runCommand "lambda-check-nixlib-tests" { nativeBuildInputs = [ pkgs.nix ]; } ''
    export TEST_ROOT=$(pwd)/test-tmp
    export NIX_CONF_DIR=$TEST_ROOT/etc NIX_LOCALSTATE_DIR=$TEST_ROOT/var NIX_LOG_DIR=$TEST_ROOT/var/log/nix
    export NIX_STATE_DIR=$TEST_ROOT/var/nix NIX_STORE_DIR=$TEST_ROOT/store PAGER=cat
    mkdir -p $NIX_CONF_DIR
    nix-store --init
    result=$(nix-instantiate --eval --strict --json ${../nixlib}/tests.nix)
    if [ "$result" != "[]" ]; then
      echo "failing nixlib tests: $result"
      exit 1
    fi
    echo "$result" > $out
  '';

  # The module evaluates, its assertions hold, and the units say what the
  # documentation says.
  module = pkgs.runCommand "lambda-check-module" { } ''
    service=${units."lambda-check.service".unit}/lambda-check.service
    timer=${units."lambda-check.timer".unit}/lambda-check.timer
    for want in "ProtectSystem=strict" "NoNewPrivileges=true" "CapabilityBoundingSet=" \
        "ReadWritePaths=/srv/logos-workspace" "StateDirectory=lambda-check" "SuccessExitStatus=3" \
        "LoadCredential=telegram-token:/run/secrets/telegram-token" "User=lambda-check" "Type=oneshot"; do
      grep -qF "$want" "$service" || { echo "lambda-check.service lacks $want"; cat "$service"; exit 1; }
    done
    grep -qF "OnUnitActiveSec=5min" "$timer" || { echo "timer:"; cat "$timer"; exit 1; }
    ${lib.getExe package} config check "$(sed -n 's/^Environment="LAMBDA_CHECK_CONFIG=\(.*\)"$/\1/p' "$service")"
    touch $out
  '';

  # docs/nixos-options.md is what nixos/options.nix generates.
  options-doc =
    let
      doc = pkgs.writeText "nixos-options.md" (import ../nixos/options-doc.nix { inherit lib; });
    in
    pkgs.runCommand "lambda-check-options-doc" { } ''
      if ! diff -u ${../docs/nixos-options.md} ${doc}; then
        echo "docs/nixos-options.md is stale: run scripts/update-options-doc"
        exit 1
      fi
      touch $out
    '';

  # The templates, evaluated for real: the workspace template's checks
  # against a sample workspace, and the NixOS template's whole system (its
  # toplevel derivation is instantiated, so every option it sets must
  # type-check). Building this derivation needs only the evaluation.
  templates =
    let
      workspace = (import ../templates/default/flake.nix).outputs {
        self = ../nixlib/testdata/workspace;
        lambda-check = self;
      };
      node = (import ../templates/nixos/flake.nix).outputs {
        inherit nixpkgs;
        lambda-check = self;
      };
    in
    pkgs.runCommand "lambda-check-templates"
      {
        workspaceChecks = lib.concatMapStringsSep " " (c: c.drvPath) (builtins.attrValues (workspace.checks.${system} or { }));
        nodeSystem = node.nixosConfigurations.logos-node.config.system.build.toplevel.drvPath;
      }
      ''
        echo "workspace template checks: $workspaceChecks" > $out
        echo "NixOS template system: $nodeSystem" >> $out
      '';

  # The timer runs the cycle on a generated workspace, as its own user,
  # and the cycle's health and audit chain come out.
  vm = pkgs.testers.runNixOSTest {
    name = "lambda-check-timer";
    nodes.machine =
      { pkgs, ... }:
      {
        imports = [ self.nixosModules.default ];
        environment.systemPackages = [ pkgs.git ];
        services.lambda-check = {
          enable = true;
          workspace = "/srv/demo/workspace";
          interval = "20s";
          timerConfig = {
            OnActiveSec = "5s";
            OnUnitActiveSec = "20s";
          };
          settings.cycle.offline = false;
        };
        # The demo's workspace, owned by the service's user.
        systemd.services.lambda-check-demo = {
          wantedBy = [ "multi-user.target" ];
          before = [ "lambda-check.service" ];
          path = [ pkgs.git ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            if [ ! -d /srv/demo ]; then
              mkdir -p /srv
              HOME=/root ${lib.getExe package} demo --dir /srv/demo --modules 3 --state-dir /tmp/demo-state >/dev/null
              chown -R lambda-check:lambda-check /srv/demo
            fi
          '';
        };
      };
    testScript = ''
      machine.wait_for_unit("multi-user.target")
      machine.wait_for_unit("lambda-check-demo.service")
      machine.wait_until_succeeds("test -f /var/lib/lambda-check/cycle.json", timeout=120)
      machine.succeed("systemctl start lambda-check.service")
      out = machine.succeed("sudo -u lambda-check lambda-check --state-dir /var/lib/lambda-check -w /srv/demo/workspace audit verify")
      assert "verifies" in out, out
      report = machine.succeed("sudo -u lambda-check lambda-check --state-dir /var/lib/lambda-check -w /srv/demo/workspace report")
      assert "cycles recorded" in report, report
      machine.succeed("test $(stat -c %U /var/lib/lambda-check/cycle.json) = lambda-check")
      # Least privilege as configured, and the workspace stayed clean.
      props = machine.succeed("systemctl show lambda-check.service -p ProtectSystem -p NoNewPrivileges -p User")
      assert "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props and "User=lambda-check" in props, props
      machine.succeed("test -z \"$(sudo -u lambda-check git -C /srv/demo/workspace status --porcelain)\"")
    '';
  };
}
