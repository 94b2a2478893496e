# export-ignore from .gitattributes, as `git archive` (and so Nix's git
# fetcher) applies it: a checkout compared with a fetched tree must leave
# out what the fetch leaves out.
let
  inherit (builtins)
    concatStringsSep
    elem
    filter
    foldl'
    genList
    head
    isString
    length
    match
    pathExists
    readFile
    split
    stringLength
    substring
    tail
    ;

  lines = s: filter isString (split "\n" s);
  words = s: filter (w: isString w && w != "") (split "[ \t]+" s);

  # globRegex: a gitattributes pattern as a POSIX regex over a path
  # relative to the .gitattributes file's directory. A pattern without a
  # "/" matches at any depth; "**/", "/**" and "**" are git's.
  globRegex =
    pattern:
    let
      noTrail = if substring (stringLength pattern - 1) 1 pattern == "/" then substring 0 (stringLength pattern - 1) pattern else pattern;
      anchored = match ".*/.*" noTrail != null;
      p = if substring 0 1 noTrail == "/" then substring 1 (stringLength noTrail) noTrail else noTrail;
      len = stringLength p;
      at = i: n: substring i n p;
      go =
        i:
        if i >= len then
          ""
        else if at i 3 == "**/" then
          "(.*/)?" + go (i + 3)
        else if at i 3 == "/**" && i + 3 == len then
          "/.*"
        else if at i 2 == "**" then
          ".*" + go (i + 2)
        else if at i 1 == "*" then
          "[^/]*" + go (i + 1)
        else if at i 1 == "?" then
          "[^/]" + go (i + 1)
        else if elem (at i 1) [ "." "+" "(" ")" "{" "}" "^" "$" "|" "\\" ] then
          "\\" + at i 1 + go (i + 1)
        else
          at i 1 + go (i + 1);
    in
    (if anchored then "" else "(.*/)?") + go 0;

  # rules text: [ { regex; value; } ] for the export-ignore attribute.
  rules =
    text:
    filter (r: r != null) (
      map (
        l:
        let
          ws = words l;
        in
        if ws == [ ] || substring 0 1 (head ws) == "#" then
          null
        else
          let
            attrs = tail ws;
          in
          if elem "export-ignore" attrs then
            {
              regex = globRegex (head ws);
              value = true;
            }
          else if elem "-export-ignore" attrs || elem "!export-ignore" attrs then
            {
              regex = globRegex (head ws);
              value = false;
            }
          else
            null
      ) (lines text)
    );

  # exportIgnored root rel: whether the path rel (relative to root, no
  # leading "/") is export-ignored by the .gitattributes files of root and
  # of the directories above rel.
  exportIgnored =
    root: rel:
    let
      parts = filter isString (split "/" rel);
      n = length parts;
      dirs = genList (i: concatStringsSep "/" (genList (j: builtins.elemAt parts j) i)) n;
      verdict =
        state: d:
        let
          file = if d == "" then "${root}/.gitattributes" else "${root}/${d}/.gitattributes";
          relToD = if d == "" then rel else substring (stringLength d + 1) (stringLength rel) rel;
        in
        if pathExists file then
          foldl' (s: r: if match r.regex relToD != null then r.value else s) state (rules (readFile file))
        else
          state;
    in
    foldl' verdict false dirs;

  # exportFilter root: a builtins.path filter leaving out what git archive
  # leaves out of the tree at root.
  exportFilter =
    root: path: type:
    let
      r = toString root;
      rel = substring (stringLength r + 1) (stringLength path) path;
    in
    !(exportIgnored r rel);
in
{
  inherit globRegex exportIgnored exportFilter;
}
