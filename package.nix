# lambda-check as a Nix package (nixpkgs' buildGoModule). Used by flake.nix,
# default.nix and the overlay; vendorHash is kept current by
# scripts/update-vendor-hash (a test fails when it is stale).
{
  lib,
  buildGoModule,
  makeWrapper,
  git,
  version ? "0.1.0-dev",
}:

buildGoModule {
  pname = "lambda-check";
  inherit version;

  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./go.mod
      ./go.sum
      ./cmd
      ./internal
    ];
  };

  vendorHash = "sha256-XuaaGppgYQqbTcOgdQ5p0XT+8+tYrPDd2JlaNO4KKmo=";

  subPackages = [ "cmd/lambda-check" ];
  env.CGO_ENABLED = 0;
  ldflags = [
    "-s"
    "-w"
    "-X github.com/lambda-os/lambda-check/internal/cli.version=${version}"
  ];

  nativeBuildInputs = [ makeWrapper ];
  # The tests run in the flake's checks (they need git, nix and the
  # generated workspaces), not in every build of the package.
  doCheck = false;

  # git for the stages that shell out to it (upgrades over ssh and
  # http(s) use the git protocol in-process; a program decider or a build
  # command may not).
  postInstall = ''
    wrapProgram $out/bin/lambda-check --suffix PATH : ${lib.makeBinPath [ git ]}
  '';

  meta = {
    description = "Control plane for a Logos node's workspace: snapshot, verify, heal, policy, upgrades, proposals, governance, audit";
    homepage = "https://github.com/lambda-os/lambda-check";
    mainProgram = "lambda-check";
    platforms = lib.platforms.linux;
  };
}
