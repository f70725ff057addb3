package groupcommit

// Group is the writes committed together, in the order they joined.
//
// Its writes slice is reused for a later group once the writers are
// answered, so the writers read only what outlives it: err, failed, done.
type Group[W any] struct {
	writes []W
	// failed holds the errors of writes that failed on their own; made on
	// the first, which is rare.
	failed map[int]error
	err    error         // the group's outcome, set before done is closed
	done   chan struct{} // closed once the outcome is known
	// taken is closed when the committer takes the group; made only when a
	// writer waits for room in a full group.
	taken chan struct{}
}

func newGroup[W any](writes []W) *Group[W] {
	return &Group[W]{writes: writes, done: make(chan struct{})}
}

// Writes returns the group's writes, in the order they joined.
func (g *Group[W]) Writes() []W { return g.writes }

// Fail gives the i-th write its own error: its writer gets err, whatever
// happens to the group.
func (g *Group[W]) Fail(i int, err error) {
	if g.failed == nil {
		g.failed = make(map[int]error)
	}
	g.failed[i] = err
}

// Failed reports whether the i-th write was given its own error.
func (g *Group[W]) Failed(i int) bool {
	_, ok := g.failed[i]
	return ok
}

// outcome is what the i-th write's writer gets once done is closed.
func (g *Group[W]) outcome(i int) error {
	if err, ok := g.failed[i]; ok {
		return err
	}
	return g.err
}
