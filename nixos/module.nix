# services.lambda-check: the cycle as a oneshot service on a timer,
# least-privileged. Used as lambda-check.nixosModules.default (flake.nix
# applies { self } to it).
{ self ? null }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.lambda-check;
  inherit (lib)
    mkIf
    mkDefault
    hasPrefix
    removePrefix
    attrValues
    mapAttrsToList
    optional
    optionals
    escapeShellArgs
    ;
  system = pkgs.stdenv.hostPlatform.system;

  metricsFile = "${cfg.metrics.directory}/lambda-check.prom";
  settings =
    removeAttrs cfg.settings [ "schemaVersion" ]
    // {
      schemaVersion = 1;
    }
    // {
      cycle =
        (cfg.settings.cycle or { })
        // lib.optionalAttrs cfg.metrics.enable { inherit metricsFile; }
        // lib.optionalAttrs cfg.dashboard.enable { reportHtml = "${cfg.dashboard.directory}/index.html"; };
    };
  # The configuration, checked by the binary: a misspelt key or a bad value
  # fails the build, not the first cycle.
  configFile =
    pkgs.runCommand "lambda-check-config.json"
      {
        nativeBuildInputs = [ cfg.validationPackage ];
        value = builtins.toJSON settings;
        passAsFile = [ "value" ];
      }
      ''
        cp "$valuePath" "$out"
        lambda-check config check --skip-files "$out"
      '';

  channels = cfg.settings.notify.channels or [ ];
  inlineSecrets = builtins.filter (c: c ? token || c ? secret || c ? botToken) channels;
  # Every setting that names a secret's file: one in the Nix store (a path
  # literal such as ./token is copied there) is world-readable.
  secretSettings =
    (map (c: {
      name = "notify.channels.${c.name or "?"}.tokenFile";
      value = c.tokenFile or null;
    }) channels)
    ++ (map (c: {
      name = "notify.channels.${c.name or "?"}.secretFile";
      value = c.secretFile or null;
    }) channels)
    ++ [
      {
        name = "heal.key";
        value = cfg.settings.heal.key or null;
      }
      {
        name = "audit.checkpointKey";
        value = cfg.settings.audit.checkpointKey or null;
      }
    ];
  inStore = v: v != null && (builtins.isPath v || hasPrefix builtins.storeDir (toString v));
  storedSecrets = map (s: s.name) (builtins.filter (s: inStore s.value) secretSettings);
  bwrap = cfg.settings.verify.bwrap or false;
  underHome = hasPrefix "/home/" (toString cfg.workspace) || hasPrefix "/root/" (toString cfg.workspace);
