package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/lambda-os/lambda-check/internal/statedir"
)

// CompletionCmd is "lambda-check completion".
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

// Help is shown by "lambda-check completion --help".
func (c *CompletionCmd) Help() string {
	return `Prints a completion script for the shell: commands, flags, enum values and
proposal ids (read from the state directory as you type, so they are
always current). Load it with, for example:

  bash:  source <(lambda-check completion bash)
  zsh:   lambda-check completion zsh > "${fpath[1]}/_lambda-check"
  fish:  lambda-check completion fish > ~/.config/fish/completions/lambda-check.fish`
}

// The scripts ask the binary itself (the hidden __complete) for the
// candidates of the words typed so far.
const (
	bashCompletion = `# bash completion for lambda-check
_lambda_check() {
	local IFS=$'\n'
	COMPREPLY=($(lambda-check __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _lambda_check lambda-check
`
	zshCompletion = `#compdef lambda-check
# zsh completion for lambda-check
_lambda_check() {
	local -a candidates
	candidates=(${(f)"$(lambda-check __complete "${(@)words[2,CURRENT]}" 2>/dev/null)"})
	compadd -a candidates
}
compdef _lambda_check lambda-check
`
	fishCompletion = `# fish completion for lambda-check
complete -c lambda-check -f -a '(lambda-check __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`
)

// Run prints the script.
func (c *CompletionCmd) Run(rt *Runtime) error {
	rt.Printf("%s", map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[c.Shell])
	return nil
}

// completeArg is argv[1] of a completion request.
const completeArg = "__complete"

// complete prints the candidates for the last of words (the command line
// after the program's name, the last word being completed).
func complete(w io.Writer, app *kong.Application, words []string, getenv func(string) string, dir string) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	node := app.Node
	state, workspace := "", ""
	var prev string
	for i, word := range words[:len(words)-1] {
		switch {
		case strings.HasPrefix(word, "--state-dir="):
			state = strings.TrimPrefix(word, "--state-dir=")
		case strings.HasPrefix(word, "--workspace="):
			workspace = strings.TrimPrefix(word, "--workspace=")
		case prev == "--state-dir":
			state = word
		case prev == "--workspace" || prev == "-w":
			workspace = word
		case !strings.HasPrefix(word, "-"):
			for _, c := range node.Children {
				if c.Type == kong.CommandNode && (c.Name == word || contains(c.Aliases, word)) {
					node = c
					break
				}
			}
		}
		prev = words[i]
	}
	var out []string
	// A flag's value: its enum, else nothing (files are the shell's).
	if f := flagNamed(node, prev); f != nil && !f.IsBool() {
		if f.Enum != "" {
			out = strings.Split(f.Enum, ",")
		}
		printMatching(w, out, cur)
		return
	}
	if strings.HasPrefix(cur, "-") {
		for n := node; n != nil; n = n.Parent {
			for _, f := range n.Flags {
				if !f.Hidden {
					out = append(out, "--"+f.Name)
				}
			}
		}
		printMatching(w, out, cur)
		return
	}
	for _, c := range node.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			out = append(out, c.Name)
		}
	}
	for _, p := range node.Positional {
		switch {
		case p.Enum != "":
			out = append(out, strings.Split(p.Enum, ",")...)
		case p.Name == "id":
			out = append(out, proposalIDs(getenv, dir, workspace, state)...)
		}
	}
	printMatching(w, out, cur)
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func flagNamed(n *kong.Node, word string) *kong.Flag {
	name, ok := strings.CutPrefix(word, "--")
	if !ok {
		if len(word) != 2 || word[0] != '-' {
			return nil
		}
		for ; n != nil; n = n.Parent {
			for _, f := range n.Flags {
				if f.Short == rune(word[1]) {
					return f
				}
			}
		}
		return nil
	}
	for ; n != nil; n = n.Parent {
		for _, f := range n.Flags {
			if f.Name == name {
				return f
			}
		}
	}
	return nil
}

