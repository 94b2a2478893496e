{
  description = "A NixOS host running the lambda-check cycle on a timer";

  inputs = {
    lambda-check.url = "github:lambda-os/lambda-check";
    nixpkgs.follows = "lambda-check/nixpkgs";
  };

  outputs =
    { nixpkgs, lambda-check, ... }:
    {
      nixosConfigurations.logos-node = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [
          lambda-check.nixosModules.default
          ./configuration.nix
        ];
      };
    };
}
