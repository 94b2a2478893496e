# lambda-check's configuration file from Nix attributes.
let
  inherit (builtins) toJSON removeAttrs;

  # configJSON settings: the configuration as JSON text, schemaVersion 1
  # added. Keys are the tool's (docs/artifacts.md); unknown keys are
  # refused by the binary, not here.
  configJSON = settings: toJSON ({ schemaVersion = 1; } // removeAttrs settings [ "schemaVersion" ]);

  # mkConfig { settings; lambda-check ? null; system ? null; }: the config
  # file. With the lambda-check package (and its system), a derivation that
  # writes the file and has the binary check it (strict decoding: a
  # misspelt key fails the build, naming it); without, a plain store file.
  mkConfig =
    {
      settings,
      lambda-check ? null,
      system ? null,
      name ? "lambda-check-config.json",
    }:
    if lambda-check == null then
      builtins.toFile name (configJSON settings)
    else
      derivation {
        inherit name;
        system = if system != null then system else lambda-check.system;
        builder = "/bin/sh";
        config = configJSON settings;
        passAsFile = [ "config" ];
        bin = if builtins.isPath lambda-check || builtins.isString lambda-check then "${lambda-check}" else "${lambda-check}/bin/lambda-check";
        args = [
          "-c"
          ''
            "$bin" config check --skip-files "$configPath" || exit 1
            while IFS= read -r line || [ -n "$line" ]; do echo "$line"; done < "$configPath" > "$out"
          ''
        ];
      };
in
{
  inherit configJSON mkConfig;
}
