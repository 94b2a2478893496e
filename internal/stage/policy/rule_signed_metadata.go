package policy

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/lambda-os/lambda-check/internal/sign"
	"github.com/lambda-os/lambda-check/internal/workspace"
)

var signedMetadataRule = define("signed-metadata", "module metadata.json is signed by a key the registry trusts for that module", false, Deny,
	func() *signedMetadataOptions { return &signedMetadataOptions{Modules: []string{"*"}} }, checkSignedMetadata)

type signedMetadataOptions struct {
	// Registry is the key registry file, relative to the policy file.
	Registry string `json:"registry"`
	// Modules are the module names (patterns) whose metadata must be
	// signed.
	Modules []string `json:"modules"`
}

func checkSignedMetadata(_ context.Context, in *Input, o *signedMetadataOptions) (Output, error) {
	cfg := Subject{Kind: KindConfig, Name: "signed-metadata"}
	if o.Registry == "" {
		return Output{Findings: []Finding{{Subject: cfg,
			Message: "enabled without a key registry: no signature can be trusted, so every module fails",
			Hint:    "set rules.signed-metadata.options.registry to a key registry file (see docs/policy.md)",
		}}}, nil
	}
	p := o.Registry
	if !filepath.IsAbs(p) {
		p = filepath.Join(in.ConfigDir, p)
	}
	reg, err := sign.ReadRegistry(p)
	if err != nil {
		return Output{Findings: []Finding{{Subject: cfg, Message: err.Error(), Hint: "fix the key registry; until then no module's metadata is trusted"}}}, nil
	}
	var out []Finding
	verified := 0
	for _, r := range in.Registry.Repos {
		if r.MetadataError != "" {
			out = append(out, Finding{Subject: Subject{Kind: KindSubmodule, Name: r.Path}, Message: "metadata cannot be verified: " + r.MetadataError})
			continue
		}
		m := r.Module
		if m == nil || !matchAny(o.Modules, m.Name) {
			continue
		}
		c, err := sign.Verify(r.RawMetadata(), workspace.MetadataDomain, reg, func(k *sign.Key) error { return k.Allows(sign.RoleMetadata, m.Name, in.trust()) })
		if err != nil {
			out = append(out, Finding{Subject: Subject{Kind: KindModule, Name: m.Name}, Message: fmt.Sprintf("metadata.json in %s: %v", r.Path, err)})
			continue
		}
		if c.Verdict == sign.Valid {
			verified++
			continue
		}
		hint := "sign it with a trusted key: lambda-check sign-metadata --key KEY " + r.Path + "/metadata.json"
		if c.Verdict == sign.Invalid {
			hint = "metadata.json changed after it was signed, or the signature is corrupt: review the change and sign it again"
		}
		out = append(out, Finding{
			Subject: Subject{Kind: KindModule, Name: m.Name},
			Message: fmt.Sprintf("metadata.json in %s at %s is %s", r.Path, short(in.Snapshot.Submodule(r.Path).Gitlink), c),
			Hint:    hint,
		})
	}
	return Output{Findings: out, Notes: []string{fmt.Sprintf("%d modules verified against %d keys", verified, len(reg.Keys))}}, nil
}
