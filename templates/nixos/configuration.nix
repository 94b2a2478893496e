# The lambda-check part of a Logos node's configuration. Merge it into your
# host's configuration (hardware, boot and users are yours).
{ ... }:
{
  services.lambda-check = {
    enable = true;
    # The logos-workspace checkout, owned by the lambda-check user:
    #   sudo -u lambda-check git clone --recurse-submodules \
    #     https://github.com/logos-co/logos-workspace /srv/logos-workspace
    workspace = "/srv/logos-workspace";
    interval = "10min";

    # Secrets as systemd credentials, never in the Nix store (here from
    # sops-nix or agenix: any file readable by root).
    credentials = {
      telegram-token = "/run/secrets/lambda-check/telegram-token";
    };

    # The HTML report, rewritten by every cycle in /var/lib/lambda-check-www
    # (readable by a web server, unlike the state directory), and the
    # metrics for Prometheus through node_exporter's textfile collector.
    dashboard.enable = true;
    metrics.enable = true;

    settings = {
      # verify: the modules the workspace builds, loaded by the real host.
      verify = {
        modulesDir = "/srv/logos-workspace/result/modules";
        deadline = "10s";
      };
      upgrades.insteadOf = {
        "git@github.com:" = "https://github.com/";
      };
      notify = {
        digest = "24h";
        channels = [
          {
            name = "ops";
            type = "telegram";
            chatId = "-1001234567890";
            tokenFile = "/run/credentials/lambda-check.service/telegram-token";
          }
        ];
      };
    };
  };

  # Placeholders so the template evaluates on its own; replace with yours.
  boot.loader.grub.device = "nodev";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.05";
}