// proposalIDs lists the proposals of the state directory the command line
// (or its environment twins) names, as a command would find it.
func proposalIDs(getenv func(string) string, dir, workspace, state string) []string {
	if workspace == "" {
		workspace = getenv(EnvPrefix + "WORKSPACE")
	}
	if state == "" {
		state = getenv(EnvPrefix + "STATE_DIR")
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if state == "" {
		ws := abs(workspace)
		if ws == "" {
			ws = dir
		}
		state = filepath.Join(ws, statedir.DefaultName)
	}
	ents, err := os.ReadDir(filepath.Join(abs(state), "proposals"))
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

func printMatching(w io.Writer, cands []string, prefix string) {
	sort.Strings(cands)
	last := ""
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) && c != last {
			fmt.Fprintln(w, c)
			last = c
		}
	}
}

// ManCmd is "lambda-check man".
type ManCmd struct{}

// Help is shown by "lambda-check man --help".
func (c *ManCmd) Help() string {
	return `Prints the manual page (roff, section 1), generated from the same model
as --help: install it as lambda-check.1 (man -l <(lambda-check man) shows it).`
}

// Run prints the page.
func (c *ManCmd) Run(rt *Runtime) error {
	if rt.app == nil {
		return fmt.Errorf("no command model")
	}
	return manPage(rt.Env.Stdout, rt.app, time.Now())
}

// roff escapes text for a roff line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		for _, r := range line {
			if r > 126 {
				fmt.Fprintf(&b, `\[u%04X]`, r) // groff reads ASCII
			} else {
				b.WriteRune(r)
			}
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func manPage(w io.Writer, app *kong.Application, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH LAMBDA\\-CHECK 1 %q %q \"User Commands\"\n", now.Format("2006-01-02"), "lambda-check "+Version())
	b.WriteString(".SH NAME\nlambda\\-check \\- the control plane of a Logos node's workspace\n")
	b.WriteString(".SH SYNOPSIS\n.B lambda\\-check\n.I command\n[\\fIflags\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n" + roff(description) + "\n")
	b.WriteString(".SH GLOBAL FLAGS\n")
	for _, f := range app.Node.Flags {
		manFlag(&b, f)
	}
	b.WriteString(".SH COMMANDS\n")
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		for _, c := range n.Children {
			if c.Type != kong.CommandNode || c.Hidden {
				continue
			}
			name := strings.TrimSpace(path + " " + c.Name)
			fmt.Fprintf(&b, ".SS %s\n", roff(name+positionals(c)))
			b.WriteString(roff(c.Help) + "\n")
			if c.Detail != "" {
				b.WriteString(".PP\n" + roff(c.Detail) + "\n")
			}
			for _, f := range c.Flags {
				manFlag(&b, f)
			}
			walk(c, name)
		}
	}
	walk(app.Node, "")
	b.WriteString(".SH ENVIRONMENT\nEvery flag can be set as LAMBDA_CHECK_<FLAG> (upper case, dashes as underscores), for example LAMBDA_CHECK_WORKSPACE or LAMBDA_CHECK_JSON.\n")
	b.WriteString(".SH EXIT STATUS\n0 ok, 1 error, 3 a verdict is fail, 75 busy (retry later), 80 usage, 82 bad input, 130 cancelled (lambda\\-check exit\\-codes lists them).\n")
	b.WriteString(".SH SEE ALSO\nThe documentation in docs/ of the source: architecture.md, cycle.md, verify.md, governance.md, policy.md, nix.md.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func positionals(n *kong.Node) string {
	var s string
	for _, p := range n.Positional {
		if p.Required {
			s += " " + strings.ToUpper(p.Name)
		} else {
			s += " [" + strings.ToUpper(p.Name) + "]"
		}
	}
	return s
}

func manFlag(b *strings.Builder, f *kong.Flag) {
	if f.Hidden {
		return
	}
	b.WriteString(".TP\n")
	name := `\fB\-\-` + roff(f.Name) + `\fR`
	if f.Short != 0 {
		name = `\fB\-` + string(f.Short) + `\fR, ` + name
	}
	if !f.IsBool() {
		name += `=\fI` + roff(f.FormatPlaceHolder()) + `\fR`
	}
	b.WriteString(name + "\n" + roff(f.Help) + "\n")
}
