# A proposals directory (lambda-check propose's output) as CI and Hydra jobs.
let
  inherit (builtins)
    attrNames
    filter
    fromJSON
    listToAttrs
    map
    match
    pathExists
    readDir
    readFile
    toString
    ;

  getFlake =
    builtins.getFlake or (_: throw "mkProposalJobs: hydraJobs needs builtins.getFlake (experimental-features = flakes)");

  # The id pattern of 'lambda-check propose' (no path characters).
  validId = id: match "[a-z0-9][a-z0-9-]{0,127}" id != null;

  # mkProposalJobs { proposals; flakeRef ? (dir: "path:" + dir); }:
  #   { jobs.<id> = { id; kind; submodule; input; from; to; commits; flake; build; };
  #     matrix = [ { id; flake; build; } ... ];   # a CI matrix (GitHub Actions include)
  #     hydraJobs.<id> = <the proposal flake's hydraJobs>; }
  # proposals is the directory (a path or a string). Directories whose name
  # is not a proposal id, or that hold no proposal.json, are left out.
  # hydraJobs evaluates each proposal's flake with builtins.getFlake, which
  # needs --impure (or Hydra's non-restricted evaluation) for a local
  # directory; jobs and matrix are pure.
  mkProposalJobs =
    {
      proposals,
      flakeRef ? (dir: "path:" + dir),
    }:
    let
      dir = toString proposals;
      ids = filter (id: validId id && pathExists "${dir}/${id}/proposal.json") (
        attrNames (if pathExists dir then readDir dir else { })
      );
      read = id: (fromJSON (readFile "${dir}/${id}/proposal.json")).payload;
      job =
        id:
        let
          p = read id;
        in
        {
          inherit id;
          kind = p.kind;
          submodule = p.submodule;
          inputs = p.inputs or [ ];
          from = p.from;
          to = p.to;
          commits = p.commits or 0;
          flake = flakeRef "${dir}/${id}";
          build = "${flakeRef "${dir}/${id}"}#hydraJobs";
        };
      jobs = listToAttrs (
        map (id: {
          name = id;
          value = job id;
        }) ids
      );
    in
    {
      inherit jobs;
      matrix = map (id: { inherit (jobs.${id}) id flake build; }) ids;
      hydraJobs = listToAttrs (
        map (id: {
          name = id;
          value = (getFlake jobs.${id}.flake).hydraJobs;
        }) ids
      );
    };
in
{
  inherit mkProposalJobs validId;
}
