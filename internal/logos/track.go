package logos

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tracker records the process groups of the hosts and logoscore runs a
// lambda-check starts, one file per group in Dir, removed once the group
// is gone. When lambda-check itself is killed mid-load, its direct child
// dies with it (Pdeathsig), but that child's own children (logoscore's
// hosts, a plugin that forks) are orphaned in the group: the next run's
// KillLeftovers finds and kills them.
type Tracker struct {
	Dir string
}

// Add records the group led by pgid (just started).
func (t *Tracker) Add(pgid int) {
	if t == nil || t.Dir == "" {
		return
	}
	if os.MkdirAll(t.Dir, 0o755) != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(t.Dir, strconv.Itoa(pgid)), []byte(strconv.FormatUint(startTime(pgid), 10)+"\n"), 0o644)
}

// Done forgets a group that is gone.
func (t *Tracker) Done(pgid int) {
	if t == nil || t.Dir == "" {
		return
	}
	_ = os.Remove(filepath.Join(t.Dir, strconv.Itoa(pgid)))
}

// KillLeftovers kills the recorded groups that still have live members
// and forgets them all; it returns the groups it killed. A group counts as
// the recorded one when its leader is the recorded process (same start
// time) or, the leader gone, while members remain (Linux does not reuse a
// number still in use as a process group id).
func KillLeftovers(dir string) []int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var killed []int
	for _, e := range ents {
		pgid, err := strconv.Atoi(e.Name())
		if err != nil || pgid <= 1 {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		recorded, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		leader := startTime(pgid)
		ours := (leader != 0 && leader == recorded) || (leader == 0 && anyInGroup(pgid))
		if ours && anyInGroup(pgid) {
			killGroup(pgid)
			if !groupAlive(pgid, 2*time.Second) {
				killed = append(killed, pgid)
			}
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
	return killed
}

// startTime is a process's start time in clock ticks since boot (field 22
// of /proc/<pid>/stat), 0 when there is no such process.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// After the command: state is field 3, so start time (22) is f[19].
	if len(f) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}
