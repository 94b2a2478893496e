# Where a repository lives, in one comparable form, from a .gitmodules URL
# or a flake.lock node; and .gitmodules itself.
let
  inherit (builtins)
    concatLists
    elemAt
    filter
    foldl'
    head
    isString
    length
    listToAttrs
    match
    replaceStrings
    split
    stringLength
    substring
    ;

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lowerCase = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = replaceStrings upper lowerCase;

  hasPrefix = p: s: substring 0 (stringLength p) s == p;
  hasSuffix = x: s: stringLength s >= stringLength x && substring (stringLength s - stringLength x) (stringLength x) s == x;
  dropPrefix = p: s: if hasPrefix p s then substring (stringLength p) (stringLength s) s else s;
  dropSuffix = x: s: if hasSuffix x s then substring 0 (stringLength s - stringLength x) s else s;
  lines = s: filter isString (split "\n" s);
  trim =
    s:
    let
      m = match "[ \t\r]*(.*[^ \t\r])[ \t\r]*" s;
    in
    if m == null then "" else head m;

  # normalizeUrl "git@github.com:logos-co/logos-liblogos.git" == "github.com/logos-co/logos-liblogos"
  # The scheme, user, ".git", a trailing "/" and the query are dropped; the
  # host is lower case; "github:o/r" is "github.com/o/r".
  normalizeUrl =
    u:
    let
      noQuery = head (split "[?#]" u);
      noPlus = dropPrefix "git+" noQuery;
      gh = match "github:([^/]+)/([^/]+)(/.*)?" noPlus;
      scp = match "([^@/:]+@)?([^/:]+):([^/].*)" noPlus;
      noScheme = foldl' (s: p: dropPrefix p s) noPlus [ "https://" "http://" "ssh://" "git://" "file://" ];
      noUser =
        let
          m = match "[^@/]+@(.*)" noScheme;
        in
        if m == null then noScheme else head m;
      base =
        if gh != null then
          "github.com/${elemAt gh 0}/${elemAt gh 1}"
        else if scp != null && !(hasPrefix "/" noPlus) && match "[a-z]+://.*" noPlus == null then
          "${elemAt scp 1}/${elemAt scp 2}"
        else
          noUser;
      trimmed = dropSuffix ".git" (dropSuffix "/" base);
      hostPath = match "([^/]+)(/.*)?" trimmed;
    in
    if hasPrefix "/" trimmed || hostPath == null then
      trimmed
    else
      toLower (elemAt hostPath 0) + (if elemAt hostPath 1 == null then "" else elemAt hostPath 1);

  # parseGitmodules (readFile ./.gitmodules) ==
  #   { "repos/x" = { name = "repos/x"; path = "repos/x"; url = "..."; branch = null; }; }
  parseGitmodules =
    text:
    let
      step =
        acc: line:
        let
          l = trim line;
          section = match "[[]submodule \"(.*)\"[]]" l;
          kv = match "([A-Za-z]+)[ \t]*=[ \t]*(.*)" l;
        in
        if section != null then
          acc // { current = head section; modules = acc.modules ++ [ { name = head section; } ]; }
        else if kv != null && acc.current != null then
          acc
          // {
            modules =
              let
                n = length acc.modules;
                last = elemAt acc.modules (n - 1);
              in
              (if n > 1 then builtinsSublist acc.modules (n - 1) else [ ])
              ++ [ (last // { ${elemAt kv 0} = elemAt kv 1; }) ];
          }
        else if l != "" && hasPrefix "[" l then
          acc // { current = null; }
        else
          acc;
      builtinsSublist = xs: n: builtins.genList (i: elemAt xs i) n;
      parsed = foldl' step { current = null; modules = [ ]; } (lines text);
      complete = filter (m: m ? path && m ? url) parsed.modules;
    in
    listToAttrs (
      map (m: {
        name = m.path;
        value = {
          inherit (m) name path url;
          branch = m.branch or null;
        };
      }) complete
    );
in
{
  inherit normalizeUrl parseGitmodules hasPrefix;
  _internal = { inherit toLower trim lines concatLists; };
}
