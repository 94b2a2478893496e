package cli

import "github.com/lambda-os/lambda-check/internal/exitcode"

// ExitCodesCmd is "lambda-check exit-codes".
type ExitCodesCmd struct{}

// Run prints the exit-code table.
func (c *ExitCodesCmd) Run(rt *Runtime) error {
	if rt.Globals.JSON {
		type row struct {
			Code    int    `json:"code"`
			Name    string `json:"name"`
			Meaning string `json:"meaning"`
		}
		rows := []row{}
		for _, r := range exitcode.Table {
			rows = append(rows, row{r.Code, r.Name, r.Meaning})
		}
		return rt.PrintJSON(rows)
	}
	for _, r := range exitcode.Table {
		rt.Printf("%4d  %-10s %s\n", r.Code, r.Name, r.Meaning)
	}
	return nil
}
