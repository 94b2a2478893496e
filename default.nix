# For users without flakes:
#   nix-build                      the lambda-check package
#   (import ./. { }).lib           the Nix library (nixlib/)
#   (import ./. { }).nixosModule   the NixOS module (imports = [ ... ])
{
  pkgs ? import <nixpkgs> { },
  version ? "0.1.0-dev",
}:
let
  package = pkgs.callPackage ./package.nix { inherit version; };
in
package
// {
  lib = import ./nixlib { inherit (pkgs) lib; };
  nixosModule = import ./nixos/module.nix { };
}
