package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/lambda-os/lambda-check/internal/artifact"
	"github.com/lambda-os/lambda-check/internal/exitcode"
	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

// KeyCmd is "lambda-check key".
type KeyCmd struct {
	Generate KeyGenerateCmd `cmd:"" help:"Make a new ed25519 signing key."`
	Show     KeyShowCmd     `cmd:"" help:"Print a key's entry for a key registry."`
}

// KeyGenerateCmd is "lambda-check key generate".
type KeyGenerateCmd struct {
	ID  string `required:"" placeholder:"ID" help:"The key's name in registries and signatures (letters, digits, . _ @ -)."`
	Out string `required:"" placeholder:"FILE" help:"Where to write the private key (mode 0600; never overwritten)."`
	scopeFlags
}

// scopeFlags say what a registry entry lets a key do.
type scopeFlags struct {
	Role    []string  `placeholder:"ROLE" default:"approver" enum:"approver,checkpoint,metadata" help:"What the key may sign: approver (governance decisions), checkpoint (audit checkpoints), metadata (module metadata.json); repeatable."`
	Modules []string  `placeholder:"PATTERN" default:"*" help:"With the metadata role: module names the key may sign for."`
	Owner   string    `placeholder:"NAME" help:"Whose key it is, for people reading the registry."`
	Expires time.Time `placeholder:"TIME" format:"2006-01-02T15:04:05Z07:00" help:"When the key stops being valid (RFC 3339)."`
}

func (s scopeFlags) scope() sign.Scope {
	sc := sign.Scope{Owner: s.Owner, Roles: s.Role, Expires: s.Expires}
	for _, r := range s.Role {
		if r == sign.RoleMetadata {
			sc.Modules = s.Modules
		}
	}
	return sc
}

// Help is shown by "lambda-check key generate --help".
func (c *KeyGenerateCmd) Help() string {
	return `Writes a new ed25519 private key to --out (readable by its owner only) and
prints the key's entry for a key registry (keys.json) on stdout. Add that
entry to the registry a node trusts; keep the private key off the node.`
}

// Run makes the key.
func (c *KeyGenerateCmd) Run(rt *Runtime) error {
	if !c.Expires.IsZero() && !c.Expires.After(time.Now()) {
		return errUsage("--expires %s is not in the future: a new key would be expired already (to end a key's validity, 'key show KEY --expires TIME' prints its registry entry with that expiry)", c.Expires.Format(time.RFC3339))
	}
	k, err := sign.GenerateKey(c.ID, nil)
	if err != nil {
		return &exitcode.UsageError{Err: err}
	}
	b, err := sign.MarshalPrivateKey(k)
	if err != nil {
		return err
	}
	out := rt.Abs(c.Out)
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return exitcode.Input(fmt.Errorf("key file %q exists", out), "a key is never overwritten: choose another --out")
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	rt.Logf("wrote private key %q to %s", k.ID, out)
	return rt.PrintData(sign.RegistryKey(k, c.scope()))
}

// KeyShowCmd is "lambda-check key show".
type KeyShowCmd struct {
	Key string `arg:"" placeholder:"FILE" help:"A private key file."`
	scopeFlags
}

// Run prints the registry entry.
func (c *KeyShowCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	if !c.Expires.IsZero() && !c.Expires.After(time.Now()) {
		rt.Logf("note: this entry expired at %s: nothing it signs from then on counts", c.Expires.Format(time.RFC3339))
	}
	return rt.PrintData(sign.RegistryKey(k, c.scope()))
}

// SignMetadataCmd is "lambda-check sign-metadata".
type SignMetadataCmd struct {
	Key   string   `required:"" placeholder:"FILE" help:"The private key file to sign with."`
	Files []string `arg:"" placeholder:"METADATA.json" help:"Module metadata files to sign in place."`
}

// Help is shown by "lambda-check sign-metadata --help".
func (c *SignMetadataCmd) Help() string {
	return `Adds the key's signature to each module metadata.json (replacing an earlier
signature by the same key, keeping others). The signature is ed25519 over the
domain "lambda-check/module-metadata/v1", a newline, and the RFC 8785
canonical form of the file without its "signatures" member, so formatting
does not matter and any change to the content does. The file is rewritten in
canonical member order, indented. Commit the result in the module's
repository; the signed-metadata policy rule checks it against the node's key
registry.`
}

// Run signs the files.
func (c *SignMetadataCmd) Run(rt *Runtime) error {
	k, err := sign.ReadPrivateKey(rt.Abs(c.Key))
	if err != nil {
		return exitcode.Input(err, "")
	}
	for _, f := range c.Files {
		p := rt.Abs(f)
		b, err := os.ReadFile(p)
		if err != nil {
			return exitcode.Input(fmt.Errorf("read metadata: %w", err), "")
		}
		m, err := workspace.ParseMetadata(b)
		if err != nil {
			return exitcode.Input(fmt.Errorf("%q: %w", p, err), "only a valid module metadata.json is signed")
		}
		signed, err := sign.SignDocument(b, workspace.MetadataDomain, k)
		if err != nil {
			return exitcode.Input(fmt.Errorf("%q: %w", p, err), "")
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := artifact.WriteFile(p, signed, st.Mode().Perm()); err != nil {
			return err
		}
		rt.Printf("signed %s (module %s) with %s\n", f, m.Name, k.ID)
	}
	return nil
}
