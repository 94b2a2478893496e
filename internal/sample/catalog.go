package sample

import "fmt"

// Metadata is a Logos module's metadata.json, as module repositories carry
// it at their root.
type Metadata struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Description  string   `json:"description"`
	Author       string   `json:"author"`
	Type         string   `json:"type"`
	Category     string   `json:"category"`
	Main         string   `json:"main"`
	Dependencies []string `json:"dependencies"`
	Capabilities []string `json:"capabilities"`
}

// repoSpec is one repository of the generated workspace before it is
// written: its name, its flake dependencies (repository names) and, for a
// Logos module, its metadata.
type repoSpec struct {
	name   string
	deps   []string
	module *Metadata
	branch string
}

const (
	sdk     = "logos-cpp-sdk"
	liblogo = "logos-liblogos"
)

// catalog is modelled on the real logos-workspace: an SDK every repository
// follows, the runtime, and modules with their categories and dependencies.
func catalog() []repoSpec {
	mod := func(repo, name, typ, cat string, modDeps []string, caps []string, flakeDeps ...string) repoSpec {
		return repoSpec{
			name: repo,
			deps: append([]string{sdk, liblogo}, flakeDeps...),
			module: &Metadata{
				Name: name, Version: "0.1.0", Author: "Logos",
				Description: fmt.Sprintf("The %s Logos module.", name),
				Type:        typ, Category: cat, Main: name + "_plugin",
				Dependencies: nonNil(modDeps), Capabilities: nonNil(caps),
			},
		}
	}
	return []repoSpec{
		{name: sdk, branch: "main"},
		{name: liblogo, deps: []string{sdk}},
		mod("logos-capability-module", "capability_module", "core", "security", nil, []string{"capabilities"}),
		mod("logos-waku-module", "waku_module", "core", "network", nil, []string{"messaging", "rln"}),
		mod("logos-chat-module", "chatsdk_module", "core", "chat", []string{"waku_module"}, []string{"messaging", "rln"}, "logos-waku-module"),
		mod("logos-storage-module", "storage_module", "core", "storage", nil, []string{"storage"}),
		mod("logos-wallet-module", "wallet_module", "core", "wallet", []string{"capability_module"}, []string{"keys"}, "logos-capability-module"),
		mod("logos-package-manager", "package_manager", "core", "system", nil, []string{"packages"}),
		mod("logos-accounts-module", "accounts_module", "core", "identity", []string{"wallet_module"}, nil, "logos-wallet-module"),
		mod("logos-chat-ui", "chat_ui", "ui_qml", "chat", []string{"chatsdk_module"}, nil, "logos-chat-module"),
		mod("logos-blockchain-module", "blockchain_module", "core", "blockchain", []string{"wallet_module"}, nil, "logos-wallet-module"),
		mod("logos-irc-module", "irc_module", "core", "chat", []string{"waku_module"}, []string{"messaging"}, "logos-waku-module"),
	}
}

// specs returns n module repositories plus the SDK and the runtime.
func specs(modules int) []repoSpec {
	all := catalog()
	if modules+2 <= len(all) {
		return all[:modules+2]
	}
	for i := len(all) - 2; i < modules; i++ {
		name := fmt.Sprintf("module_%04d", i)
		s := repoSpec{
			name: fmt.Sprintf("logos-module-%04d", i),
			deps: []string{sdk, liblogo},
			module: &Metadata{
				Name: name, Version: "0.1.0", Author: "Logos",
				Description: "A generated Logos module.", Type: "core", Category: "misc",
				Main: name + "_plugin", Dependencies: []string{}, Capabilities: []string{},
			},
		}
		// Every third module depends on the one before it, so the graph
		// has depth as well as breadth.
		if i%3 == 0 {
			prev := all[len(all)-1]
			s.deps = append(s.deps, prev.name)
			if prev.module != nil {
				s.module.Dependencies = []string{prev.module.Name}
			}
		}
		all = append(all, s)
	}
	return all
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RepoNames returns the repositories Generate writes for a number of
// modules, in order (the SDK and the runtime first).
func RepoNames(modules int) []string {
	var out []string
	for _, s := range specs(modules) {
		out = append(out, s.name)
	}
	return out
}
