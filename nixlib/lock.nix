# flake.lock as data: its nodes, the graph of "X needs Y" with follows
# resolved, dependency cycles, and the findings that need nothing but the
# lock file.
{ url }:
let
  inherit (builtins)
    attrNames
    elem
    filter
    foldl'
    genericClosure
    isString
    length
    listToAttrs
    map
    sort
    ;

  # resolve lock path: the node an input reference names. A reference is
  # a node name, or a follows path from the root.
  resolve =
    lock: ref:
    if isString ref then
      ref
    else if ref == [ ] then
      lock.root
    else
      foldl' (
        node: seg:
        if node == null then
          null
        else
          let
            r = (lock.nodes.${node}.inputs or { }).${seg} or null;
          in
          if r == null then null else resolve lock r
      ) lock.root ref;

  # lockGraph lock: { <node> = [ <node it needs> ... ]; } for every node
  # but the root, follows resolved, sorted.
  lockGraph =
    lock:
    listToAttrs (
      map (n: {
        name = n;
        value = sort (a: b: a < b) (
          filter (x: x != null && x != lock.root) (
            map (i: resolve lock lock.nodes.${n}.inputs.${i}) (attrNames (lock.nodes.${n}.inputs or { }))
          )
        );
      }) (filter (n: n != lock.root) (attrNames lock.nodes))
    );

  reach =
    graph: n:
    map (x: x.key) (genericClosure {
      startSet = map (c: { key = c; }) (graph.${n} or [ ]);
      operator = x: map (c: { key = c; }) (graph.${x.key} or [ ]);
    });

  # cycles graph: each dependency cycle once, as its sorted members.
  cycles =
    graph:
    let
      reaches = listToAttrs (
        map (n: {
          name = n;
          value = reach graph n;
        }) (attrNames graph)
      );
      onCycle = filter (n: elem n reaches.${n}) (attrNames graph);
      members = n: sort (a: b: a < b) (filter (m: elem m reaches.${n} && elem n reaches.${m}) onCycle);
      all = map members onCycle;
    in
    foldl' (acc: c: if elem c acc then acc else acc ++ [ c ]) [ ] all;

  # sourceOf node: where a locked node comes from, in normalizeUrl's form;
  # local sources start with "path:".
  sourceOf =
    node:
    let
      l = node.locked or { };
      t = l.type or "";
    in
    if t == "github" then
      "github.com/${l.owner}/${l.repo}"
    else if t == "gitlab" then
      "gitlab.com/${l.owner}/${l.repo}"
    else if t == "sourcehut" then
      "git.sr.ht/${l.owner}/${l.repo}"
    else if t == "path" then
      "path:${l.path}"
    else if l ? url then
      url.normalizeUrl l.url
    else
      "";

  isLocal =
    node:
    let
      l = node.locked or { };
    in
    (l.type or "") == "path" || ((l.type or "") == "git" && (url.hasPrefix "file:" l.url || url.hasPrefix "/" l.url));

  isNixpkgs =
    node:
    let
      l = node.locked or { };
    in
    (l.type or "") == "github" && l.owner == "NixOS" && l.repo == "nixpkgs";

  finding = rule: severity: subject: message: hint: {
    inherit rule severity subject message hint;
  };

  # lockFindings { lock; allowLocal ? false; exclude ? [ ]; }: what the lock
  # alone shows. Root inputs named in exclude (and nodes only they reach
  # are still checked for cycles) are not judged as sources.
  lockFindings =
    {
      lock,
      allowLocal ? false,
      exclude ? [ ],
    }:
    let
      rootInputs = filter (n: !(elem n exclude)) (attrNames (lock.nodes.${lock.root}.inputs or { }));
      nodeOf = n: resolve lock lock.nodes.${lock.root}.inputs.${n};
      local = filter (n: nodeOf n != null && isLocal lock.nodes.${nodeOf n}) rootInputs;
      graph = lockGraph lock;
      nixpkgs = filter (n: isNixpkgs lock.nodes.${n}) (attrNames graph);
      revs = foldl' (acc: n: if elem lock.nodes.${n}.locked.rev acc then acc else acc ++ [ lock.nodes.${n}.locked.rev ]) [ ] nixpkgs;
    in
    (
      if allowLocal then
        [ ]
      else
        map (
          n:
          finding "local-override" "deny" "input ${n}"
            "flake.lock locks input ${n} to a local source (${sourceOf lock.nodes.${nodeOf n}}): it builds from this machine's files, not from the repository"
            "lock it to its repository (nix flake lock --update-input ${n}); use --override-input for local builds"
        ) local
    )
    ++ map (
      c:
      finding "graph-cycle" "deny" "inputs ${toString c}"
        "flake.lock has a dependency cycle: ${toString c}"
        "break it with a follows in flake.nix"
    ) (cycles graph)
    ++ (
      if length revs > 1 then
        [
          (finding "nixpkgs-follows" "warn" "nixpkgs"
            "flake.lock holds ${toString (length revs)} different nixpkgs revisions (${toString (length nixpkgs)} nodes)"
            "make inputs follow one nixpkgs (inputs.<x>.inputs.nixpkgs.follows = \"nixpkgs\")"
          )
        ]
      else
        [ ]
    );
in
{
  inherit
    resolve
    lockGraph
    cycles
    sourceOf
    isLocal
    lockFindings
    finding
    ;
}
