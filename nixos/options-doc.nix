# docs/nixos-options.md, generated from nixos/options.nix with nixpkgs' lib
# alone (no package set): the string this evaluates to is the file.
# scripts/update-options-doc writes it; the flake's checks.options-doc
# fails when the committed file is stale.
{ lib }:
let
  eval = lib.evalModules {
    modules = [
      ./options.nix
      { _module.check = false; }
    ];
  };
  opts = builtins.filter (o: o.visible && !o.internal && lib.hasPrefix "services.lambda-check." o.name) (
    lib.optionAttrSetToDocList eval.options
  );
  text = x: if x ? _type && x._type == "literalExpression" then x.text else if x ? _type && x._type == "literalMD" then x.text else builtins.toJSON x;
  block = s: "```nix\n${lib.trim s}\n```";
  one =
    o:
    ''
      ## `${o.name}`

      ${lib.trim (o.description or "")}

      *Type:* ${o.type}
    ''
    + lib.optionalString (o ? default) "\n*Default:*\n\n${block (text o.default)}\n"
    + lib.optionalString (o ? example) "\n*Example:*\n\n${block (text o.example)}\n";
in
''
  # NixOS options: `services.lambda-check`

  Generated from `nixos/options.nix` by `scripts/update-options-doc`; the
  flake check `options-doc` fails when this file is stale. The module's
  behaviour is described in [nix.md](nix.md).

''
+ lib.concatMapStringsSep "\n" one opts
