# services.lambda-check: the options (the implementation is module.nix).
# Only nixpkgs' lib is needed here, so the options can be evaluated and
# documented without a package set (nixos/options-doc.nix).
{ lib, ... }:
let
  inherit (lib) mkOption mkEnableOption types literalExpression;

  # A JSON value, as pkgs.formats.json's type (without needing pkgs).
  json =
    let
      valueType =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          description = "JSON value";
        };
    in
    valueType;
in
{
  options.services.lambda-check = {
    enable = mkEnableOption "lambda-check, the control plane of a Logos workspace: a cycle (snapshot, verify, heal, policy, upgrades, plan, propose, governance, audit, notify) on a systemd timer";

    package = mkOption {
      type = types.package;
      defaultText = literalExpression "pkgs.lambda-check or lambda-check.packages.\${system}.default";
      description = "The lambda-check package.";
    };

    validationPackage = mkOption {
      type = types.package;
      defaultText = literalExpression "pkgs.buildPackages.lambda-check or config.services.lambda-check.package";
      description = ''
        The lambda-check that checks the configuration while the system is
        built (`config check`): it runs on the build machine, so for a cross
        build it must be the build platform's package.
      '';
    };

    workspace = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/srv/logos-workspace";
      description = ''
        The logos-workspace checkout (the superproject's work tree) the
        service keeps healthy. It must belong to {option}`services.lambda-check.user`
        (or be group-writable for {option}`services.lambda-check.group`): applying an
        approved proposal or a rollback commits to it. The service can write
        there and in its state directory, nowhere else.
      '';
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/lambda-check";
      example = "/var/lib/lambda-check/logos";
      description = ''
        Where artifacts, the audit log, the lock and the proposals live. It
        must be under /var/lib: systemd creates it (StateDirectory) owned by
        the service's user.
      '';
    };

    settings = mkOption {
      type = types.submodule { freeformType = types.attrsOf json; };
      default = { };
      example = literalExpression ''
        {
          keys = "/etc/lambda-check/keys.json";
          verify = { modulesDir = "/srv/logos-workspace/result/modules"; deadline = "10s"; };
          heal = { autoApply = true; key = "/run/credentials/lambda-check.service/healer-key"; };
          notify.channels = [ {
            name = "ops"; type = "telegram"; chatId = "-1001234567890";
            tokenFile = "/run/credentials/lambda-check.service/telegram-token";
          } ];
        }
      '';
      description = ''
        lambda-check's configuration (docs/artifacts.md lists the keys),
        written as JSON with `schemaVersion = 1` added and checked by the
        binary at build time, so a misspelt key fails the system build. Use
        absolute paths. Never put a secret here (it would land in the
        world-readable Nix store): name a file, for instance a credential
        from {option}`services.lambda-check.credentials`.
      '';
    };

    interval = mkOption {
      type = types.str;
      default = "5min";
      example = "15min";
      description = ''
        Time from the end of one cycle to the start of the next
        (the timer's OnUnitInactiveSec; the first cycle runs 2 minutes
        after boot), plus up to 30 s of randomized delay. Ignored when
        {option}`services.lambda-check.timerConfig` is set.
      '';
    };

    timerConfig = mkOption {
      type = types.nullOr (types.attrsOf (types.oneOf [ types.str types.bool types.int ]));
      default = null;
      example = literalExpression ''
        { OnCalendar = "*:0/10"; Persistent = true; RandomizedDelaySec = "1min"; }
      '';
      description = ''
        The timer's [Timer] section, replacing the default
        `{ OnBootSec = "2min"; OnUnitInactiveSec = interval; RandomizedDelaySec = "30s"; }`.
        With OnCalendar, `Persistent = true` runs a cycle missed while the
        machine was off.
      '';
    };

    user = mkOption {
      type = types.str;
      default = "lambda-check";
      description = "The user the cycle runs as (created when left at the default). Never root.";
    };

    group = mkOption {
      type = types.str;
      default = "lambda-check";
      description = "The group the cycle runs as (created when left at the default).";
    };

    credentials = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = literalExpression ''
        { telegram-token = "/run/secrets/lambda-check/telegram-token"; healer-key = "/run/secrets/lambda-check/healer.key"; }
      '';
      description = ''
        Secret files handed to the service with systemd's LoadCredential:
        each is readable by the cycle only, as
        `/run/credentials/lambda-check.service/<name>`; name that path in
        {option}`services.lambda-check.settings` (tokenFile, secretFile,
        heal.key). The files themselves must not be in the Nix store (sops-nix
        or agenix secrets, for instance).
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/lambda-check.env";
      description = ''
        An EnvironmentFile for the service: `LAMBDA_CHECK_<FLAG>=...` lines
        set flags (for example `LAMBDA_CHECK_LOCK_TIMEOUT=2m`).
      '';
    };

    findingsAreFailures = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether exit 3 (the cycle ran; the node is degraded or its health
        unknown) marks the unit failed. By default it counts as success
        (SuccessExitStatus=3): the health is in cycle.json, the report and
        the notifications, and the unit fails only when a stage broke
        (exit 1) or the configuration is bad (82). A round that finds the
        state directory busy (75) is always skipped, not failed.
      '';
    };

    readWritePaths = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/srv/logos-workspace-modules" ];
      description = ''
        More paths the cycle may write (ProtectSystem=strict leaves it the
        workspace and the state directory only), for instance where
        verify.build writes the modules.
      '';
    };

    dashboard = {
      enable = mkEnableOption ''
        the HTML report as a dashboard: every cycle rewrites
        `index.html` in a directory a web server can read (the state
        directory is 0750, so the report must not live there)'';
      directory = mkOption {
        type = types.str;
        default = "/var/lib/lambda-check-www";
        example = literalExpression ''
          # served by nginx:
          # services.nginx.virtualHosts."node.example".locations."/lambda-check/".alias = "/var/lib/lambda-check-www/";
          "/var/lib/lambda-check-www"'';
        description = ''
          Where the cycle writes `index.html` (settings.cycle.reportHtml);
          created 0755, owned by the service's user.
        '';
      };
    };

    metrics = {
      enable = mkEnableOption ''
        metrics for Prometheus: each cycle writes its health, per-stage status
        and duration, modules failing, proposals pending, audit verification
        and last cycle time to a file that node_exporter's textfile collector
        serves (this enables services.prometheus.exporters.node with that
        collector)'';
      directory = mkOption {
        type = types.str;
        default = "/var/lib/lambda-check-metrics";
        description = ''
          The textfile collector's directory; the cycle writes
          `lambda-check.prom` there (settings.cycle.metricsFile).
        '';
      };
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--offline" ];
      description = "Arguments added to `lambda-check cycle`.";
    };
  };
}
