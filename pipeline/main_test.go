package pipeline_test

import (
	"os"
	"testing"

	"github.com/vlm-go/vlm/isolate"
)

func TestMain(m *testing.M) {
	isolate.Main() // Options.Isolated re-executes this binary
	os.Exit(m.Run())
}
