package policy

import (
	"fmt"
	"io/fs"
)

func fsErrNotExist() error { return fmt.Errorf("no metadata.json: %w", fs.ErrNotExist) }
