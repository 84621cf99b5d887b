package pipeline

import "errors"

// The crash injection of child.go is honoured in this package's test
// binary only: this file is compiled into no other.
func init() { testFaults = true }

// InjectFault arms a crash in the running child of a ChildProcess pipeline
// (faultState's specs: "segv-decode:N", "abort-encode", "hang-decode:N",
// "exit:N").
func InjectFault(p *Pipeline, spec string) error {
	c := p.sup.current()
	if c == nil {
		return errors.New("no child running")
	}
	return c.w.send(fFault, 0, []byte(spec))
}

// ChildPID returns the process ID of the running child (0 while none).
func ChildPID(p *Pipeline) int {
	if c := p.sup.current(); c != nil {
		return c.pid
	}
	return 0
}