in
{
  imports = [ ./options.nix ];

  config = mkIf cfg.enable {
    services.lambda-check.package = mkDefault (
      pkgs.lambda-check or (if self != null then self.packages.${system}.default else null)
    );
    services.lambda-check.validationPackage = mkDefault (pkgs.buildPackages.lambda-check or cfg.package);

    assertions = [
      {
        assertion = cfg.workspace != null;
        message = "services.lambda-check.workspace must be set: the path of the logos-workspace checkout the service keeps healthy, e.g. \"/srv/logos-workspace\".";
      }
      {
        assertion = hasPrefix "/var/lib/" cfg.stateDir;
        message = "services.lambda-check.stateDir (${cfg.stateDir}) must be under /var/lib, where systemd creates it for the service (StateDirectory).";
      }
      {
        assertion = cfg.user != "root";
        message = "services.lambda-check.user must not be root: the cycle needs to write only the workspace and its state directory.";
      }
      {
        assertion = inlineSecrets == [ ];
        message = "services.lambda-check.settings.notify.channels: a secret is written inline (token, secret or botToken); it would be world-readable in the Nix store. Use tokenFile / secretFile with a credential: services.lambda-check.credentials.<name> and \"/run/credentials/lambda-check.service/<name>\".";
      }
      {
        assertion = storedSecrets == [ ];
        message = "services.lambda-check.settings: ${lib.concatStringsSep ", " storedSecrets} name a secret in the Nix store (a path literal like ./healer.key is copied there), which every user can read. Give a string path outside the store, e.g. a credential: services.lambda-check.credentials.<name> = \"/run/secrets/<name>\" and \"/run/credentials/lambda-check.service/<name>\".";
      }
      {
        assertion = builtins.all (p: !(hasPrefix builtins.storeDir (toString p))) (attrValues cfg.credentials);
        message = "services.lambda-check.credentials: a credential file is in the Nix store, which every user can read. Point to a secret outside it (/run/secrets/...).";
      }
      {
        assertion = cfg.package != null;
        message = "services.lambda-check.package is not set and no lambda-check package is known for ${system}: add lambda-check's overlay, or set the package.";
      }
    ];

    users.users = mkIf (cfg.user == "lambda-check") {
      lambda-check = {
        isSystemUser = true;
        group = cfg.group;
        home = cfg.stateDir;
        description = "lambda-check, the control plane of a Logos workspace";
      };
    };
    users.groups = mkIf (cfg.group == "lambda-check") { lambda-check = { }; };

    # lambda-check for the operator: the service's workspace, state
    # directory and configuration preset (each overridable by its flag or
    # environment variable), so `sudo -u lambda-check lambda-check status`
    # reads what the timer writes.
    environment.systemPackages = [
      (pkgs.writeShellScriptBin "lambda-check" ''
        export LAMBDA_CHECK_WORKSPACE="''${LAMBDA_CHECK_WORKSPACE:-${toString cfg.workspace}}"
        export LAMBDA_CHECK_STATE_DIR="''${LAMBDA_CHECK_STATE_DIR:-${cfg.stateDir}}"
        export LAMBDA_CHECK_CONFIG="''${LAMBDA_CHECK_CONFIG:-${configFile}}"
        exec ${lib.getExe cfg.package} "$@"
      '')
    ];

    # Metrics: the cycle writes them, node_exporter's textfile collector
    # serves them (the directory is readable by it, writable by the cycle).
    systemd.tmpfiles.rules =
      optional cfg.metrics.enable "d ${cfg.metrics.directory} 0755 ${cfg.user} ${cfg.group} - -"
      ++ optional cfg.dashboard.enable "d ${cfg.dashboard.directory} 0755 ${cfg.user} ${cfg.group} - -";
    services.prometheus.exporters.node = mkIf cfg.metrics.enable {
      enable = mkDefault true;
      enabledCollectors = [ "textfile" ];
      extraFlags = [ "--collector.textfile.directory=${cfg.metrics.directory}" ];
    };

    systemd.services.lambda-check = {
      description = "lambda-check cycle on ${toString cfg.workspace}";
      documentation = [ "https://github.com/lambda-os/lambda-check/blob/main/docs/cycle.md" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # git for program deciders and build commands, nix for flake inputs.
      path = [
        pkgs.git
        config.nix.package
      ];
      # A running cycle is never interrupted by a switch; the next one uses
      # the new unit.
      restartIfChanged = false;
      environment = {
        LAMBDA_CHECK_WORKSPACE = toString cfg.workspace;
        LAMBDA_CHECK_STATE_DIR = cfg.stateDir;
        LAMBDA_CHECK_CONFIG = "${configFile}";
        HOME = cfg.stateDir;
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = escapeShellArgs ([ (lib.getExe cfg.package) "cycle" ] ++ cfg.extraArgs);
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0750";
        UMask = "0027";
        # 75: another lambda-check (an operator's apply) held the state
        # directory; this round is skipped and the next timer runs it.
        SuccessExitStatus = [ 75 ] ++ optionals (!cfg.findingsAreFailures) [ 3 ];
        LoadCredential = mapAttrsToList (name: path: "${name}:${toString path}") cfg.credentials;
        EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
        TimeoutStartSec = "1h";

        # Least privilege: the workspace (apply commits there), the state
        # directory (StateDirectory) and what the operator adds.
        ProtectSystem = "strict";
        ReadWritePaths = [
          (toString cfg.workspace)
        ]
        ++ cfg.readWritePaths
        ++ optional cfg.metrics.enable cfg.metrics.directory
        ++ optional cfg.dashboard.enable cfg.dashboard.directory;
        ProtectHome = if underHome then "read-only" else true;
        PrivateTmp = true;
        PrivateDevices = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        # AF_UNIX: the Logos host's token socket, D-Bus; INET: remotes,
        # Telegram, webhooks, Codex.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        # verify contains each load in a PID namespace (with a user
        # namespace, as this user is not root); verify.bwrap also makes
        # mount and network namespaces. Nothing else may be created.
        RestrictNamespaces = [
          "user"
          "pid"
        ]
        ++ optionals bwrap [
          "mnt"
          "net"
        ];
        SystemCallFilter = [ "@system-service" ];
        SystemCallArchitectures = "native";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        LockPersonality = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
      };
    };

    systemd.timers.lambda-check = {
      description = "lambda-check cycle timer";
      wantedBy = [ "timers.target" ];
      timerConfig =
        if cfg.timerConfig != null then
          cfg.timerConfig
        else
          {
            OnBootSec = "2min";
            # From the end of a cycle (the unit's deactivation), so a long
            # cycle never shortens the pause before the next.
            OnUnitInactiveSec = cfg.interval;
            RandomizedDelaySec = "30s";
          };
    };
  };
}
