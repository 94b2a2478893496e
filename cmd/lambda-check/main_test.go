package main

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lambda-os/lambda-check/internal/cli"
	"github.com/lambda-os/lambda-check/internal/gittest"
	"github.com/lambda-os/lambda-check/internal/gittest/requires"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"lambda-check": func() {
			dir, _ := os.Getwd()
			os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{
				Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Dir: dir, Getenv: os.Getenv,
			}))
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script against real
// generated workspaces.
func TestScripts(t *testing.T) {
	requires.Tool(t, "git")
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// genws DIR [MODULES]: generate a workspace in DIR (DIR/workspace, DIR/remotes).
			"genws": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 || len(args) > 2 {
					ts.Fatalf("usage: genws DIR [MODULES]")
				}
				o := gittest.DemoOptions()
				if len(args) == 2 {
					n, err := strconv.Atoi(args[1])
					ts.Check(err)
					o.Modules = n
					o.Ahead, o.Drift = nil, nil
				}
				_, err := gittest.Generate(context.Background(), ts.MkAbs(args[0]), o)
				ts.Check(err)
			},
		},
	})
}
